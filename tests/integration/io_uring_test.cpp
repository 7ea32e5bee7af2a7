// Root integration tests of ports taken through io_uring, where no connect
// or send syscall is made.
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

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
  const Json start = t().records().front();
  if (syscall_world(start)) {
    EXPECT_TRUE(uncaught_mentions(start, "udp connect() through the 32-bit syscall ABI or io_uring"));
    GTEST_SKIP() << "recorded late in the syscall world, as start.uncaught says";
  }
  std::string why;
  int fd = udp_connect_via_io_uring(53, why);
  if (fd == -1) GTEST_SKIP() << why;
  ASSERT_GE(fd, 0) << why;
  uint64_t c = sock_cookie(fd);
  uint16_t port = local_port(fd);
  uint64_t before_close = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
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
