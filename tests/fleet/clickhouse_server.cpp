// Test support: a throwaway ClickHouse server, and a minimal HTTP/1.0 client.
#include "clickhouse_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

namespace pgfleet {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kServerBinary[] = "/usr/sbin/clickhouse-server";
constexpr auto kStartTimeout = 30s;
constexpr auto kStopTimeout = 10s;
constexpr auto kPollInterval = 50ms;
constexpr auto kQueryTimeout = 60s;
constexpr auto kProbeTimeout = 2s;

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

// n distinct ports on 127.0.0.1 that were free a moment ago (all held open
// together while picked, so they differ).
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

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string tail_of(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_chars) text = "..." + text.substr(text.size() - max_chars);
  return text;
}

}  // namespace

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

bool ClickHouseServer::available() { return ::access(kServerBinary, X_OK) == 0; }

ClickHouseServer::ClickHouseServer(std::string user, std::string password)
    : user_(std::move(user)), password_(std::move(password)) {
  if (!available()) throw std::runtime_error(std::string("clickhouse: ") + kServerBinary + " is not executable");
  const char* tmpdir = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/portghost-clickhouse-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw_errno(errno, "mkdtemp " + tmpl);
  dir_ = buf.data();
  try {
    for (const char* sub : {"data", "tmp", "user_files"}) std::filesystem::create_directories(dir_ + "/" + sub);
    // The ports were free when picked, but another process may take one
    // before the server binds it: then the server exits, and we try others.
    for (int attempt = 1;; ++attempt) {
      std::vector<uint16_t> ports = free_ports(2);
      http_port_ = ports[0];
      tcp_port_ = ports[1];
      write_config();
      spawn();
      Startup startup = wait_ready(Clock::now() + kStartTimeout);
      if (startup == Startup::kReady) break;
      kill9();
      if (startup == Startup::kTimedOut || attempt == 3)
        throw std::runtime_error(std::string("clickhouse: the server ") +
                                 (startup == Startup::kTimedOut ? "did not answer within 30 s" : "exited at startup") +
                                 "\n" + log_tail());
    }
  } catch (...) {
    kill9();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

ClickHouseServer::~ClickHouseServer() {
  try {
    stop();
  } catch (...) {
  }
  try {
    kill9();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  } catch (...) {
  }
}

std::string ClickHouseServer::url() const { return "clickhouse://127.0.0.1:" + std::to_string(http_port_) + "/"; }

void ClickHouseServer::write_config() const {
  std::ostringstream config;
  config << "<?xml version=\"1.0\"?>\n"
         << "<yandex>\n"
         << "  <logger><level>warning</level><log>" << dir_ << "/server.log</log><errorlog>" << dir_
         << "/server.err.log</errorlog><console>0</console></logger>\n"
         << "  <http_port>" << http_port_ << "</http_port>\n"
         << "  <tcp_port>" << tcp_port_ << "</tcp_port>\n"
         << "  <listen_host>127.0.0.1</listen_host>\n"
         << "  <path>" << dir_ << "/data/</path>\n"
         << "  <tmp_path>" << dir_ << "/tmp/</tmp_path>\n"
         << "  <user_files_path>" << dir_ << "/user_files/</user_files_path>\n"
         << "  <users_config>users.xml</users_config>\n"
         << "  <default_profile>default</default_profile>\n"
         << "  <default_database>default</default_database>\n"
         << "  <mark_cache_size>536870912</mark_cache_size>\n"
         << "  <mlock_executable>false</mlock_executable>\n"
         << "</yandex>\n";
  write_file(dir_ + "/config.xml", config.str());

  const char* access = "<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota>";
  std::ostringstream users;
  users << "<?xml version=\"1.0\"?>\n"
        << "<yandex>\n"
        << "  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>\n"
        << "  <users>\n"
        << "    <default><password></password>" << access << "</default>\n"
        << "    <" << user_ << "><password>" << password_ << "</password>" << access << "</" << user_ << ">\n"
        << "  </users>\n"
        << "  <quotas><default></default></quotas>\n"
        << "</yandex>\n";
  write_file(dir_ + "/users.xml", users.str());
}

void ClickHouseServer::spawn() {
  // Everything the child needs is prepared before fork: after it, the child
  // of a multithreaded process may only make async-signal-safe calls.
  const std::string log_path = dir_ + "/out.log";
  std::string config_arg = "--config-file=" + dir_ + "/config.xml";
  std::string binary = kServerBinary;
  char* argv[] = {binary.data(), config_arg.data(), nullptr};
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(errno, "fork");
  if (pid == 0) {
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0 || ::dup2(log, STDOUT_FILENO) < 0 || ::dup2(log, STDERR_FILENO) < 0) ::_exit(126);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    if (::chdir(dir_.c_str()) != 0) ::_exit(126);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  pid_ = pid;
}

bool ClickHouseServer::reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  pid_ = -1;  // reaped (or not our child any more)
  return true;
}

bool ClickHouseServer::running() { return !reap(false); }

ClickHouseServer::Startup ClickHouseServer::wait_ready(Clock::time_point deadline) {
  for (;;) {
    if (!running()) return Startup::kExited;
    try {
      auto [code, body] = http_request("GET", http_port_, "", "", "/?query=SELECT%201", "", kProbeTimeout);
      if (code == 200 && body == "1\n") return Startup::kReady;
    } catch (const std::exception&) {
      // not listening yet
    }
    if (Clock::now() >= deadline) return Startup::kTimedOut;
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string ClickHouseServer::log_tail() const {
  std::string text;
  for (const char* name : {"out.log", "server.err.log"}) {
    std::string tail = tail_of(dir_ + "/" + name, 4000);
    if (!tail.empty()) text += std::string("--- ") + name + " ---\n" + tail + "\n";
  }
  return text.empty() ? "(no server logs)" : text;
}

void ClickHouseServer::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

void ClickHouseServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + kStopTimeout;
  while (!reap(false)) {
    if (Clock::now() >= deadline) {
      kill9();
      return;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void ClickHouseServer::restart() {
  stop();
  // The ports may still be held for a moment (a killed server's sockets, a
  // client's connection): the server then exits at once, and we start it
  // again until the deadline.
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    spawn();
    Startup startup = wait_ready(deadline);
    if (startup == Startup::kReady) return;
    kill9();
    if (startup == Startup::kTimedOut || Clock::now() >= deadline)
      throw std::runtime_error("clickhouse: the restarted server did not come up within 30 s\n" + log_tail());
    std::this_thread::sleep_for(250ms);
  }
}

std::string ClickHouseServer::query(const std::string& sql) const {
  auto [code, body] = http_post(http_port_, user_, password_, "/", sql);
  if (code != 200) throw std::runtime_error("clickhouse: HTTP " + std::to_string(code) + ": " + body);
  return body;
}

}  // namespace pgfleet
