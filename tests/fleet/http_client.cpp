// Test support: the minimal HTTP/1.0 client the fleet tests talk to
// ClickHouse with, and free loopback ports.
#include "http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "common/unique_fd.hpp"

namespace pgfleet {

namespace {

constexpr auto kQueryTimeout = std::chrono::seconds(60);

using Fd = portghost::UniqueFd;  // closed when it goes out of scope

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

std::string base64(const std::string& in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v =
        (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// A connected socket to 127.0.0.1:port whose connect, sends and receives
// time out after `timeout`.
int connect_loopback(uint16_t port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "socket");
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr = loopback(port);
  int rc;
  do rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    throw_errno(err, "connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "http: send");
    }
    off += static_cast<size_t>(n);
  }
}

std::string recv_until_eof(int fd) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) throw std::runtime_error("http: timed out reading the answer");
      throw_errno(errno, "http: recv");
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) throw std::runtime_error("http: truncated chunked body");
    size_t size = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) return out;
    if (pos + size > body.size()) throw std::runtime_error("http: truncated chunked body");
    out.append(body, pos, size);
    pos += size + 2;  // the chunk's CRLF
  }
}

std::pair<int, std::string> parse_answer(const std::string& raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) throw std::runtime_error("http: malformed answer: " + raw.substr(0, 200));
  std::string head = raw.substr(0, head_end);
  std::string body = raw.substr(head_end + 4);
  std::string status_line = head.substr(0, head.find("\r\n"));
  size_t space = status_line.find(' ');
  if (status_line.rfind("HTTP/", 0) != 0 || space == std::string::npos)
    throw std::runtime_error("http: malformed status line: " + status_line);
  int code = std::atoi(status_line.c_str() + space + 1);
  if (code < 100 || code > 999) throw std::runtime_error("http: malformed status line: " + status_line);
  std::string lhead = lower(head);
  size_t te = lhead.find("\r\ntransfer-encoding:");
  if (te != std::string::npos && lhead.substr(te, lhead.find("\r\n", te + 2) - te).find("chunked") != std::string::npos)
    body = dechunk(body);
  return {code, std::move(body)};
}

}  // namespace

std::pair<int, std::string> http_request(const std::string& method, uint16_t port, const std::string& user,
                                         const std::string& password, const std::string& target,
                                         const std::string& body, std::chrono::milliseconds timeout) {
  std::string request = method + " " + target + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!user.empty()) request += "Authorization: Basic " + base64(user + ":" + password) + "\r\n";
  if (method != "GET") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "Connection: close\r\n\r\n";
  request += body;
  Fd fd(connect_loopback(port, timeout));
  send_all(fd.get(), request);
  return parse_answer(recv_until_eof(fd.get()));
}

// all held open together while picked, so that they differ
std::vector<uint16_t> free_ports(size_t n) {
  std::vector<std::unique_ptr<Fd>> held;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    held.push_back(std::make_unique<Fd>(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    int fd = held.back()->get();
    if (fd < 0) throw_errno(errno, "socket");
    sockaddr_in addr = loopback(0);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw_errno(errno, "bind");
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw_errno(errno, "getsockname");
    ports.push_back(ntohs(addr.sin_port));
  }
  return ports;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::pair<int, std::string> http_post(uint16_t port, const std::string& user, const std::string& password,
                                      const std::string& path_and_query, const std::string& body) {
  return http_request("POST", port, user, password, path_and_query, body, kQueryTimeout);
}

uint16_t free_port() { return free_ports(1).front(); }

}  // namespace pgfleet
