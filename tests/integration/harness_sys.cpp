// Root integration harness: helpers for the syscalls under test (sockets,
// addresses, child processes, network namespaces, cgroups).
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "harness.hpp"

namespace pgtest {

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

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

uint64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
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
  if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 1) throw std::runtime_error("udp sendto");
  return fd;
}

int udp_send_and_close(uint64_t* cookie) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = static_cast<int>(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a));
  if (cookie) *cookie = sock_cookie(fd);
  close(fd);
  return rc;
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

sockaddr_in v4(uint16_t port, uint32_t addr) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(addr);
  return a;
}

sockaddr_in6 v6(uint16_t port, const char* addr) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, addr, &a.sin6_addr);
  return a;
}

uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto a = v4(0);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  uint16_t p = local_port(fd);
  close(fd);
  return p;
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

void accept_and_close(const Listener& l) {
  int a = accept(l.fd, nullptr, nullptr);
  if (a >= 0) close(a);
}

FireResult run_pg_fire(const char* mode, const std::string& arg, const char* path, const char* extra) {
  FireResult r;
  int p[2];
  if (pipe(p) != 0) return r;
  r.pid = fork();
  if (r.pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    execl(path, path, mode, arg.c_str(), extra, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  char buf[64] = {};
  ssize_t n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  int status = 0;
  waitpid(r.pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  unsigned port = 0;
  unsigned long long cookie = 0;
  if (n > 0 && sscanf(buf, "%u %llu", &port, &cookie) == 2) {
    r.port = static_cast<uint16_t>(port);
    r.cookie = cookie;
  }
  return r;
}

std::pair<int, std::string> run_cli(std::vector<std::string> args, bool as_nobody) {
  char tmpl[] = "/tmp/portghost-cli-XXXXXX";
  int efd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(efd, STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    if (as_nobody && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(99);
    std::vector<char*> argv{const_cast<char*>(PORTGHOST_BIN)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(PORTGHOST_BIN, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::string err(4096, '\0');
  ssize_t n = pread(efd, err.data(), err.size(), 0);
  err.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(efd);
  unlink(tmpl);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

ChildResult run_child(const std::function<int()>& body, bool wait_for_kill) {
  int p[2];
  if (pipe(p) != 0) abort();
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    int fd = body();
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%llu %u %d\n", static_cast<unsigned long long>(sock_cookie(fd)), local_port(fd),
                     gettid_());
    if (write(p[1], buf, static_cast<size_t>(n)) < 0) _exit(1);
    if (wait_for_kill) pause();
    _exit(0);
  }
  close(p[1]);
  char buf[128] = {};
  ssize_t n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  ChildResult r{child, 0, 0, 0};
  if (n > 0) {
    unsigned long long ck = 0;
    unsigned port = 0;
    int tid = 0;
    sscanf(buf, "%llu %u %d", &ck, &port, &tid);
    r = {child, ck, static_cast<uint16_t>(port), tid};
  }
  return r;
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

namespace {
// enter_fresh_netns(), and an ephemeral range of four ports (40000-40003).
void enter_netns_with_four_ports() {
  enter_fresh_netns();
  std::ofstream r("/proc/sys/net/ipv4/ip_local_port_range");
  r << "40000 40003" << std::endl;
}
}  // namespace

NetnsChild::NetnsChild(const std::function<void(uint64_t* out)>& fn) {
  if (pipe(res_) != 0 || pipe(go_) != 0) return;
  pid = fork();
  if (pid == 0) {
    close(res_[0]);
    close(go_[1]);
    enter_netns_with_four_ports();
    uint64_t out[8] = {};
    fn(out);
    if (write(res_[1], out, sizeof out) != sizeof out) _exit(4);
    char x;
    if (read(go_[0], &x, 1) < 0) _exit(5);  // stay until the parent has looked at our namespace
    _exit(0);
  }
  close(res_[1]);
  close(go_[0]);
  res_[1] = go_[0] = -1;
}

NetnsChild::~NetnsChild() {
  if (res_[0] >= 0) close(res_[0]);
  if (go_[1] >= 0) release();
}

bool NetnsChild::result(uint64_t (&out)[8]) {
  bool ok = read(res_[0], out, sizeof out) == static_cast<ssize_t>(sizeof out);
  close(res_[0]);
  res_[0] = -1;
  return ok;
}

int NetnsChild::release() {
  close(go_[1]);
  go_[1] = -1;
  if (pid <= 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace pgtest
