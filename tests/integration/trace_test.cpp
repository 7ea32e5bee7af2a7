// Root integration tests: the real tracer, real syscalls, exact records.
// Each test fires one path from this process (or a thread, a child, an exec'd
// program, another network namespace) and asserts the assign and release.
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <net/if.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <iterator>
#include <climits>
#include <fstream>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

namespace {

uint64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

sockaddr_in v4(uint16_t port, uint32_t addr = INADDR_LOOPBACK) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(addr);
  return a;
}

sockaddr_in6 v6(uint16_t port, const char* addr = "::1") {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, addr, &a.sin6_addr);
  return a;
}

template <class A>
int do_connect(int fd, const A& a) {
  return connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

// A port nobody listens on (bound once, then freed).
uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto a = v4(0);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  uint16_t p = local_port(fd);
  close(fd);
  return p;
}

// Accept the pending connection on l and close it (lets the client's close
// complete its FIN exchange).
void accept_and_close(const Listener& l) {
  int a = accept(l.fd, nullptr, nullptr);
  if (a >= 0) close(a);
}

// A tcp socket of `family` connects to addr, then both ends close (we first).
struct Fired {
  uint64_t cookie;
  uint16_t port;
};

template <class A>
Fired connect_and_close(int family, const A& addr, const Listener& l) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (do_connect(fd, addr) != 0) return {0, 0};
  Fired f{sock_cookie(fd), local_port(fd)};
  close(fd);
  accept_and_close(l);
  return f;
}

// Runs pg_fire MODE ARG to its end; what it printed ("PORT COOKIE").
struct FireResult {
  pid_t pid = -1;
  int exit_code = -1;
  uint16_t port = 0;
  uint64_t cookie = 0;
};

FireResult run_pg_fire(const char* mode, const std::string& arg, const char* path = PG_FIRE_BIN,
                       const char* extra = nullptr) {
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

struct Window {
  uint64_t t0 = boot_ns();
  uint64_t t1 = 0;
  void end() { t1 = boot_ns(); }
};

}  // namespace

class Trace : public SharedTracerTest {
 protected:
  Json assign_of(uint64_t cookie) {
    auto r = t().wait_for(is("assign", cookie));
    EXPECT_TRUE(r) << "no assign for sock " << cookie;
    return r.value_or(Json::object());
  }
  Json release_of(uint64_t cookie) {
    auto r = t().wait_for(is("release", cookie));
    EXPECT_TRUE(r) << "no release for sock " << cookie;
    return r.value_or(Json::object());
  }
  // The assign carries this thread's full attribution.
  void expect_mine(const Json& a) {
    EXPECT_EQ(a["pid"], getpid());
    EXPECT_EQ(a["tid"], gettid_());
    EXPECT_EQ(a["ppid"], getppid());
    EXPECT_EQ(a["uid"], getuid());
    EXPECT_EQ(a["comm"], process_comm());
    EXPECT_EQ(a["thread"], thread_comm());
    EXPECT_EQ(a["exe"], self_exe());
    EXPECT_EQ(a["netns"], netns_inode());
    EXPECT_TRUE(a["cgroup_id"].is_number());
    EXPECT_EQ(a["kernel"], false);
  }
  void expect_lifetime(const Json& rel, const Window& w) {
    ASSERT_TRUE(rel["duration_ns"].is_number()) << rel.dump();
    uint64_t d = rel["duration_ns"];
    EXPECT_GT(d, 0u);
    EXPECT_LE(d, w.t1 - w.t0) << rel.dump();
  }
};

TEST_F(Trace, StartRecordComesFirstWithHooksAndRange) {
  auto recs = t().records();
  ASSERT_FALSE(recs.empty());
  const Json& s = recs.front();
  EXPECT_EQ(s["type"], "start");
  EXPECT_TRUE(s["ts"].is_string());
  EXPECT_TRUE(s["ts_ns"].is_number());
  EXPECT_FALSE(s["version"].get<std::string>().empty());
  EXPECT_FALSE(s["kernel"].get<std::string>().empty());
  EXPECT_GE(s["hooks"].size(), 10u);
  ASSERT_EQ(s["port_range"].size(), 2u);
  EXPECT_LE(s["port_range"][0].get<int>(), s["port_range"][1].get<int>());
  EXPECT_TRUE(s["uncaught"].is_array());
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(s["host"], host);
  EXPECT_EQ(s["boot_id"].get<std::string>().size(), 36u);
  EXPECT_TRUE(s["machine_id"].is_string());
}

// The ends of connect, bind and send come from one world: fexit on the
// kernel functions where the kernel has it, else the socket tracepoints
// (Linux >= 6.3), else the syscall exits; never two (a record would be
// written twice). PG_EXPECT_WORLD names the one this kernel must use.
namespace {
const std::set<std::string> kFexitHooks = {"fentry/inet_autobind",   "fexit/inet_autobind",
                                           "fexit/inet_csk_get_port", "fexit/udp_lib_get_port",
                                           "fexit/inet_dgram_connect", "fexit/inet_hash_connect"};
const std::set<std::string> kSocketHooks = {"tp_btf/sock_send_length"};
const std::set<std::string> kExitHooks = {"tracepoint/syscalls/sys_exit_bind", "tracepoint/syscalls/sys_exit_sendto",
                                          "tracepoint/syscalls/sys_exit_connect", "cgroup/sendmsg4"};
size_t count_hooks(const Json& start, const std::set<std::string>& names) {
  size_t n = 0;
  for (const auto& h : start["hooks"]) n += names.count(h.get<std::string>());
  return n;
}
}  // namespace

TEST_F(Trace, ExhaustionHooksAreOneWorldOnly) {
  const Json s = t().records().front();
  size_t fexit = count_hooks(s, kFexitHooks), sock = count_hooks(s, kSocketHooks), exits = count_hooks(s, kExitHooks);
  std::string world = s["world"];
  if (world == "fexit") EXPECT_TRUE(fexit == kFexitHooks.size() && sock == 0 && exits == 0) << s["hooks"].dump();
  else if (world == "socket") EXPECT_TRUE(fexit == 0 && sock == kSocketHooks.size() && exits == 0) << s["hooks"].dump();
  else if (world == "syscall") EXPECT_TRUE(fexit == 0 && sock == 0 && exits == kExitHooks.size()) << s["hooks"].dump();
  else ADD_FAILURE() << "no world: " << s.dump();
  // where another hook can serve, nothing sits on the syscall layer, whose
  // tracepoints slow every syscall of every process
  if (world != "syscall") {
    for (const auto& h : s["hooks"]) {
      std::string name = h;
      EXPECT_EQ(name.find("syscalls/"), std::string::npos) << name;
      EXPECT_EQ(name.find("raw_syscalls"), std::string::npos) << name;
      EXPECT_EQ(name.find("raw_tp/sys_"), std::string::npos) << name;
    }
  }
  // the start record names the hook of every path, the same paths in both
  ASSERT_TRUE(s["paths"].is_object());
  for (const char* p : {"tcp connect(): port chosen", "bind(): port given or chosen", "udp connect()",
                        "bind(0) finding no free port", "listen() finding no free port",
                        "udp send finding no free port", "udp connect() finding no free port",
                        "sctp port taken, released or not found"})
    EXPECT_TRUE(s["paths"].contains(p)) << p << " in " << s["paths"].dump();
  EXPECT_EQ(s["paths"]["udp connect() finding no free port"].is_null(), world == "syscall") << s["paths"].dump();
  if (const char* want = std::getenv("PG_EXPECT_WORLD")) {
    EXPECT_EQ(world, std::string(want)) << s["hooks"].dump();
  }
}

// fexit on inet_autobind sees this one; the socket world at the socket's
// close (here), with the connect's time and task.
TEST_F(Trace, UdpConnectFindingNoFreePortIsRecordedWhereFexitOrSocketTracepointsWork) {
  if (t().records().front()["world"] == "syscall") GTEST_SKIP() << "the syscall-exit world cannot see it";
  int res[2], go[2];
  ASSERT_EQ(pipe(res), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(res[0]);
    close(go[1]);
    enter_netns_with_four_ports();
    std::vector<int> held;
    for (int i = 0; i < 16; i++) {  // udp bind(0) until no port is left
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      auto b = v4(0, INADDR_ANY);
      if (bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) break;
      held.push_back(fd);
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    auto dst = v4(9);
    int err = connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 ? 0 : errno;
    close(fd);
    if (write(res[1], &err, sizeof err) != sizeof err) _exit(4);
    char x;
    if (read(go[0], &x, 1) < 0) _exit(5);
    _exit(0);
  }
  close(res[1]);
  close(go[0]);
  int err = 0;
  ASSERT_EQ(read(res[0], &err, sizeof err), static_cast<ssize_t>(sizeof err));
  close(res[0]);
  // (the fifth bind(0) has its own exhausted record, how "bind")
  auto ex = t().wait_for(
      [&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "connect"; });
  close(go[1]);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(err, EAGAIN) << "the udp connect did not run out of ports";
  ASSERT_TRUE(ex) << "no exhausted record for the udp connect";
  EXPECT_EQ((*ex)["how"], "connect");
  EXPECT_EQ((*ex)["proto"], "udp");
  EXPECT_EQ((*ex)["held"], 4);
}

TEST_F(Trace, TcpConnectIpv4) {
  Listener l;
  Window w;
  auto [c, port] = connect_and_close(AF_INET, v4(l.port), l);
  ASSERT_NE(c, 0u);
  Json a = assign_of(c);
  EXPECT_EQ(a["proto"], "tcp");
  EXPECT_EQ(a["family"], "ipv4");
  EXPECT_EQ(a["laddr"], "127.0.0.1");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["raddr"], "127.0.0.1");
  EXPECT_EQ(a["rport"], l.port);
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["ephemeral"], true);
  expect_mine(a);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["lport"], port);
  EXPECT_EQ(r["rport"], l.port);
  EXPECT_EQ(r["pid"], getpid());
  EXPECT_EQ(r["comm"], process_comm());
  EXPECT_EQ(r["timewait"], true);  // we closed first
  expect_lifetime(r, w);
  EXPECT_EQ(a["host"], r["host"]);
  EXPECT_FALSE(a["host"].get<std::string>().empty());
}

TEST_F(Trace, TcpConnectIpv6) {
  Listener l(AF_INET6);
  Window w;
  auto [c, port] = connect_and_close(AF_INET6, v6(l.port), l);
  ASSERT_NE(c, 0u);
  Json a = assign_of(c);
  EXPECT_EQ(a["family"], "ipv6");
  EXPECT_EQ(a["laddr"], "::1");
  EXPECT_EQ(a["raddr"], "::1");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["how"], "connect");
  expect_mine(a);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["family"], "ipv6");
  expect_lifetime(r, w);
}

TEST_F(Trace, TcpConnectV4MappedFromIpv6Socket) {
  Listener l;
  auto [c, port] = connect_and_close(AF_INET6, v6(l.port, "::ffff:127.0.0.1"), l);
  ASSERT_NE(c, 0u);
  Json a = assign_of(c);
  EXPECT_EQ(a["family"], "ipv6");
  EXPECT_EQ(a["laddr"], "::ffff:127.0.0.1");
  EXPECT_EQ(a["raddr"], "::ffff:127.0.0.1");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["how"], "connect");
  release_of(c);
}

TEST_F(Trace, TcpNonBlockingConnect) {
  Listener l;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = do_connect(fd, v4(l.port));
  ASSERT_TRUE(rc == 0 || errno == EINPROGRESS);
  uint64_t c = sock_cookie(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["lport"], local_port(fd));
  expect_mine(a);
  close(fd);
  accept_and_close(l);
  release_of(c);
}

TEST_F(Trace, TcpFailedConnectIsStillRecorded) {
  uint16_t dead = closed_port();
  Window w;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(dead)), -1);
  ASSERT_EQ(errno, ECONNREFUSED);
  uint64_t c = sock_cookie(fd);
  close(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["rport"], dead);
  EXPECT_EQ(a["ephemeral"], true);
  EXPECT_GT(a["lport"].get<int>(), 0);
  expect_mine(a);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["lport"], a["lport"]);
  EXPECT_EQ(r["timewait"], false);
  expect_lifetime(r, w);
}

TEST_F(Trace, FixedPortSurvivesAFailedConnectUntilClose) {
  uint16_t dead = closed_port(), port = closed_port();
  Window w;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto b = v4(port);  // a port the user names is kept (SOCK_BINDPORT_LOCK)
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  ASSERT_EQ(do_connect(fd, v4(dead)), -1);
  uint64_t c = sock_cookie(fd);
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&b), sizeof b), -1) << "the kernel should still hold it";
  close(probe);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "bind");
  EXPECT_EQ(a["ephemeral"], false);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("release", c)).empty()) << "released while the port is still bound";
  close(fd);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["lport"], port);
  expect_lifetime(r, w);
  // held through the 300 ms between the failed connect and close()
  EXPECT_GE(r["duration_ns"].get<uint64_t>(), 300'000'000u) << "released at the failed connect";
  EXPECT_EQ(t().all(is("release", c)).size(), 1u);
}

TEST_F(Trace, KernelChosenBindPortIsFreedByAFailedConnect) {
  uint16_t dead = closed_port();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint16_t port = local_port(fd);
  ASSERT_EQ(do_connect(fd, v4(dead)), -1);
  uint64_t c = sock_cookie(fd);
  // with bind(0) the kernel gives the port back when the connect fails
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  auto pb = v4(port);
  bool freed = bind(probe, reinterpret_cast<sockaddr*>(&pb), sizeof pb) == 0;
  close(probe);
  ASSERT_TRUE(freed) << "this kernel keeps a bind(0) port after a failed connect";
  Json r = release_of(c);  // before our close()
  EXPECT_EQ(r["lport"], port);
  close(fd);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(t().all(is("release", c)).size(), 1u);
}

TEST_F(Trace, BindAddressNoPortGetsItsPortAtConnect) {
  Listener l;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ASSERT_EQ(setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one), 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  ASSERT_EQ(local_port(fd), 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  close(fd);
  accept_and_close(l);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["ephemeral"], true);
  release_of(c);
  EXPECT_EQ(t().all(is("assign", c)).size(), 1u);
}

TEST_F(Trace, TcpFastOpen) {
  Listener l;
  int qlen = 5;
  setsockopt(l.fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof qlen);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto a4 = v4(l.port);
  ASSERT_GE(sendto(fd, "hi", 2, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&a4), sizeof a4), 0) << strerror(errno);
  uint64_t c = sock_cookie(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "fastopen");
  EXPECT_EQ(a["lport"], local_port(fd));
  EXPECT_EQ(a["rport"], l.port);
  expect_mine(a);
  close(fd);
  accept_and_close(l);
  release_of(c);
}

TEST_F(Trace, BindPortZeroTcpAndUdp) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    Window w;
    int fd = socket(AF_INET, type, 0);
    auto b = v4(0);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
    uint64_t c = sock_cookie(fd);
    uint16_t port = local_port(fd);
    close(fd);
    Json a = assign_of(c);
    EXPECT_EQ(a["proto"], type == SOCK_STREAM ? "tcp" : "udp");
    EXPECT_EQ(a["how"], "bind");
    EXPECT_EQ(a["ephemeral"], true);
    EXPECT_EQ(a["lport"], port);
    EXPECT_TRUE(a["raddr"].is_null());
    EXPECT_TRUE(a["rport"].is_null());
    expect_mine(a);
    Json r = release_of(c);
    w.end();
    EXPECT_EQ(r["lport"], port);
    EXPECT_EQ(r["laddr"], "127.0.0.1");
    expect_lifetime(r, w);
  }
}

TEST_F(Trace, BindFixedPortIsNotEphemeral) {
  uint16_t want = closed_port();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(want);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint64_t c = sock_cookie(fd);
  close(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "bind");
  EXPECT_EQ(a["lport"], want);
  EXPECT_EQ(a["ephemeral"], false);
  release_of(c);
}

TEST_F(Trace, ListenAutobind) {
  Window w;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  ASSERT_EQ(listen(fd, 1), 0);
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  close(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "listen");
  EXPECT_EQ(a["ephemeral"], true);
  EXPECT_EQ(a["lport"], port);
  expect_mine(a);
  Json r = release_of(c);
  w.end();
  expect_lifetime(r, w);
}

TEST_F(Trace, UdpAutobindOnSendtoSendmsgSendmmsg) {
  for (int which = 0; which < 3; which++) {
    Window w;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    auto dst = v4(9);
    char byte = 'x';
    iovec iov{&byte, 1};
    msghdr m{};
    m.msg_name = &dst;
    m.msg_namelen = sizeof dst;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (which == 0) {
      ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
    }
    if (which == 1) {
      ASSERT_EQ(sendmsg(fd, &m, 0), 1);
    }
    if (which == 2) {
      mmsghdr mm[2]{};
      mm[0].msg_hdr = m;
      mm[1].msg_hdr = m;
      ASSERT_EQ(sendmmsg(fd, mm, 2, 0), 2);
    }
    uint64_t c = sock_cookie(fd);
    uint16_t port = local_port(fd);
    close(fd);
    Json a = assign_of(c);
    EXPECT_EQ(a["proto"], "udp");
    EXPECT_EQ(a["how"], "sendmsg");
    EXPECT_EQ(a["ephemeral"], true);
    EXPECT_EQ(a["lport"], port);
    expect_mine(a);
    Json r = release_of(c);
    w.end();
    EXPECT_EQ(r["lport"], port);
    expect_lifetime(r, w);
    EXPECT_EQ(t().all(is("assign", c)).size(), 1u) << "sendmmsg of two datagrams is one assignment";
  }
}

TEST_F(Trace, UdpConnectWithoutSend) {
  Window w;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(do_connect(fd, v4(53)), 0);
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  close(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["proto"], "udp");
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["raddr"], "127.0.0.1");
  EXPECT_EQ(a["rport"], 53);
  expect_mine(a);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["rport"], 53);
  expect_lifetime(r, w);
}

TEST_F(Trace, AcceptedSocketIsNotAnAssignment) {
  Listener l;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  int acc = accept(l.fd, nullptr, nullptr);
  ASSERT_GE(acc, 0);
  uint64_t ca = sock_cookie(acc), cc = sock_cookie(fd);
  close(acc);
  close(fd);
  release_of(cc);  // the client's lifetime is complete
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("assign", ca)).empty());
  EXPECT_TRUE(t().all(is("release", ca)).empty());
}

TEST_F(Trace, ReleaseOnlyWhenTheLastDupIsClosed) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint64_t c = sock_cookie(fd);
  int fd2 = dup(fd);
  close(fd);
  assign_of(c);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("release", c)).empty()) << "released while a dup is open";
  close(fd2);
  release_of(c);
}

TEST_F(Trace, ReleaseWhenForkedChildClosesLastKeepsTheAssigner) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto dst = v4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
  uint64_t c = sock_cookie(fd);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    char x;
    close(go[1]);
    if (read(go[0], &x, 1) < 0) _exit(1);  // parent says: exit now
    _exit(0);
  }
  close(go[0]);
  close(fd);
  assign_of(c);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("release", c)).empty()) << "released while the child holds it";
  close(go[1]);
  waitpid(child, nullptr, 0);
  Json r = release_of(c);
  EXPECT_EQ(r["pid"], getpid()) << "the release names the assigner, not the last holder";
}

namespace {
// Runs body in a child that writes "cookie port tid" to the pipe, then waits
// for the parent (or is killed).
struct ChildResult {
  pid_t pid;
  uint64_t cookie;
  uint16_t port;
  pid_t tid;
};

template <class F>
ChildResult run_child(F body, bool wait_for_kill) {
  int p[2];
  if (pipe(p) != 0) abort();
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    int fd = body();
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%llu %u %d\n", static_cast<unsigned long long>(sock_cookie(fd)),
                     local_port(fd), gettid_());
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
}  // namespace

TEST_F(Trace, FromForkedChildAndReleasedAtExit) {
  auto r = run_child(udp_sendto_socket, false);
  waitpid(r.pid, nullptr, 0);
  ASSERT_NE(r.cookie, 0u);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["pid"], r.pid);
  EXPECT_EQ(a["tid"], r.pid);
  EXPECT_EQ(a["ppid"], getpid());
  EXPECT_EQ(a["lport"], r.port);
  EXPECT_EQ(a["exe"], self_exe());
  Json rel = release_of(r.cookie);
  EXPECT_EQ(rel["pid"], r.pid);
}

TEST_F(Trace, ReleasedWhenTheHolderIsKilled) {
  auto r = run_child(
      [] {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        listen(fd, 1);
        return fd;
      },
      true);
  ASSERT_NE(r.cookie, 0u);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["how"], "listen");
  kill(r.pid, SIGKILL);
  waitpid(r.pid, nullptr, 0);
  Json rel = release_of(r.cookie);
  EXPECT_EQ(rel["lport"], r.port);
  EXPECT_EQ(rel["pid"], r.pid);
}

TEST_F(Trace, ResetCloseReleasesWithoutTimewait) {
  Listener l;
  Window w;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  uint64_t c = sock_cookie(fd);
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["timewait"], false);
  expect_lifetime(r, w);
  accept_and_close(l);
}

TEST_F(Trace, PassiveCloseReleasesWithoutTimewait) {
  Listener l;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  uint64_t c = sock_cookie(fd);
  accept_and_close(l);  // the server closes first: we end in LAST_ACK, not TIME_WAIT
  std::this_thread::sleep_for(50ms);
  close(fd);
  Json r = release_of(c);
  EXPECT_EQ(r["timewait"], false);
}

TEST_F(Trace, FromAThread) {
  uint64_t c = 0;
  pid_t tid = 0;
  std::thread th([&] {
    pthread_setname_np(pthread_self(), "pg-worker");
    int fd = udp_sendto_socket();
    c = sock_cookie(fd);
    tid = gettid_();
    close(fd);
  });
  th.join();
  Json a = assign_of(c);
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_EQ(a["tid"], tid);
  EXPECT_NE(a["tid"], getpid());
  EXPECT_EQ(a["thread"], "pg-worker");
  EXPECT_EQ(a["comm"], process_comm());
  release_of(c);
}

TEST_F(Trace, FromAShortLivedExecdProgram) {
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_EQ(f.exit_code, 0);
  ASSERT_NE(f.cookie, 0u);
  pid_t child = f.pid;
  uint16_t port = f.port;
  uint64_t cookie = f.cookie;
  Json a = assign_of(cookie);
  char real[PATH_MAX];
  ASSERT_TRUE(realpath(PG_FIRE_BIN, real));
  EXPECT_EQ(a["pid"], child);
  EXPECT_EQ(a["comm"], "pg_fire");
  EXPECT_EQ(a["exe"], real);
  EXPECT_EQ(a["cmdline"], std::string(PG_FIRE_BIN) + " udp-send 9");
  EXPECT_EQ(a["lport"], port);
  Json r = release_of(cookie);
  EXPECT_EQ(r["comm"], "pg_fire");
}

TEST_F(Trace, FromAFreshNetworkNamespace) {
  auto r = run_child(
      [] {
        enter_fresh_netns();
        return udp_sendto_socket();
      },
      true);
  ASSERT_NE(r.cookie, 0u) << "child could not set up a network namespace";
  uint32_t ns = netns_inode(r.pid);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["netns"], ns);
  EXPECT_NE(a["netns"], netns_inode());
  EXPECT_EQ(a["pid"], r.pid);
  kill(r.pid, SIGKILL);
  waitpid(r.pid, nullptr, 0);
  release_of(r.cookie);
}

TEST_F(Trace, IoUringConnectAndSendmsg) {
  io_uring ring;
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) GTEST_SKIP() << "io_uring unavailable here: " << strerror(-rc);
  Listener l;
  // IORING_OP_CONNECT (tcp): no connect() syscall is made
  int tfd = socket(AF_INET, SOCK_STREAM, 0);
  auto dst = v4(l.port);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_connect(sqe, tfd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  io_uring_submit(&ring);
  io_uring_cqe* cqe = nullptr;
  ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  ASSERT_EQ(cqe->res, 0);
  io_uring_cqe_seen(&ring, cqe);
  // IORING_OP_SENDMSG (udp autobind): no send syscall is made
  int ufd = socket(AF_INET, SOCK_DGRAM, 0);
  auto udst = v4(9);
  char byte = 'x';
  iovec iov{&byte, 1};
  msghdr m{};
  m.msg_name = &udst;
  m.msg_namelen = sizeof udst;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  sqe = io_uring_get_sqe(&ring);
  io_uring_prep_sendmsg(sqe, ufd, &m, 0);
  io_uring_submit(&ring);
  ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  ASSERT_EQ(cqe->res, 1);
  io_uring_cqe_seen(&ring, cqe);
  io_uring_queue_exit(&ring);

  uint64_t tc = sock_cookie(tfd), uc = sock_cookie(ufd);
  Json ta = assign_of(tc);
  EXPECT_EQ(ta["how"], "connect");
  EXPECT_EQ(ta["lport"], local_port(tfd));
  EXPECT_EQ(ta["pid"], getpid());
  Json ua = assign_of(uc);
  EXPECT_EQ(ua["how"], "sendmsg");
  EXPECT_EQ(ua["lport"], local_port(ufd));
  EXPECT_EQ(ua["pid"], getpid());
  close(tfd);
  close(ufd);
  accept_and_close(l);
  release_of(tc);
  release_of(uc);
}

// ---- tracers of their own -------------------------------------------------------

class TraceOwn : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto r = skip_reason()) GTEST_SKIP() << *r;
  }
};

TEST_F(TraceOwn, ExistingSocketsAreReportedAndTheirReleaseMatches) {
  Listener l;  // held before the tracer starts
  uint64_t c = sock_cookie(l.fd);
  Tracer tr;
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  auto e = tr.wait_for(is("existing", c));
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["lport"], l.port);
  EXPECT_EQ((*e)["pid"], getpid());
  EXPECT_EQ((*e)["state"], "LISTEN");
  EXPECT_EQ((*e)["exe"], self_exe());
  EXPECT_EQ((*e)["netns"], netns_inode());
  EXPECT_EQ((*e)["cgroup_id"], own_cgroup_id());
  // existing records come right after start, before any other record
  auto recs = tr.records();
  ASSERT_GE(recs.size(), 2u);
  EXPECT_EQ(recs[0]["type"], "start");
  bool others = false;
  for (size_t i = 1; i < recs.size(); i++) {
    if (recs[i]["type"] != "existing") others = true;
    else EXPECT_FALSE(others) << "existing record after another kind: " << recs[i].dump();
  }
  close(l.fd);
  l.fd = -1;
  auto r = tr.wait_for(is("release", c));
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)["duration_ns"].is_null()) << "assigned before the trace: lifetime unknown";
  EXPECT_EQ((*r)["pid"], getpid());
}

TEST_F(TraceOwn, KernelFiltersAndStopRecordCounts) {
  Tracer tr({"--no-existing", "--proto", "udp"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  Listener l;
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(tcp, v4(l.port)), 0);
  uint64_t tc = sock_cookie(tcp);
  int udp = udp_sendto_socket();
  uint64_t uc = sock_cookie(udp);
  close(udp);
  close(tcp);
  ASSERT_TRUE(tr.wait_for(is("release", uc)));
  EXPECT_EQ(tr.stop(), 0);
  auto recs = tr.records();
  for (const auto& r : recs) EXPECT_FALSE(r.contains("sock") && r["sock"] == tc) << r.dump();
  ASSERT_FALSE(recs.empty());
  const Json& stop = recs.back();
  EXPECT_EQ(stop["type"], "stop");
  EXPECT_EQ(stop["reason"], "signal");
  size_t assigns = 0, releases = 0;
  for (const auto& r : recs) {
    assigns += r["type"] == "assign";
    releases += r["type"] == "release";
  }
  EXPECT_EQ(stop["records"]["assign"], assigns);
  EXPECT_EQ(stop["records"]["release"], releases);
  EXPECT_EQ(stop["lost"], 0);
}

TEST_F(TraceOwn, DurationStopsTheTrace) {
  Tracer tr({"--no-existing", "--duration", "1"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  auto s = tr.wait_for([](const Json& j) { return j["type"] == "stop"; }, 10s);
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["reason"], "duration");
}

namespace {
// Runs portghost with args (optionally as an unprivileged user); returns
// exit status and stderr.
std::pair<int, std::string> run_cli(std::vector<std::string> args, bool as_nobody = false) {
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
}  // namespace

TEST_F(TraceOwn, OutputInAMissingDirectoryIsExit1BeforeLoading) {
  auto [code, err] = run_cli({"trace", "-o", "/nonexistent-dir/x.jsonl"});
  EXPECT_EQ(code, 1);
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("/nonexistent-dir/x.jsonl"), std::string::npos) << err;
}

TEST_F(TraceOwn, NotRootIsExit1NamingTheCapabilities) {
  auto [code, err] = run_cli({"trace", "-o", "-"}, true);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("CAP_BPF"), std::string::npos) << err;
}

TEST_F(TraceOwn, BadValueIsExit2) {
  auto [code, err] = run_cli({"trace", "--port-range", "9-1"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(lines(err), 1u) << err;
  auto [code2, err2] = run_cli({"trace", "--cgroup", "/no/such/cgroup"});
  EXPECT_EQ(code2, 2) << err2;
  EXPECT_EQ(lines(err2), 1u) << err2;
}

TEST_F(TraceOwn, CommFilterKeepsOnlyThatProcess) {
  Tracer tr({"--no-existing", "--comm", "pg_fire"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int mine = udp_sendto_socket();
  uint64_t mc = sock_cookie(mine);
  close(mine);
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_NE(f.cookie, 0u);
  uint64_t cookie = f.cookie;
  ASSERT_TRUE(tr.wait_for(is("release", cookie)));
  EXPECT_TRUE(tr.all(is("assign", mc)).empty());
  EXPECT_TRUE(tr.all(is("release", mc)).empty()) << "the release of a filtered assign is filtered too";
}

TEST_F(TraceOwn, CgroupFilterKeepsOnlyTasksBelowIt) {
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  std::string cg = root + "/portghost-it-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << strerror(errno);
  std::string sub = cg + "/inner";  // tasks below the filtered cgroup count too
  ASSERT_EQ(mkdir(sub.c_str(), 0755), 0) << strerror(errno);
  {
    Tracer tr({"--no-existing", "--cgroup", cg});
    ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
    uint64_t child_cookie = udp_send_from_cgroup(sub);
    ASSERT_NE(child_cookie, 0u);
    int mine = udp_sendto_socket();
    uint64_t my_cookie = sock_cookie(mine);
    close(mine);
    EXPECT_TRUE(tr.wait_for(is("assign", child_cookie)));
    EXPECT_TRUE(tr.wait_for(is("release", child_cookie)));
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(tr.all(is("assign", my_cookie)).empty());
  }
  rmdir(sub.c_str());
  rmdir(cg.c_str());
}

namespace {
// A udp socket connected to 127.0.0.1:port by IORING_OP_CONNECT (no
// connect(2) syscall). -1 when io_uring is unavailable here, -2 when the
// connect failed; `why` says which.
int udp_connect_via_io_uring(uint16_t port, std::string& why) {
  io_uring ring;
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) {
    why = std::string("io_uring unavailable here: ") + strerror(-rc);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto dst = v4(port);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_connect(sqe, fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  io_uring_submit(&ring);
  io_uring_cqe* cqe = nullptr;
  int res = io_uring_wait_cqe(&ring, &cqe) == 0 ? cqe->res : -EIO;
  if (cqe) io_uring_cqe_seen(&ring, cqe);
  io_uring_queue_exit(&ring);
  if (res != 0) {
    why = std::string("io_uring connect: ") + strerror(-res);
    close(fd);
    return -2;
  }
  return fd;
}
}  // namespace

TEST_F(Trace, IoUringUdpConnectDoesNotLeakIntoTheNextConnect) {
  std::string why;
  int ufd = udp_connect_via_io_uring(53, why);
  if (ufd == -1) GTEST_SKIP() << why;
  ASSERT_GE(ufd, 0) << why;
  uint64_t uc = sock_cookie(ufd);
  // the next connect(2) of this thread is a tcp one
  Listener l;
  int tfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(tfd, v4(l.port)), 0);
  uint64_t tc = sock_cookie(tfd);
  uint16_t tport = local_port(tfd);
  Json ta = assign_of(tc);
  EXPECT_EQ(ta["proto"], "tcp");
  EXPECT_EQ(ta["lport"], tport);
  close(tfd);
  close(ufd);
  accept_and_close(l);
  release_of(tc);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(t().all(is("assign", tc)).size(), 1u);
  EXPECT_TRUE(t().all(type_port("assign", tport, "udp")).empty()) << "the tcp port reported as udp";
  for (const auto& a : t().all(is("assign", uc))) {
    EXPECT_EQ(a["proto"], "udp") << a.dump();
    EXPECT_NE(a["lport"], tport) << "the tcp connect's port was given to the io_uring udp socket: " << a.dump();
  }
}

// In the fexit world a udp connect() issued through io_uring (no syscall)
// is seen when it happens, with both ends; in the socket world at its next
// sight (here the close), with the connect's time and task.
TEST_F(Trace, IoUringUdpConnectIsRecordedWhereFexitOrSocketTracepointsWork) {
  if (t().records().front()["world"] == "syscall") GTEST_SKIP() << "the syscall-exit world cannot see it";
  std::string why;
  int fd = udp_connect_via_io_uring(53, why);
  if (fd == -1) GTEST_SKIP() << why;
  ASSERT_GE(fd, 0) << why;
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  uint64_t before_close = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  close(fd);
  Json a = assign_of(c);  // no send: only the connect could have reported it
  EXPECT_EQ(a["how"], "connect");
  EXPECT_EQ(a["proto"], "udp");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["raddr"], "127.0.0.1");
  EXPECT_EQ(a["rport"], 53);
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_FALSE(a.value("late", false)) << a.dump();
  EXPECT_LT(a["ts_ns"].get<uint64_t>(), before_close) << "the connect's time, not the close's";
  release_of(c);
}

TEST_F(Trace, ContainerIsNamedFromTheCgroupPath) {
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  std::string parent = root + "/portghost-ct-" + std::to_string(getpid());
  std::string cg = parent + "/docker-" + id + ".scope";
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0) << strerror(errno);
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << strerror(errno);
  uint64_t c = udp_send_from_cgroup(cg);
  ASSERT_NE(c, 0u);
  Json a = assign_of(c);
  EXPECT_EQ(a["container"], "docker://" + id);
  struct stat st {};
  ASSERT_EQ(stat(cg.c_str(), &st), 0);
  EXPECT_EQ(a["cgroup_id"], st.st_ino);
  rmdir(cg.c_str());
  rmdir(parent.c_str());
}

TEST_F(TraceOwn, StopsPromptlyUnderAFlood) {
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::atomic<bool> done{false};
  std::vector<std::thread> flood;
  for (int i = 0; i < 2; i++)
    flood.emplace_back([&] {
      auto until = std::chrono::steady_clock::now() + 8s;
      while (!done && std::chrono::steady_clock::now() < until) close(udp_sendto_socket());
    });
  std::this_thread::sleep_for(500ms);
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t sigint_ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(now.tv_nsec);
  int code = tr.stop();  // SIGINT; SIGKILL after 10 s
  done = true;
  for (auto& th : flood) th.join();
  EXPECT_EQ(code, 0) << "SIGINT must end the trace while the flood goes on";
  auto recs = tr.records();
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back()["type"], "stop");
  EXPECT_GT(recs.back()["records"]["assign"].get<uint64_t>(), 0u);
  // the data is complete promptly: the stop record within 2 s of SIGINT
  // (the process exit after it waits on the kernel's detach of the hooks);
  // a sanitizer build is several times slower
  uint64_t bound = getenv("PG_SANITIZED") ? 10'000'000'000ULL : 2'000'000'000ULL;
  EXPECT_LT(recs.back()["ts_ns"].get<uint64_t>() - sigint_ns, bound);
}

TEST_F(TraceOwn, NoExistingDoesNotTurnOldSocketsIntoNewAssigns) {
  int old = socket(AF_INET, SOCK_DGRAM, 0);  // bound before the trace
  auto b = v4(0);
  ASSERT_EQ(bind(old, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint64_t c = sock_cookie(old);
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  auto dst = v4(9);
  ASSERT_EQ(sendto(old, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
  int fresh = udp_sendto_socket();  // a real autobind, as a marker
  uint64_t fc = sock_cookie(fresh);
  ASSERT_TRUE(tr.wait_for(is("assign", fc)));
  EXPECT_TRUE(tr.all(is("assign", c)).empty()) << "a port bound before the start reported as assigned now";
  EXPECT_TRUE(tr.all(is("existing", c)).empty()) << "--no-existing";
  close(old);
  close(fresh);
}

TEST_F(TraceOwn, AStuckReaderDoesNotBlockTheStop) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);  // we never read: the pipe fills up
  char tmpl[] = "/tmp/portghost-err-XXXXXX";
  int efd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    dup2(efd, STDERR_FILENO);
    close(p[0]);
    execl(PORTGHOST_BIN, PORTGHOST_BIN, "trace", "--format", "json", "--no-existing", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  // attached once the start record is in the pipe (slow on an emulated CPU)
  int queued = 0;
  for (int i = 0; i < 400 && queued == 0; i++) {
    if (ioctl(p[0], FIONREAD, &queued) != 0) queued = 0;
    if (queued == 0) std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(queued, 0) << "no start record within 20 s";
  for (int i = 0; i < 3000; i++) close(udp_sendto_socket());  // far more than a pipe holds
  std::this_thread::sleep_for(500ms);
  auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  pid_t r = 0;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(20ms);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "portghost blocked on its output after SIGINT";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::string err(4096, '\0');
  ssize_t n = pread(efd, err.data(), err.size(), 0);
  err.resize(n > 0 ? static_cast<size_t>(n) : 0);
  EXPECT_NE(err.find("blocked"), std::string::npos) << err;
  close(efd);
  unlink(tmpl);
  close(p[0]);
}

namespace {
// Runs `portghost ARGS`, returns exit status and stdout.
std::pair<int, std::string> run_capture(std::vector<std::string> args) {
  char tmpl[] = "/tmp/portghost-out-XXXXXX";
  int ofd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(ofd, STDOUT_FILENO);
    std::vector<char*> argv{const_cast<char*>(PORTGHOST_BIN)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(PORTGHOST_BIN, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::string out(1 << 16, '\0');
  ssize_t n = pread(ofd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(ofd);
  unlink(tmpl);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string ns_as_seconds(uint64_t ns) {
  char buf[40];
  snprintf(buf, sizeof buf, "%llu.%09llu", static_cast<unsigned long long>(ns / 1'000'000'000ULL),
           static_cast<unsigned long long>(ns % 1'000'000'000ULL));
  return buf;
}
}  // namespace

TEST_F(TraceOwn, WhoNamesTheProcessThatHeldThePort) {
  Listener l;
  std::string log;
  uint64_t assigned = 0, cookie = 0;
  unsigned port = 0;
  {
    Tracer tr({"--no-existing"});
    ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
    FireResult f = run_pg_fire("tcp-connect", std::to_string(l.port));
    accept_and_close(l);
    ASSERT_NE(f.cookie, 0u);
    port = f.port;
    cookie = f.cookie;
    auto a = tr.wait_for(is("assign", cookie));
    ASSERT_TRUE(a);
    ASSERT_TRUE(tr.wait_for(is("release", cookie)));
    assigned = (*a)["ts_ns"];
    EXPECT_EQ(tr.stop(), 0);
    // keep the log: the tracer's directory goes with it
    log = "/tmp/portghost-who-" + std::to_string(getpid()) + ".jsonl";
    std::ifstream src(tr.path(), std::ios::binary);
    std::ofstream dst(log, std::ios::binary);
    dst << src.rdbuf();
  }
  auto [code, out] = run_capture({"who", std::to_string(port), "--at", ns_as_seconds(assigned + 1), log});
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("pg_fire"), std::string::npos) << out;
  EXPECT_NE(out.find("tcp 127.0.0.1:" + std::to_string(port)), std::string::npos) << out;
  EXPECT_EQ(out.find("NOT COVERED"), std::string::npos) << out;
  // an hour earlier nobody was looking
  auto [code2, out2] = run_capture({"who", std::to_string(port), "--at", ns_as_seconds(assigned - 3600'000'000'000ULL), log});
  EXPECT_EQ(code2, 0);
  EXPECT_EQ(out2.find("pg_fire"), std::string::npos) << out2;
  EXPECT_NE(out2.find("NOT COVERED"), std::string::npos) << out2;
  unlink(log.c_str());
}

TEST_F(TraceOwn, RunsWithTheServicesFiveCapabilities) {
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
  char dir[] = "/tmp/portghost-caps-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  std::string log = std::string(dir) + "/events.jsonl";
  pid_t pid = fork();
  if (pid == 0) {
    int err = open((std::string(dir) + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(err, STDERR_FILENO);
    // as the unit starts it: Nice=-4 first, then the bounding set
    execl("/usr/bin/nice", "nice", "-n", "-4", "/usr/bin/setpriv", "--bounding-set",
          "-all,+bpf,+perfmon,+net_admin,+sys_admin,+sys_ptrace", "--inh-caps", "-all", PORTGHOST_BIN, "trace", "-o",
          log.c_str(), "--duration", "3", static_cast<char*>(nullptr));
    _exit(127);
  }
  bool started = false;
  for (int i = 0; i < 100 && !started; i++) {
    std::ifstream f(log);
    std::string first;
    started = std::getline(f, first) && first.find("\"type\":\"start\"") != std::string::npos;
    if (!started) std::this_thread::sleep_for(50ms);
  }
  int fd = udp_sendto_socket();
  uint64_t c = sock_cookie(fd);
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(started);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream f(log);
  std::string line;
  bool seen = false;
  while (std::getline(f, line)) {
    auto j = Json::parse(line);
    if (j["type"] == "assign" && j["sock"] == c) seen = true;
  }
  EXPECT_TRUE(seen) << "no assign recorded under the reduced capability set";
  std::ifstream ef(std::string(dir) + "/err");
  std::string err_text((std::istreambuf_iterator<char>(ef)), std::istreambuf_iterator<char>());
  EXPECT_EQ(err_text.find("cannot set nice"), std::string::npos) << err_text;
  unlink((std::string(dir) + "/err").c_str());
  unlink(log.c_str());
  rmdir(dir);
}

TEST_F(Trace, ConnectFindingNoFreePortIsRecordedAsExhausted) {
  // A namespace of our own with a four-port ephemeral range, filled up.
  int res[2], go[2];
  ASSERT_EQ(pipe(res), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(res[0]);
    close(go[1]);
    enter_netns_with_four_ports();
    Listener l;
    std::vector<int> held;
    int err = 0;
    for (int i = 0; i < 16 && !err; i++) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (do_connect(fd, v4(l.port)) == 0) {
        held.push_back(fd);
      } else {
        err = errno;
      }
    }
    int out[2] = {err, static_cast<int>(held.size())};
    if (write(res[1], out, sizeof out) != sizeof out) _exit(4);
    char x;
    if (read(go[0], &x, 1) < 0) _exit(5);  // stay until the parent has looked at our namespace
    _exit(0);
  }
  close(res[1]);
  close(go[0]);
  int out[2] = {0, 0};
  ASSERT_EQ(read(res[0], out, sizeof out), static_cast<ssize_t>(sizeof out));
  close(res[0]);
  uint32_t ns = netns_inode(child);
  // the namespace must outlive the tracer's look at its range: the child
  // stays until the records are in
  // (an earlier test's namespace may have had the same inode number, and its
  // udp warning with it)
  auto warn = t().wait_for(
      [&](const Json& j) { return j["type"] == "warning" && j["netns"] == ns && j["proto"] == "tcp"; });
  close(go[1]);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(out[0], EADDRNOTAVAIL) << "the range did not run out";
  auto ex = t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child; });
  ASSERT_TRUE(ex) << "no exhausted record";
  EXPECT_EQ((*ex)["proto"], "tcp");
  EXPECT_EQ((*ex)["how"], "connect");
  EXPECT_EQ((*ex)["raddr"], "127.0.0.1");
  EXPECT_EQ((*ex)["comm"], process_comm());
  // the connected sockets and the listener held tcp ports there
  EXPECT_EQ((*ex)["held"], out[1] + 1) << "ports held in that namespace when it ran out";
  EXPECT_EQ((*ex)["netns"], ns);
  // and before it ran out, the range filled past the default 80% mark
  ASSERT_TRUE(warn) << "no occupancy warning";
  EXPECT_EQ((*warn)["what"], "ephemeral_occupancy");
  EXPECT_EQ((*warn)["proto"], "tcp");
  EXPECT_EQ((*warn)["range"], Json::array({40000, 40003}));
  EXPECT_GE((*warn)["percent"].get<int>(), 80);
  EXPECT_EQ((*warn)["threshold"], 80);
  EXPECT_LE((*warn)["ts_ns"].get<uint64_t>(), (*ex)["ts_ns"].get<uint64_t>());
}

TEST_F(TraceOwn, TopShowsAPortHeldNow) {
  char tmpl[] = "/tmp/portghost-top-XXXXXX";
  int ofd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(ofd, STDOUT_FILENO);
    execl(PORTGHOST_BIN, PORTGHOST_BIN, "top", "--duration", "2.5", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(1s);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint16_t port = local_port(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  std::string out(1 << 20, '\0');
  ssize_t n = pread(ofd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(ofd);
  unlink(tmpl);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // the last screen lists our port among the holders, with this process
  auto last = out.rfind("portghost top");
  ASSERT_NE(last, std::string::npos) << out;
  std::string screen = out.substr(last);
  EXPECT_NE(screen.find(std::to_string(port)), std::string::npos) << screen;
  EXPECT_NE(screen.find(std::to_string(getpid())), std::string::npos) << screen;
  EXPECT_NE(screen.find("OCCUPANCY"), std::string::npos) << screen;
}

TEST_F(Trace, BindZeroAndListenFindingNoFreePortAreRecordedAsExhausted) {
  int res[2], go[2];
  ASSERT_EQ(pipe(res), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(res[0]);
    close(go[1]);
    enter_netns_with_four_ports();
    std::vector<int> held;
    int errs[2] = {0, 0};
    for (int i = 0; i < 16 && !errs[0]; i++) {  // udp bind(0) until no port is left
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      auto b = v4(0, INADDR_ANY);
      if (bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b) == 0) {
        held.push_back(fd);
      } else {
        errs[0] = errno;
        close(fd);  // as a program gives up on it (the socket world sees the failure here)
      }
    }
    {  // and a udp send on an unbound socket cannot autobind
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      auto dst = v4(9);
      if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) >= 0 || errno != EAGAIN) _exit(6);
      held.push_back(fd);
    }
    for (int i = 0; i < 16 && !errs[1]; i++) {  // tcp listen() autobind likewise
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (listen(fd, 1) == 0) held.push_back(fd);
      else errs[1] = errno;
    }
    if (write(res[1], errs, sizeof errs) != sizeof errs) _exit(4);
    char x;
    if (read(go[0], &x, 1) < 0) _exit(5);
    _exit(0);
  }
  close(res[1]);
  close(go[0]);
  int errs[2] = {0, 0};
  ASSERT_EQ(read(res[0], errs, sizeof errs), static_cast<ssize_t>(sizeof errs));
  close(res[0]);
  auto bind_ex = t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "bind"; });
  auto listen_ex = t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "listen"; });
  auto send_ex = t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "sendmsg"; });
  close(go[1]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "child died";
  ASSERT_NE(WEXITSTATUS(status), 6) << "the udp send did not fail with EAGAIN";
  ASSERT_EQ(errs[0], EADDRINUSE);
  ASSERT_EQ(errs[1], EADDRINUSE);
  ASSERT_TRUE(bind_ex) << "no exhausted record for bind(0)";
  EXPECT_EQ((*bind_ex)["proto"], "udp");
  EXPECT_EQ((*bind_ex)["held"], 4);
  ASSERT_TRUE(send_ex) << "no exhausted record for the udp send";
  EXPECT_EQ((*send_ex)["proto"], "udp");
  ASSERT_TRUE(listen_ex) << "no exhausted record for listen()";
  EXPECT_EQ((*listen_ex)["proto"], "tcp");
  EXPECT_EQ((*listen_ex)["held"], 4);
}

// ---- loss accounting: every record the kernel produced is written or counted ----

namespace {
// `threads` threads each make `ops` UDP sockets that send once and close: two
// records per op (assign, release). Returns the wall time it took.
std::chrono::milliseconds udp_churn(int threads, int ops) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; i++)
    ts.emplace_back([ops] {
      for (int k = 0; k < ops; k++) close(udp_sendto_socket());
    });
  for (auto& t : ts) t.join();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

struct Tally {
  uint64_t written = 0;  // assign + release records of this process
  uint64_t lost = 0;     // the stop record's total
  std::map<std::string, uint64_t> reasons;
  bool stopped = false;
};

Tally tally(const Tracer& tr) {
  Tally t;
  uint32_t self = static_cast<uint32_t>(getpid());
  for (const auto& r : tr.records()) {
    if ((r["type"] == "assign" && r["pid"] == self) || (r["type"] == "release" && r["pid"] == self)) t.written++;
    if (r["type"] == "lost")
      for (const auto& [k, v] : r["reasons"].items()) t.reasons[k] += v.get<uint64_t>();
    if (r["type"] == "stop") {
      t.stopped = true;
      t.lost = r["lost"].get<uint64_t>();
    }
  }
  return t;
}

// The tracer stops reading (SIGSTOP): the 1 MiB ring (8k records) fills, the
// kernel side drops and counts the rest; written + lost must be exact.
void expect_drops_counted_exactly(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--no-existing", "--ring-buffer-mb", "1", "--comm", process_comm()};
  args.insert(args.end(), extra.begin(), extra.end());
  Tracer tr(args);
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::this_thread::sleep_for(200ms);  // past the existing-socket scan and a --user drop
  ASSERT_EQ(kill(tr.pid(), SIGSTOP), 0);
  const int kThreads = 4, kOps = 10000;
  auto took = udp_churn(kThreads, kOps);
  ASSERT_EQ(kill(tr.pid(), SIGCONT), 0);
  EXPECT_LT(took, 10s) << "a full ring buffer must not block the workload";
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  Tally t = tally(tr);
  ASSERT_TRUE(t.stopped);
  EXPECT_GT(t.reasons["ring_buffer_full"], 0u) << "nothing was dropped: the test did not test";
  EXPECT_EQ(t.written + t.lost, 2u * kThreads * kOps) << "written " << t.written << ", lost " << t.lost;
}
}  // namespace

TEST_F(TraceOwn, RingBufferDropsAreCountedExactlyAndNeverBlockTheWorkload) { expect_drops_counted_exactly({}); }

// The kernel's counters are still read once the tracer is nobody.
TEST_F(TraceOwn, DropsAreStillCountedExactlyAfterDroppingPrivileges) {
  expect_drops_counted_exactly({"--user", "nobody"});
}

TEST_F(TraceOwn, AFullDiskIsRetriedAndWhatCouldNotBeKeptIsCounted) {
  // a ring large enough that nothing is dropped before the output (a
  // sanitizer build consumes slowly): this test is about the output's count
  Tracer tr({"--no-existing", "--ring-buffer-mb", "64", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  // the disk is "full": the log may not grow past what it holds now
  struct stat st {};
  ASSERT_EQ(stat(tr.path().c_str(), &st), 0);
  rlimit full{static_cast<rlim_t>(st.st_size), RLIM_INFINITY};
  ASSERT_EQ(prlimit(tr.pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  // more than the 16 MiB the output keeps in memory while it cannot write
  const int kThreads = 2, kOps = 40000;
  udp_churn(kThreads, kOps);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(kill(tr.pid(), 0), 0) << "a full disk must not end the trace";
  rlimit room{RLIM_INFINITY, RLIM_INFINITY};
  ASSERT_EQ(prlimit(tr.pid(), RLIMIT_FSIZE, &room, nullptr), 0);
  // and a short outage loses nothing: kept in memory, written on the retry
  udp_churn(1, 100);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  Tally t = tally(tr);  // every line parses: no half line was left behind
  ASSERT_TRUE(t.stopped);
  EXPECT_GT(t.reasons["write_failed"], 0u);
  ASSERT_EQ(t.reasons["ring_buffer_full"], 0u) << "the kernel dropped records: the count below would not be exact";
  EXPECT_EQ(t.written + t.lost, 2u * (kThreads * kOps + 100)) << "written " << t.written << ", lost " << t.lost;
  EXPECT_NE(tr.stderr_text().find("writing again"), std::string::npos) << tr.stderr_text();
}

// ---- hostile names never make a record of their own ----

TEST_F(TraceOwn, HostileNamesAndCommandLinesCannotForgeRecords) {
  // comm is the name the program was run by: a link whose name is a fake
  // record start plus a terminal escape; the command line is worse still
  char tmpl[] = "/tmp/portghost-names-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string name = "\n{\"type\":\"x\"}\x1b[";  // 15 bytes: all of comm
  std::string link = std::string(tmpl) + "/" + name;
  ASSERT_EQ(symlink(PG_FIRE_BIN, link.c_str()), 0);
  struct Cleanup {
    std::string link, dir;
    ~Cleanup() {
      unlink(link.c_str());
      rmdir(dir.c_str());
    }
  } cleanup{link, tmpl};
  const std::string evil = "\n{\"type\":\"release\",\"lport\":1}\r\x1b[2J\x1b]0;owned\x07\xff\xc3";
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  FireResult f = run_pg_fire("udp-send", "9", link.c_str(), evil.c_str());
  ASSERT_EQ(f.exit_code, 0);
  auto a = tr.wait_for(is("assign", f.cookie));
  ASSERT_TRUE(a) << "every line must still parse, and the assign be there";
  EXPECT_EQ((*a)["comm"], name);  // the exact bytes, escaped in the file
  EXPECT_NE((*a)["cmdline"].get<std::string>().find("\"type\":\"release\""), std::string::npos) << *a;
  EXPECT_EQ(tr.stop(), 0);
  // no forged record: nothing but the known types, and no release of port 1
  for (const auto& r : tr.records()) {
    static const std::set<std::string> known = {"start", "assign", "release", "existing", "exhausted",
                                                "lost", "warning", "stop"};
    EXPECT_TRUE(known.count(r["type"].get<std::string>())) << r;
    EXPECT_FALSE(r["type"] == "release" && r["lport"] == 1) << r;
  }
  // and no raw control byte reaches the file (a terminal tailing it is safe)
  std::ifstream in(tr.path(), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (unsigned char c : text) ASSERT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7f)) << "raw byte " << int(c);
}

// ---- --user: everything after the attach works with no privilege ----

namespace {
// The value of one /proc/PID/status line ("Uid", "CapEff", ...).
std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      return v;
    }
  return "";
}
}  // namespace

TEST_F(TraceOwn, UserDropsEveryPrivilegeYetTracesAttributesAndReopens) {
  Tracer tr({"--user", "nobody"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  // the drop follows the start record and the existing sockets
  for (int i = 0; i < 100 && status_field(tr.pid(), "Uid").rfind("65534", 0) != 0; i++)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(status_field(tr.pid(), "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(tr.pid(), "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(tr.pid(), "Groups"), "65534");
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(status_field(tr.pid(), cap), "0000000000000000") << cap;
  EXPECT_EQ(status_field(tr.pid(), "NoNewPrivs"), "1");

  // a program started after the drop is traced and named (from the kernel's
  // exec record: nobody may not read another user's /proc/PID/exe)
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_EQ(f.exit_code, 0);
  auto a = tr.wait_for(is("assign", f.cookie));
  ASSERT_TRUE(a) << tr.stderr_text();
  EXPECT_EQ((*a)["pid"], f.pid);
  char real[PATH_MAX];
  ASSERT_TRUE(realpath(PG_FIRE_BIN, real));
  EXPECT_EQ((*a)["exe"], real);
  EXPECT_EQ((*a)["cmdline"], std::string(PG_FIRE_BIN) + " udp-send 9");
  EXPECT_TRUE(tr.wait_for(is("release", f.cookie)));

  // external rotation: the log is moved away and SIGHUP reopens it; the new
  // file is created by nobody, in a directory nobody may write
  std::string dir = tr.path().substr(0, tr.path().rfind('/'));
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  ASSERT_EQ(rename(tr.path().c_str(), (tr.path() + ".1").c_str()), 0);
  ASSERT_EQ(kill(tr.pid(), SIGHUP), 0);
  struct stat st {};
  for (int i = 0; i < 100 && stat(tr.path().c_str(), &st) != 0; i++) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(stat(tr.path().c_str(), &st), 0) << tr.stderr_text();
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  int fd = udp_sendto_socket();
  uint64_t c = sock_cookie(fd);
  close(fd);
  EXPECT_TRUE(tr.wait_for(is("release", c))) << tr.stderr_text();
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  auto s = tr.wait_for([](const Json& j) { return j["type"] == "stop"; });
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["lost"], 0);
}

TEST_F(TraceOwn, UnknownUserIsExit2BeforeLoading) {
  auto [code, err] = run_cli({"trace", "--user", "no-such-user-pg", "--duration", "1"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err, "portghost: --user no-such-user-pg: no such user\n");
}

TEST_F(TraceOwn, RootIsNoUserToDropTo) {
  for (const char* who : {"root", "0"}) {
    auto [code, err] = run_cli({"trace", "--user", who, "--duration", "1"});
    EXPECT_EQ(code, 2) << who;
    EXPECT_NE(err.find("is root (uid 0)"), std::string::npos) << err;
  }
}
