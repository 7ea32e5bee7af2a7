#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgtest {

std::optional<std::string> skip_reason() {
  if (geteuid() != 0) return "not root: the integration tests load BPF programs and need root";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "the kernel has no BTF";
  return std::nullopt;
}

Tracer::Tracer(std::vector<std::string> extra_args) {
  char tmpl[] = "/tmp/portghost-it-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  dir_ = tmpl;
  path_ = dir_ + "/events.jsonl";
  err_path_ = dir_ + "/stderr.txt";
  std::vector<std::string> args = {PORTGHOST_BIN, "trace", "--format", "json", "-o", path_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // PG_TRACE_EXTRA: arguments for every tracer of a run (e.g. --no-fentry,
  // to test the fallback hooks on a kernel that has fentry)
  if (const char* env = std::getenv("PG_TRACE_EXTRA")) {
    std::istringstream words(env);
    for (std::string w; words >> w;) args.push_back(w);
  }
  pid_ = fork();
  if (pid_ == 0) {
    int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (err >= 0) dup2(err, STDERR_FILENO);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
}

Tracer::~Tracer() {
  if (pid_ > 0) stop();
  std::string cmd = "rm -rf '" + dir_ + "'";
  if (std::system(cmd.c_str()) != 0) {
  }
}

bool Tracer::wait_started(std::chrono::milliseconds timeout) {
  return wait_for([](const Json& j) { return j["type"] == "start"; }, timeout).has_value();
}

int Tracer::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGINT);
  int status = 0;
  for (int i = 0; i < 200; i++) {  // 10 s
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(50ms);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

std::vector<Json> Tracer::records() const {
  std::vector<Json> out;
  std::ifstream f(path_);
  std::string line;
  while (std::getline(f, line)) {
    if (f.eof()) break;  // a line without its newline is still being written
    out.push_back(Json::parse(line));
  }
  return out;
}

std::optional<Json> Tracer::wait_for(const std::function<bool(const Json&)>& pred,
                                     std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (const auto& r : records())
      if (pred(r)) return r;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

std::vector<Json> Tracer::all(const std::function<bool(const Json&)>& pred) const {
  std::vector<Json> out;
  for (const auto& r : records())
    if (pred(r)) out.push_back(r);
  return out;
}

std::string Tracer::stderr_text() const {
  std::ifstream f(err_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t sock_cookie(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) != 0) throw std::runtime_error("SO_COOKIE");
  return c;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

uint32_t netns_inode(pid_t pid) {
  std::string p = pid ? "/proc/" + std::to_string(pid) + "/ns/net" : "/proc/self/ns/net";
  struct stat st {};
  stat(p.c_str(), &st);
  return static_cast<uint32_t>(st.st_ino);
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::string thread_comm() {
  char name[17] = {};
  prctl(PR_GET_NAME, name);
  return name;
}

std::string process_comm() {
  std::ifstream f("/proc/self/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

std::string cgroup2_root() {
  std::ifstream m("/proc/mounts");
  std::string dev, dir, type, rest;
  while (m >> dev >> dir >> type && std::getline(m, rest))
    if (type == "cgroup2") return dir;
  return "";
}

int udp_sendto_socket() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(9);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 1)
    throw std::runtime_error("udp sendto");
  return fd;
}

uint64_t udp_send_from_cgroup(const std::string& cg) {
  int go[2], res[2];
  if (pipe(go) != 0 || pipe(res) != 0) throw std::runtime_error("pipe");
  pid_t child = fork();
  if (child == 0) {
    char x;
    if (read(go[0], &x, 1) != 1) _exit(4);  // the parent has moved us
    int fd = udp_sendto_socket();
    uint64_t c = sock_cookie(fd);
    if (write(res[1], &c, sizeof c) != sizeof c) _exit(5);
    close(fd);
    _exit(0);
  }
  {
    std::ofstream procs(cg + "/cgroup.procs");
    procs << child << std::endl;
  }
  uint64_t c = 0;
  if (write(go[1], "g", 1) != 1 || read(res[0], &c, sizeof c) != static_cast<ssize_t>(sizeof c)) c = 0;
  waitpid(child, nullptr, 0);
  for (int fd : {go[0], go[1], res[0], res[1]}) close(fd);
  return c;
}

uint64_t own_cgroup_id() {
  std::string root = cgroup2_root();
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    struct stat st {};
    if (!root.empty() && stat((root + line.substr(3)).c_str(), &st) == 0) return st.st_ino;
  }
  return 0;
}

Listener::Listener(int family) {
  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  listen(fd, 64);
  port = local_port(fd);
}

Listener::~Listener() {
  if (fd >= 0) close(fd);
}

std::function<bool(const Json&)> is(const std::string& type, uint64_t cookie) {
  return [=](const Json& j) { return j["type"] == type && j.contains("sock") && j["sock"] == cookie; };
}

std::function<bool(const Json&)> type_port(const std::string& type, uint16_t port, const std::string& proto) {
  return [=](const Json& j) {
    return j["type"] == type && j.contains("lport") && j["lport"] == port && j["proto"] == proto;
  };
}

void enter_fresh_netns() {
  if (unshare(CLONE_NEWNET) != 0) _exit(3);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ioctl(s, SIOCGIFFLAGS, &ifr);
  ifr.ifr_flags |= IFF_UP;
  ioctl(s, SIOCSIFFLAGS, &ifr);
  close(s);
}

void enter_netns_with_four_ports() {
  enter_fresh_netns();
  std::ofstream r("/proc/sys/net/ipv4/ip_local_port_range");
  r << "40000 40003" << std::endl;
}

Tracer* SharedTracerTest::tracer_ = nullptr;
bool SharedTracerTest::started_ = false;

void SharedTracerTest::SetUpTestSuite() {
  if (skip_reason()) return;
  tracer_ = new Tracer({"--no-existing"});
  started_ = tracer_->wait_started();
}

void SharedTracerTest::TearDownTestSuite() {
  delete tracer_;
  tracer_ = nullptr;
}

void SharedTracerTest::SetUp() {
  if (auto r = skip_reason()) GTEST_SKIP() << *r;
  ASSERT_TRUE(started_) << "tracer did not start: " << tracer_->stderr_text();
}

}  // namespace pgtest
