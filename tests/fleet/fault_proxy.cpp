// Test support: a TCP proxy that fails the first HTTP requests with a 500.
#include "fault_proxy.hpp"
#include "clickhouse_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "common/unique_fd.hpp"

namespace pgfleet {

namespace {

constexpr size_t kMaxHead = 1 << 20;
constexpr int kDrainTimeoutMs = 2000;
constexpr char kFailureBody[] =
    "Code: 241, e.displayText() = DB::Exception: Memory limit (simulated), e.what() = DB::Exception\n";

// The value of a header in a lowercased request head ("" if absent).
std::string header_value(const std::string& lhead, const std::string& name) {
  size_t pos = lhead.find("\r\n" + name + ":");
  if (pos == std::string::npos) return "";
  pos += name.size() + 3;
  size_t end = lhead.find("\r\n", pos);
  std::string value = lhead.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  size_t first = value.find_first_not_of(" \t");
  size_t last = value.find_last_not_of(" \t");
  return first == std::string::npos ? "" : value.substr(first, last - first + 1);
}

// Whether buf, from pos on, holds a whole chunked body (up to the end of its trailers).
bool chunked_complete(const std::string& buf, size_t pos) {
  for (;;) {
    size_t eol = buf.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    size_t size = std::strtoul(buf.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) return buf.find("\r\n\r\n", pos - 2) != std::string::npos;
    pos += size + 2;
    if (pos > buf.size()) return false;
  }
}

using Fd = portghost::UniqueFd;  // closed when it goes out of scope

}  // namespace

FaultProxy::FaultProxy(uint16_t upstream_port, int fail_first_n)
    : upstream_port_(upstream_port), fail_first_n_(fail_first_n) {
  auto fail = [this](const char* what) {
    int err = errno;
    for (int fd : {listen_fd_, wake_[0], wake_[1]})
      if (fd >= 0) ::close(fd);
    throw std::system_error(err, std::generic_category(), std::string("fault proxy: ") + what);
  };
  if (::pipe2(wake_, O_CLOEXEC) != 0) fail("pipe2");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) fail("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (::listen(listen_fd_, 128) != 0) fail("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
  port_ = ntohs(addr.sin_port);
  try {
    acceptor_ = std::thread([this] { accept_loop(); });
  } catch (...) {
    errno = EAGAIN;
    fail("thread");
  }
}

FaultProxy::~FaultProxy() {
  // The byte is never read: the pipe stays readable, and every poll sees it.
  const char byte = 1;
  if (::write(wake_[1], &byte, 1) < 0) {
    // cannot happen on a fresh pipe; the joins below would then hang
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (Worker& w : workers_)
    if (w.thread.joinable()) w.thread.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string FaultProxy::url() const { return "clickhouse://127.0.0.1:" + std::to_string(port_) + "/"; }

bool FaultProxy::wait_for(int fd, short events, int timeout_ms) const {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {wake_[0], POLLIN, 0}};
    int r = ::poll(fds, 2, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || fds[1].revents != 0) return false;
    if (fds[0].revents != 0) return true;
  }
}

long FaultProxy::read_some(int fd, std::string& buf) const {
  char chunk[65536];
  for (;;) {
    if (!wait_for(fd, POLLIN)) return -1;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n > 0) buf.append(chunk, static_cast<size_t>(n));
    return n;
  }
}

bool FaultProxy::write_all(int fd, const char* data, size_t size) const {
  size_t off = 0;
  while (off < size) {
    if (!wait_for(fd, POLLOUT)) return false;
    ssize_t n = ::send(fd, data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void FaultProxy::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || fds[1].revents != 0) return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    // Join the connections that are over, so the list stays short.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    try {
      Worker& w = workers_.emplace_back();
      w.thread = std::thread([this, client, &w] {
        try {
          serve(client);
        } catch (...) {
        }
        ::close(client);
        w.done.store(true);
      });
    } catch (...) {
      ::close(client);
      if (!workers_.empty() && !workers_.back().thread.joinable()) workers_.pop_back();
    }
  }
}

void FaultProxy::serve(int client) {
  // Read the request's headers before choosing: a connection that never
  // sends a request does not use up a failure.
  std::string request;
  size_t head_end;
  while ((head_end = request.find("\r\n\r\n")) == std::string::npos) {
    if (request.size() > kMaxHead || read_some(client, request) <= 0) return;
  }
  if (claimed_.fetch_add(1) < fail_first_n_) {
    fail_one(client, std::move(request), head_end);
  } else {
    relay(client, request);
  }
}

void FaultProxy::fail_one(int client, std::string request, size_t head_end) {
  const std::string head = lower(request.substr(0, head_end));
  const size_t body_start = head_end + 4;
  const bool chunked = header_value(head, "transfer-encoding").find("chunked") != std::string::npos;
  const size_t length = chunked ? 0 : std::strtoull(header_value(head, "content-length").c_str(), nullptr, 10);
  auto body_complete = [&] {
    return chunked ? chunked_complete(request, body_start) : request.size() - body_start >= length;
  };
  if (!body_complete() && header_value(head, "expect").find("100-continue") != std::string::npos) {
    static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!write_all(client, kContinue, sizeof kContinue - 1)) return;
  }
  while (!body_complete()) {
    if (read_some(client, request) <= 0) return;
  }
  const std::string body = kFailureBody;
  const std::string answer =
      "HTTP/1.1 500 Internal Server Error\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\n"
      "X-ClickHouse-Exception-Code: 241\r\n"
      "Content-Length: " +
      std::to_string(body.size()) +
      "\r\n"
      "Connection: close\r\n"
      "\r\n" +
      body;
  failed_.fetch_add(1);
  if (!write_all(client, answer.data(), answer.size())) return;
  // Close gently: with unread bytes left, close() would reset the connection
  // and the client could lose the answer.
  ::shutdown(client, SHUT_WR);
  std::string discard;
  while (wait_for(client, POLLIN, kDrainTimeoutMs)) {
    discard.clear();
    if (read_some(client, discard) <= 0) break;
  }
}

void FaultProxy::relay(int client, const std::string& pending) {
  Fd upstream(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (upstream.get() < 0) return;
  sockaddr_in addr = loopback(upstream_port_);
  int rc;
  do rc = ::connect(upstream.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) return;  // the client sees its connection closed, as if the server were down
  if (!write_all(upstream.get(), pending.data(), pending.size())) return;

  // Relay both ways; an end of stream on one side is passed on as a
  // half-close to the other, until both directions are over.
  bool to_upstream = true, to_client = true;
  std::string buf;
  while (to_upstream || to_client) {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {wake_[0], POLLIN, 0};
    if (to_upstream) fds[n++] = {client, POLLIN, 0};
    if (to_client) fds[n++] = {upstream.get(), POLLIN, 0};
    int r = ::poll(fds, n, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || fds[0].revents != 0) return;
    for (nfds_t i = 1; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const int from = fds[i].fd;
      const int to = from == client ? upstream.get() : client;
      buf.clear();
      long got = read_some(from, buf);
      if (got < 0) return;
      if (got == 0) {
        ::shutdown(to, SHUT_WR);
        (from == client ? to_upstream : to_client) = false;
      } else if (!write_all(to, buf.data(), buf.size())) {
        return;
      }
    }
  }
}

}  // namespace pgfleet
