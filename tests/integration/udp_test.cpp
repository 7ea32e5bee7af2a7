// Root integration tests of udp's ports: the autobind of a send (sendto,
// sendmsg, sendmmsg; a send that fails after it), connect() without a send,
// and UDP-Lite's port space.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

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

// A connect() whose port a later send to an explicit address finds first
// (where the connect's end is read at the socket's next sight): still the
// connect's, with its time, once.
TEST_F(Trace, UdpConnectThenSendToAnAddressIsTheConnects) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(do_connect(fd, v4(53)), 0);
  uint64_t after_connect = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto dst = v4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  close(fd);
  Json a = assign_of(c);
  EXPECT_EQ(a["how"], "connect") << a.dump();
  EXPECT_EQ(a["lport"], port);
  EXPECT_LT(a["ts_ns"].get<uint64_t>(), after_connect) << "the connect's time, not the send's";
  expect_mine(a);
  release_of(c);
  EXPECT_EQ(t().all(is("assign", c)).size(), 1u);
}

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
  // syscall exits, or with the cgroup hooks alone, the connect is its first
  // sight
  EXPECT_EQ(a.value("late", false), late_world(start())) << a.dump();
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
