// Test support: a TCP proxy to a local HTTP server (ClickHouse) that answers
// the first requests itself with an HTTP 500, the way ClickHouse reports a
// failed query, and relays everything after that unchanged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <thread>

namespace pgfleet {

// Listens on 127.0.0.1 on a free port, in its own thread; each connection is
// served by a thread of its own. The first `fail_first_n` connections to
// send a request's headers are not forwarded: the proxy reads that request
// (the rest of its body by Content-Length or chunked encoding, sending
// "100 Continue" when asked to), answers it with
// "HTTP/1.1 500 Internal Server Error" and a ClickHouse-style exception
// body, with "Connection: close", and closes the connection. So a failing
// connection answers exactly one request, and the count is per request.
// Every later connection is relayed byte for byte both ways to
// 127.0.0.1:upstream_port until both sides have closed.
class FaultProxy {
 public:
  FaultProxy(uint16_t upstream_port, int fail_first_n);
  // Stops accepting, ends every connection still open, joins all threads.
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  uint16_t port() const { return port_; }
  // clickhouse://127.0.0.1:PORT/ (the proxy's port).
  std::string url() const;
  // How many 500 answers the proxy has sent.
  int failed() const { return failed_.load(); }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void accept_loop();
  void serve(int client);
  // `request` holds what was read so far: at least the headers, which end at head_end.
  void fail_one(int client, std::string request, size_t head_end);
  void relay(int client, const std::string& pending);
  // Waits until fd is ready for `events`; false on timeout or once the proxy is stopping.
  bool wait_for(int fd, short events, int timeout_ms = -1) const;
  // Reads some bytes (appended to buf): >0 read, 0 end of stream, <0 error or stopping.
  long read_some(int fd, std::string& buf) const;
  // Writes all of data; false on error or stopping.
  bool write_all(int fd, const char* data, size_t size) const;

  const uint16_t upstream_port_;
  const int fail_first_n_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a byte in wake_[1] wakes every poll: the proxy is stopping
  uint16_t port_ = 0;
  std::atomic<int> claimed_{0};
  std::atomic<int> failed_{0};
  std::list<Worker> workers_;  // touched by the accept thread only, then by the destructor after joining it
  std::thread acceptor_;
};

}  // namespace pgfleet
