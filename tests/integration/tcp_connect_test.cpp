// Root integration tests of tcp's ports: connect() in both families,
// non-blocking or refused, fast open (sendto(MSG_FASTOPEN) and a deferred
// TCP_FASTOPEN_CONNECT), listen()'s autobind, an MPTCP listener, and an
// accepted socket, which takes no port of its own.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

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
  // the flow's Community ID (its algorithm is held to the spec's vectors in
  // the unit tests): on both records, the same
  ASSERT_TRUE(a["community_id"].is_string()) << a.dump();
  EXPECT_EQ(a["community_id"].get<std::string>().rfind("1:", 0), 0u);
  EXPECT_EQ(a["community_id"].get<std::string>().size(), 30u);
  EXPECT_EQ(r["community_id"], a["community_id"]);
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
  if (uncaught_mentions(start(), "TCP_FASTOPEN_CONNECT closed before writing is not recorded")) {
    Listener l;
    int fd = fastopen_connect(l.port);
    uint64_t cookie = sock_cookie(fd);
    close(fd);
    EXPECT_TRUE(of_sock("exhausted", cookie).empty()) << "never taken for an exhaustion";
    GTEST_SKIP() << "uncaught here, as start.uncaught says";
  }
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
