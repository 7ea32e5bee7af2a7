// Root integration tests for the paths a review of the kernel side found
// uncaught or misattributed: each fires the real path and asserts the
// records. Where the two kernel worlds differ (fexit where the kernel has
// it, tracepoints elsewhere), the test says what each must write.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

namespace {

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

sockaddr_in loop4(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

template <class A>
sockaddr* sa(A& a) {
  return reinterpret_cast<sockaddr*>(&a);
}

bool syscall_world(const Json& start) { return start["world"] == "syscall"; }

bool uncaught_mentions(const Json& start, const std::string& what) {
  for (const auto& u : start["uncaught"])
    if (u.get<std::string>().find(what) != std::string::npos) return true;
  return false;
}

// A local port nobody holds right now (bound and let go at once).
uint16_t free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto a = loop4(0);
  bind(fd, sa(a), sizeof a);
  uint16_t p = local_port(fd);
  close(fd);
  return p;
}

// Runs fn in a forked child; fn writes what the parent needs into `out`
// (at most 64 bytes), then the child waits until the parent lets it go.
// Returns the child's pid, its bytes in `out`; `release()` ends it.
struct Child {
  pid_t pid = -1;
  int res[2] = {-1, -1}, go[2] = {-1, -1};
  template <class F>
  explicit Child(F fn) {
    if (pipe(res) != 0 || pipe(go) != 0) return;
    pid = fork();
    if (pid == 0) {
      close(res[0]);
      close(go[1]);
      uint64_t out[8] = {};
      fn(out);
      if (write(res[1], out, sizeof out) != sizeof out) _exit(4);
      char x;
      if (read(go[0], &x, 1) < 0) _exit(5);
      _exit(0);
    }
    close(res[1]);
    close(go[0]);
  }
  bool result(uint64_t (&out)[8]) {
    bool ok = read(res[0], out, sizeof out) == static_cast<ssize_t>(sizeof out);
    close(res[0]);
    return ok;
  }
  int release() {
    close(go[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

}  // namespace

class Holes : public SharedTracerTest {
 protected:  const Json start() { return t().records().front(); }
  Json wait(const std::string& type, uint64_t cookie) {
    auto r = t().wait_for(is(type, cookie));
    EXPECT_TRUE(r) << "no " << type << " for sock " << cookie;
    return r.value_or(Json::object());
  }
  std::vector<Json> of_sock(const std::string& type, uint64_t cookie) {
    std::this_thread::sleep_for(300ms);  // stragglers
    return t().all(is(type, cookie));
  }
};

// Item 1: inet_send_prepare() autobinds before udp_sendmsg() fails; the
// port is held, a connect() then finds a port already there, and connected
// sends reach no send hook. The port must still be recorded and released.
TEST_F(Holes, UdpSendFailingAfterItsAutobindIsRecordedAndReleased) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  errno = 0;
  ASSERT_LT(send(fd, "", 0, 0), 0) << "a send with no address on an unconnected socket must fail";
  EXPECT_EQ(errno, EDESTADDRREQ);
  uint16_t port = local_port(fd);
  ASSERT_NE(port, 0) << "the failed send autobound no port: the path under test is gone";
  uint64_t cookie = sock_cookie(fd);
  auto dst = loop4(9);
  ASSERT_EQ(connect(fd, sa(dst), sizeof dst), 0);
  ASSERT_EQ(send(fd, "x", 1, 0), 1);
  close(fd);

  Json a = wait("assign", cookie);
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["proto"], "udp");
  EXPECT_EQ(a["how"], "sendmsg");
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_EQ(a["ephemeral"], true);
  // fexit on inet_autobind and sock_send_length see the send itself; at the
  // syscall exits the connect is its first sight
  EXPECT_EQ(a.value("late", false), syscall_world(start())) << a.dump();
  Json r = wait("release", cookie);
  EXPECT_EQ(r["lport"], port);
  EXPECT_EQ(r["pid"], getpid());
  EXPECT_TRUE(r["duration_ns"].is_number()) << r.dump();
  EXPECT_EQ(of_sock("assign", cookie).size(), 1u) << "one assign per port";
}

TEST_F(Holes, UdpSendFailingAfterItsAutobindThenClosedIsStillRecorded) {
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  ASSERT_LT(send(fd, "", 0, 0), 0);
  uint16_t port = local_port(fd);
  ASSERT_NE(port, 0);
  uint64_t cookie = sock_cookie(fd);
  close(fd);
  Json a = wait("assign", cookie);
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["family"], "ipv6");
  Json r = wait("release", cookie);
  EXPECT_EQ(r["lport"], port);
  EXPECT_EQ(r["closer_pid"], getpid());
}

// Item 3: UDP-Lite takes ports from its own table, through the same autobind.
TEST_F(Holes, UdpLiteSendtoIsRecordedInItsOwnPortSpace) {
  int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
  if (fd < 0 && errno == EPROTONOSUPPORT) {
    EXPECT_TRUE(false) << "this kernel has no UDP-Lite";
    return;
  }
  ASSERT_GE(fd, 0);
  auto dst = loop4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, sa(dst), sizeof dst), 1);
  uint16_t port = local_port(fd);
  uint64_t cookie = sock_cookie(fd);
  close(fd);
  Json a = wait("assign", cookie);
  EXPECT_EQ(a["proto"], "udplite");
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["how"], "sendmsg");
  EXPECT_FALSE(a.value("late", false));
  Json r = wait("release", cookie);
  EXPECT_EQ(r["proto"], "udplite");
  EXPECT_EQ(r["lport"], port);
}

// Items 3 and 7: an MPTCP listener's port is held by its subflow, a kernel
// socket that never reaches cgroup/sock_release.
TEST_F(Holes, MptcpListenerOnAFixedPortIsAssignedAndReleased) {
  int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
  if (fd < 0) GTEST_SKIP() << "no MPTCP on this kernel: " << strerror(errno);
  uint16_t port = free_tcp_port();
  auto a4 = loop4(port);
  ASSERT_EQ(bind(fd, sa(a4), sizeof a4), 0) << strerror(errno);
  ASSERT_EQ(listen(fd, 4), 0);
  close(fd);
  auto a = t().wait_for([&](const Json& j) {
    return j["type"] == "assign" && j["lport"] == port && j["proto"] == "tcp" && j.value("mptcp", false);
  });
  ASSERT_TRUE(a) << "no assign for the MPTCP listener's port " << port;
  EXPECT_EQ((*a)["pid"], getpid());
  EXPECT_EQ((*a)["how"], "bind");
  EXPECT_EQ((*a)["ephemeral"], false);
  auto r = t().wait_for(is("release", (*a)["sock"].get<uint64_t>()));
  ASSERT_TRUE(r) << "the MPTCP listener's port was freed and never released";
  EXPECT_EQ((*r)["sock"], (*a)["sock"]);
  EXPECT_EQ((*r)["pid"], getpid());
}

// Item 3: SCTP binds through its own sk_prot->bind, where no inet bind hook
// runs. Where fexit works and the sctp module was loaded before the start,
// its ports are assigned (bind, and the autobind of a connect) and released
// like any other, and an accepted socket, which shares its listener's port,
// writes nothing; elsewhere the start record says SCTP is not seen.
TEST_F(Holes, SctpPortsAreAssignedAndReleasedWhereFexitSeesThem) {
  const std::string path = "sctp port taken, released or not found";
  ASSERT_TRUE(start()["paths"].contains(path)) << start()["paths"].dump();
  if (!start()["paths"][path].is_string()) {
    EXPECT_TRUE(uncaught_mentions(start(), "sctp")) << start()["uncaught"].dump();
    return;
  }
  int srv = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(srv, 0) << "SCTP is traced here, yet no SCTP socket: " << strerror(errno);
  auto any = loop4(0);
  ASSERT_EQ(bind(srv, sa(any), sizeof any), 0) << strerror(errno);
  uint16_t port = local_port(srv);
  ASSERT_EQ(listen(srv, 4), 0) << strerror(errno);
  int cli = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(cli, 0);
  auto dst = loop4(port);
  ASSERT_EQ(connect(cli, sa(dst), sizeof dst), 0) << strerror(errno);
  uint16_t cport = local_port(cli);
  int acc = accept(srv, nullptr, nullptr);
  ASSERT_GE(acc, 0) << strerror(errno);
  uint16_t fixed = free_tcp_port();
  int fix = socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP);
  ASSERT_GE(fix, 0);
  sockaddr_in6 f6{};
  f6.sin6_family = AF_INET6;
  f6.sin6_port = htons(fixed);
  f6.sin6_addr = in6addr_loopback;
  ASSERT_EQ(bind(fix, sa(f6), sizeof f6), 0) << strerror(errno);
  close(acc);
  close(cli);
  close(srv);
  close(fix);

  auto assign_of = [&](uint16_t p) {
    auto a = t().wait_for([&](const Json& j) { return j["type"] == "assign" && j["proto"] == "sctp" && j["lport"] == p; });
    EXPECT_TRUE(a) << "no sctp assign of port " << p;
    return a.value_or(Json::object());
  };
  Json a_srv = assign_of(port), a_cli = assign_of(cport), a_fix = assign_of(fixed);
  EXPECT_EQ(a_srv["how"], "bind");
  EXPECT_EQ(a_srv["ephemeral"], true);
  EXPECT_EQ(a_srv["pid"], getpid());
  EXPECT_EQ(a_srv["family"], "ipv4");
  EXPECT_EQ(a_cli["how"], "connect");
  EXPECT_EQ(a_cli["ephemeral"], true);
  EXPECT_EQ(a_fix["how"], "bind");
  EXPECT_EQ(a_fix["ephemeral"], false);
  EXPECT_EQ(a_fix["family"], "ipv6");
  for (const Json* a : {&a_srv, &a_cli, &a_fix}) {
    if (!a->contains("sock")) continue;
    uint64_t sock = (*a)["sock"].get<uint64_t>();
    Json r = wait("release", sock);
    EXPECT_EQ(r["proto"], "sctp");
    EXPECT_EQ(r["lport"], (*a)["lport"]);
    EXPECT_EQ(of_sock("assign", sock).size(), 1u) << "sock " << sock;
  }
  // the accepted socket shares the listener's port: no record of its own
  auto on_port = t().all([&](const Json& j) {
    return (j["type"] == "assign" || j["type"] == "release") && j["proto"] == "sctp" && j["lport"] == port;
  });
  EXPECT_EQ(on_port.size(), 2u) << "the listener's assign and release only";
}

// Items 3 and 7: SCTP sockets hold no socket storage, which reconciliation
// walks where the kernel allows it: a live SCTP socket is never judged gone.
TEST_F(Holes, ALiveSctpSocketIsNotReconciledAway) {
  if (!start()["paths"]["sctp port taken, released or not found"].is_string()) {
    EXPECT_TRUE(uncaught_mentions(start(), "sctp")) << start()["uncaught"].dump();
    return;
  }
  Tracer tr({"--no-existing", "--reconcile", "1", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(fd, 0) << strerror(errno);
  auto any = loop4(0);
  ASSERT_EQ(bind(fd, sa(any), sizeof any), 0) << strerror(errno);
  uint16_t port = local_port(fd);
  auto a = tr.wait_for([&](const Json& j) { return j["type"] == "assign" && j["proto"] == "sctp" && j["lport"] == port; });
  ASSERT_TRUE(a) << "no sctp assign of port " << port;
  uint64_t sock = (*a)["sock"].get<uint64_t>();
  std::this_thread::sleep_for(3500ms);  // three reconciliations at least
  EXPECT_TRUE(tr.all(is("release", sock)).empty()) << "a live SCTP socket was released";
  close(fd);
  auto r = tr.wait_for(is("release", sock));
  EXPECT_EQ(tr.stop(), 0);
  ASSERT_TRUE(r) << "no release at the close";
  EXPECT_FALSE(r->contains("reason")) << r->dump();
}

// Item 5: a refused connect is no exhaustion, for TCP or MPTCP; nor is an
// MPTCP socket's own state change.
TEST_F(Holes, RefusedConnectsWriteNoExhaustedRecord) {
  uint16_t closed = free_tcp_port();
  auto dst = loop4(closed);
  std::vector<uint64_t> cookies;
  for (int proto : {IPPROTO_TCP, IPPROTO_MPTCP}) {
    int fd = socket(AF_INET, SOCK_STREAM, proto);
    if (fd < 0) continue;  // no MPTCP here
    EXPECT_NE(connect(fd, sa(dst), sizeof dst), 0);
    EXPECT_EQ(errno, ECONNREFUSED);
    close(fd);
  }
  // a true exhaustion after them, so the test knows the trace is caught up
  Child c([](uint64_t* out) {
    enter_netns_with_four_ports();
    std::vector<int> held;
    for (int i = 0; i < 8; i++) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      auto b = loop4(0);
      if (bind(s, sa(b), sizeof b) != 0) break;
      held.push_back(s);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    auto d = loop4(5);
    out[0] = connect(s, sa(d), sizeof d) == 0 ? 0 : static_cast<uint64_t>(errno);
  });
  uint64_t out[8];
  ASSERT_TRUE(c.result(out));
  EXPECT_EQ(out[0], static_cast<uint64_t>(EADDRNOTAVAIL));
  // (its bind(0) that found no port has a record of its own, how "bind")
  auto ex = t().wait_for(
      [&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == c.pid && j["how"] == "connect"; });
  c.release();
  ASSERT_TRUE(ex) << "the true exhaustion was not recorded";
  EXPECT_EQ((*ex)["how"], "connect");
  EXPECT_EQ((*ex)["proto"], "tcp");
  auto mine = t().all([](const Json& j) { return j["type"] == "exhausted" && j["pid"] == getpid(); });
  EXPECT_TRUE(mine.empty()) << mine.front().dump();
}

// Item 4: with TCP_FASTOPEN_CONNECT, connect() takes the port and returns;
// TCP_CONNECT_CB waits for the first write.
namespace {
// A TFO connect that the kernel defers to the first write: no cookie is
// needed (TCP_FASTOPEN_NO_COOKIE), so no SYN goes out in connect().
int fastopen_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one), 0) << strerror(errno);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, &one, sizeof one), 0) << strerror(errno);
  auto dst = loop4(port);
  EXPECT_EQ(connect(fd, sa(dst), sizeof dst), 0) << strerror(errno);
  tcp_info ti{};
  socklen_t len = sizeof ti;
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
  EXPECT_EQ(ti.tcpi_state, TCP_SYN_SENT) << "the connect was not deferred: the path under test is gone";
  return fd;
}
}  // namespace

TEST_F(Holes, FastOpenConnectClosedBeforeWritingIsAnAssignNotAnExhaustion) {
  Listener l;
  int fd = fastopen_connect(l.port);
  uint16_t port = local_port(fd);
  ASSERT_NE(port, 0);
  uint64_t cookie = sock_cookie(fd);
  close(fd);
  Json a = wait("assign", cookie);
  EXPECT_EQ(a["lport"], port);
  EXPECT_EQ(a["how"], "fastopen");
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_EQ(a["rport"], l.port);
  EXPECT_FALSE(a.value("late", false)) << "the connect's own end is seen in both worlds: " << a.dump();
  Json r = wait("release", cookie);
  EXPECT_EQ(r["lport"], port);
  auto ex = t().all([&](const Json& j) { return j["type"] == "exhausted" && j["sock"] == cookie; });
  EXPECT_TRUE(ex.empty()) << ex.front().dump();
}

TEST_F(Holes, FastOpenConnectIsAttributedToTheConnectNotToTheWriter) {
  Listener l;
  int fd = fastopen_connect(l.port);
  uint64_t cookie = sock_cookie(fd);
  uint64_t connected_unix_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::this_thread::sleep_for(100ms);
  pid_t writer = fork();
  if (writer == 0) {
    _exit(write(fd, "x", 1) == 1 ? 0 : 1);
  }
  int status = 0;
  waitpid(writer, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(fd);
  Json a = wait("assign", cookie);
  EXPECT_EQ(a["pid"], getpid()) << "the writer " << writer << " did not take the port";
  EXPECT_LE(a["ts_ns"].get<uint64_t>(), connected_unix_ns + 50'000'000ULL) << "the assign has the write's time";
  EXPECT_EQ(a["how"], "fastopen");
  EXPECT_EQ(of_sock("assign", cookie).size(), 1u);
}

// Item 2: the 32-bit syscall ABI (int $0x80) takes ports through the same
// kernel paths, but syscall tracepoints ignore it.
namespace {
long sys32(long nr, long a = 0, long b = 0, long c = 0) {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory", "r8", "r9", "r10", "r11");
  return ret;
}
constexpr long k32Getpid = 20, k32Socket = 359, k32Bind = 361, k32Connect = 362;
}  // namespace

TEST_F(Holes, PortsTakenThroughThe32BitSyscallAbiAreRecorded) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the 32-bit ABI test is written for x86-64";
#else
  if (sys32(k32Getpid) != getpid()) {
    ASSERT_TRUE(uncaught_mentions(start(), "32-bit")) << "no ia32 emulation here";
    GTEST_SKIP() << "this kernel has no 32-bit syscall ABI";
  }
  // arguments must live below 4 GiB
  void* low = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  ASSERT_NE(low, MAP_FAILED);
  auto* addr = static_cast<sockaddr_in*>(low);
  long arg = reinterpret_cast<long>(low);

  // udp connect(): its port comes from the connect's autobind
  int u = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_DGRAM, 0));
  ASSERT_GE(u, 0);
  *addr = loop4(9);
  ASSERT_EQ(sys32(k32Connect, u, arg, sizeof *addr), 0);
  uint16_t uport = local_port(u);
  uint64_t ucookie = sock_cookie(u);
  // bind(0)
  int b = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_DGRAM, 0));
  *addr = loop4(0);
  ASSERT_EQ(sys32(k32Bind, b, arg, sizeof *addr), 0);
  uint64_t bcookie = sock_cookie(b);
  // tcp connect()
  Listener l;
  int tc = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_STREAM, 0));
  *addr = loop4(l.port);
  ASSERT_EQ(sys32(k32Connect, tc, arg, sizeof *addr), 0);
  uint64_t tcookie = sock_cookie(tc);
  close(u);
  close(b);
  close(tc);
  munmap(low, 4096);

  Json ua = wait("assign", ucookie);
  EXPECT_EQ(ua["lport"], uport);
  EXPECT_EQ(ua["how"], "connect");
  EXPECT_EQ(ua["pid"], getpid());
  if (!syscall_world(start())) {
    // fexit on inet_dgram_connect sees it at the connect; the socket world at
    // the close, with the connect's time and task
    EXPECT_FALSE(ua.value("late", false)) << ua.dump();
    EXPECT_EQ(ua["rport"], 9);
  } else {
    EXPECT_TRUE(ua.value("late", false)) << "no syscall exit sees it; the close is its first sight: " << ua.dump();
    EXPECT_TRUE(uncaught_mentions(start(), "32-bit syscall ABI"));
  }
  EXPECT_EQ(wait("release", ucookie)["lport"], uport);
  Json ba = wait("assign", bcookie);
  EXPECT_EQ(ba["how"], "bind");
  EXPECT_EQ(ba["ephemeral"], true);
  EXPECT_FALSE(ba.value("late", false));
  wait("release", bcookie);
  Json ta = wait("assign", tcookie);
  EXPECT_EQ(ta["how"], "connect");
  EXPECT_FALSE(ta.value("late", false));
  wait("release", tcookie);
#endif
}

// Item 6: the socket's namespace, not the task's: a setns() between socket()
// and bind() must not move the record (nor the range it is checked against).
TEST_F(Holes, TheSocketsNamespaceIsRecordedNotTheTasks) {
  Child c([](uint64_t* out) {
    int home = open("/proc/self/ns/net", O_RDONLY);
    enter_netns_with_four_ports();
    out[0] = netns_inode(0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (setns(home, CLONE_NEWNET) != 0) _exit(6);
    out[1] = netns_inode(0);
    auto b = loop4(0);
    if (bind(fd, sa(b), sizeof b) != 0) _exit(7);
    out[2] = sock_cookie(fd);
    out[3] = local_port(fd);
  });
  uint64_t out[8];
  ASSERT_TRUE(c.result(out));
  ASSERT_NE(out[0], out[1]);
  auto a = t().wait_for(is("assign", out[2]));
  c.release();
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["netns"], out[0]) << "the task's namespace (" << out[1] << ") was recorded";
  EXPECT_GE(out[3], 40000u);
  EXPECT_LE(out[3], 40003u) << "the socket's namespace chose the port";
  EXPECT_EQ((*a)["pid"], c.pid);
}

// Item 13: the release names who closed it, when that is not the holder.
TEST_F(Holes, ReleaseNamesTheCloserWhenAnotherProcessClosesTheLastReference) {
  Listener l;
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    int fd = socket(AF_INET, type, 0);
    auto dst = type == SOCK_DGRAM ? loop4(9) : loop4(l.port);
    if (type == SOCK_DGRAM)
      ASSERT_EQ(sendto(fd, "x", 1, 0, sa(dst), sizeof dst), 1);
    else
      ASSERT_EQ(connect(fd, sa(dst), sizeof dst), 0);
    uint64_t cookie = sock_cookie(fd);
    pid_t child = fork();
    if (child == 0) {
      usleep(100'000);  // the parent's close comes first
      if (type == SOCK_STREAM) {
        linger lg{1, 0};  // reset: the port goes at once
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      close(fd);
      _exit(0);
    }
    close(fd);
    waitpid(child, nullptr, 0);
    Json a = wait("assign", cookie);
    EXPECT_EQ(a["pid"], getpid());
    Json r = wait("release", cookie);
    EXPECT_EQ(r["pid"], getpid()) << "the holder stays the holder";
    EXPECT_EQ(r["closer_pid"], child) << r.dump();
    EXPECT_EQ(r["closer_tid"], child);
    EXPECT_TRUE(r["closer_comm"].is_string());
  }
}

TEST_F(Holes, ReleaseNamesTheCloserOfASocketPassedOverScmRights) {
  int sp[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  pid_t child = fork();
  if (child == 0) {
    close(sp[0]);
    char byte;
    char ctl[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{&byte, 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    if (recvmsg(sp[1], &m, 0) != 1) _exit(2);
    int got;
    std::memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof got);
    close(got);
    _exit(0);
  }
  close(sp[1]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto dst = loop4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, sa(dst), sizeof dst), 1);
  uint64_t cookie = sock_cookie(fd);
  char byte = 0, ctl[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&byte, 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  ASSERT_EQ(sendmsg(sp[0], &m, 0), 1);
  close(fd);
  int status = 0;
  waitpid(child, &status, 0);
  close(sp[0]);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  Json r = wait("release", cookie);
  EXPECT_EQ(r["pid"], getpid());
  EXPECT_EQ(r["closer_pid"], child) << r.dump();
}

// Item 9: the range fills by ports, not by sockets, and a TIME_WAIT port is
// still taken.
TEST_F(Holes, ExhaustionCountsDistinctPortsAndTimeWaitOnes) {
  Child c([](uint64_t* out) {
    enter_netns_with_four_ports();
    int one = 1;
    std::vector<int> keep;
    // three sockets on one port (SO_REUSEPORT): one port
    for (int i = 0; i < 3; i++) {
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      auto b = loop4(40000);
      if (bind(s, sa(b), sizeof b) != 0) _exit(8);
      keep.push_back(s);
    }
    // two more ports by bind(0)
    for (int i = 0; i < 2; i++) {
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      auto b = loop4(0);
      if (bind(s, sa(b), sizeof b) != 0) _exit(9);
      keep.push_back(s);
    }
    // the fourth port, then none is left
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    auto b = loop4(0);
    out[0] = bind(s, sa(b), sizeof b) == 0 ? local_port(s) : 0;
    int last = socket(AF_INET, SOCK_DGRAM, 0);
    out[1] = bind(last, sa(b), sizeof b) == 0 ? 0 : static_cast<uint64_t>(errno);
    close(last);  // given up on (the socket world sees the failure here)
    // tcp: a port in TIME_WAIT (this side closed first), then bind(0) x3
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    auto lb = loop4(5000);
    if (bind(lst, sa(lb), sizeof lb) != 0 || listen(lst, 4) != 0) _exit(10);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cl, sa(lb), sizeof lb) != 0) _exit(11);
    int srv = accept(lst, nullptr, nullptr);
    close(cl);  // active close: FIN_WAIT, then TIME_WAIT once the peer closes
    usleep(50'000);
    close(srv);
    usleep(200'000);
    for (int i = 0; i < 3; i++) {
      int t = socket(AF_INET, SOCK_STREAM, 0);
      auto z = loop4(0);
      if (bind(t, sa(z), sizeof z) != 0) _exit(12);
      keep.push_back(t);
    }
    int t = socket(AF_INET, SOCK_STREAM, 0);
    auto z = loop4(0);
    out[2] = bind(t, sa(z), sizeof z) == 0 ? 0 : static_cast<uint64_t>(errno);
    close(t);
  });
  uint64_t out[8];
  ASSERT_TRUE(c.result(out));
  EXPECT_NE(out[0], 0u);
  ASSERT_EQ(out[1], static_cast<uint64_t>(EADDRINUSE)) << "the udp range did not fill";
  ASSERT_EQ(out[2], static_cast<uint64_t>(EADDRINUSE)) << "the tcp range did not fill";
  auto udp = t().wait_for([&](const Json& j) {
    return j["type"] == "exhausted" && j["pid"] == c.pid && j["proto"] == "udp";
  });
  auto tcp = t().wait_for([&](const Json& j) {
    return j["type"] == "exhausted" && j["pid"] == c.pid && j["proto"] == "tcp";
  });
  c.release();
  ASSERT_TRUE(udp);
  EXPECT_EQ((*udp)["held"], 4) << "ports held, not sockets: " << udp->dump();
  ASSERT_TRUE(tcp);
  // 5000 (the listener, outside the range, but held), the TIME_WAIT port, three bound
  EXPECT_EQ((*tcp)["held"], 5) << "the TIME_WAIT port still counts: " << tcp->dump();
}
