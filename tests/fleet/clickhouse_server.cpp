// Test support: a throwaway ClickHouse server.
#include "clickhouse_server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace pgfleet {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kServerBinary[] = "/usr/sbin/clickhouse-server";
constexpr auto kStartTimeout = 30s;
constexpr auto kStopTimeout = 10s;
constexpr auto kPollInterval = 50ms;
constexpr auto kProbeTimeout = 2s;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
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

bool ClickHouseServer::available() { return ::access(kServerBinary, X_OK) == 0; }

ClickHouseServer::ClickHouseServer(std::string user, std::string password, std::optional<ServerTls> tls)
    : user_(std::move(user)), password_(std::move(password)), tls_(std::move(tls)) {
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
      std::vector<uint16_t> ports = free_ports(tls_ ? 3 : 2);
      http_port_ = ports[0];
      tcp_port_ = ports[1];
      if (tls_) https_port_ = ports[2];
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

std::string ClickHouseServer::https_url(const std::string& host) const {
  return "clickhouses://" + host + ":" + std::to_string(https_port_) + "/";
}

// 18.16 needs the certificate and its key, no more (no dhParamsFile); it
// asks for no client certificate and loads no CAs of its own.
std::string ClickHouseServer::tls_config() const {
  if (!tls_) return "";
  return "  <https_port>" + std::to_string(https_port_) + "</https_port>\n" +
         "  <listen_host>127.0.0.2</listen_host>\n" + "  <openSSL><server><certificateFile>" + tls_->cert_file +
         "</certificateFile><privateKeyFile>" + tls_->key_file +
         "</privateKeyFile><verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>"
         "<disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>\n";
}

void ClickHouseServer::write_config() const {
  std::ostringstream config;
  config << "<?xml version=\"1.0\"?>\n"
         << "<yandex>\n"
         << "  <logger><level>warning</level><log>" << dir_ << "/server.log</log><errorlog>" << dir_
         << "/server.err.log</errorlog><console>0</console></logger>\n"
         << "  <http_port>" << http_port_ << "</http_port>\n"
         << "  <tcp_port>" << tcp_port_ << "</tcp_port>\n"
         << "  <listen_host>127.0.0.1</listen_host>\n"
         << tls_config() << "  <path>" << dir_ << "/data/</path>\n"
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
