// Test support: a throwaway ClickHouse server on loopback, in its own
// temporary directory (and, through http_client.hpp, the minimal HTTP/1.0
// client the tests use to talk to it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "http_client.hpp"

namespace pgfleet {

// What a server serves HTTPS with: PEM files.
struct ServerTls {
  std::string cert_file, key_file;
};

// A ClickHouse server (Debian's clickhouse-server 18.16) listening on
// 127.0.0.1 only, with an HTTP and a native port picked at random, its
// config, data and logs in a fresh temporary directory. The server is a child
// of the calling thread and dies with it (PR_SET_PDEATHSIG). Users: `default`
// without a password, and `user` with `password`, both from 127.0.0.1 only.
// With tls, it also serves HTTPS (ClickHouse's https_port, no client
// certificates asked), and listens on 127.0.0.2 too: the same server at an
// address its certificate does not name.
class ClickHouseServer {
 public:
  // Starts the server and waits until it answers queries; throws
  // std::runtime_error (with the tail of its logs) if it does not come up.
  explicit ClickHouseServer(std::string user = "pg", std::string password = "s3cret",
                            std::optional<ServerTls> tls = std::nullopt);
  // Stops the server and removes its directory; never throws.
  ~ClickHouseServer();
  ClickHouseServer(const ClickHouseServer&) = delete;
  ClickHouseServer& operator=(const ClickHouseServer&) = delete;

  // Whether the server binary is installed (skip the tests if not).
  static bool available();

  uint16_t http_port() const { return http_port_; }
  // clickhouse://127.0.0.1:PORT/ (the HTTP port, no database).
  std::string url() const;
  // With tls: the HTTPS port, and clickhouses://HOST:PORT/ on it.
  uint16_t https_port() const { return https_port_; }
  std::string https_url(const std::string& host = "127.0.0.1") const;
  // The temporary directory: config.xml, users.xml, data/, out.log, server.log, server.err.log.
  const std::string& dir() const { return dir_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // Whether the server process is alive (reaps it if it exited).
  bool running();
  // The server's process (SIGSTOP and SIGCONT make a server that hangs).
  pid_t pid() const { return pid_; }

  // SIGKILL, and reap.
  void kill9();
  // Starts the server again on the same ports and data directory (stopping
  // it first if it still runs), retrying while the ports are still taken;
  // waits until it answers. Throws std::runtime_error if it does not.
  void restart();
  // SIGTERM; SIGKILL if it has not exited after 10 s. No-op if not running.
  void stop();
  // POSTs `sql` as the request body to the HTTP interface as `user`; returns
  // the body of the answer. Throws std::runtime_error
  // ("clickhouse: HTTP <code>: <body>") unless the status is 200.
  std::string query(const std::string& sql) const;

 private:
  enum class Startup { kReady, kExited, kTimedOut };

  void write_config() const;
  std::string tls_config() const;
  void spawn();
  Startup wait_ready(std::chrono::steady_clock::time_point deadline);
  bool reap(bool block);
  std::string log_tail() const;

  std::string user_, password_, dir_;
  std::optional<ServerTls> tls_;
  uint16_t http_port_ = 0, tcp_port_ = 0, https_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace pgfleet
