// Root integration tests of a range with no free port left: bind(0),
// listen(), a udp send, a udp connect() and a tcp connect() finding none, in a
// network namespace of their own with four ephemeral ports; what counts as
// held, and what is no exhaustion.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include "harness.hpp"

using namespace pgtest;

// fexit on inet_autobind sees this one; the socket world at the socket's
// close (here), with the connect's time and task.
TEST_F(Trace, UdpConnectFindingNoFreePortIsRecordedWhereFexitOrSocketTracepointsWork) {
  const Json start = t().records().front();
  if (unhooked(start, "udp connect() finding no free port")) {
    EXPECT_TRUE(uncaught_mentions(start, "udp connect() finding no free port")) << start["uncaught"].dump();
    GTEST_SKIP() << "uncaught in the " << start["world"] << " world, as start.uncaught says";
  }
  NetnsChild c([](uint64_t* out) {
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
    out[0] = static_cast<uint64_t>(err);
  });
  pid_t child = c.pid;
  uint64_t res[8];
  ASSERT_TRUE(c.result(res));
  int err = static_cast<int>(res[0]);
  // (the fifth bind(0) has its own exhausted record, how "bind")
  auto ex = t().wait_for(
      [&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "connect"; });
  c.release();
  ASSERT_EQ(err, EAGAIN) << "the udp connect did not run out of ports";
  ASSERT_TRUE(ex) << "no exhausted record for the udp connect";
  EXPECT_EQ((*ex)["how"], "connect");
  EXPECT_EQ((*ex)["proto"], "udp");
  EXPECT_EQ((*ex)["held"], 4);
}

TEST_F(Trace, ConnectFindingNoFreePortIsRecordedAsExhausted) {
  // A namespace of our own with a four-port ephemeral range, filled up.
  NetnsChild c([](uint64_t* out) {
    auto* l = new Listener;  // held, like the connections, while the child stays
    std::vector<int> held;
    int err = 0;
    for (int i = 0; i < 16 && !err; i++) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (do_connect(fd, v4(l->port)) == 0) {
        held.push_back(fd);
      } else {
        err = errno;
      }
    }
    out[0] = static_cast<uint64_t>(err);
    out[1] = held.size();
  });
  pid_t child = c.pid;
  uint64_t res[8];
  ASSERT_TRUE(c.result(res));
  int out[2] = {static_cast<int>(res[0]), static_cast<int>(res[1])};
  uint32_t ns = netns_inode(child);
  // the namespace must outlive the tracer's look at its range: the child
  // stays until the records are in
  // (an earlier test's namespace may have had the same inode number, and its
  // udp warning with it)
  auto warn =
      t().wait_for([&](const Json& j) { return j["type"] == "warning" && j["netns"] == ns && j["proto"] == "tcp"; });
  c.release();
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

TEST_F(Trace, BindZeroAndListenFindingNoFreePortAreRecordedAsExhausted) {
  NetnsChild c([](uint64_t* out) {
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
      if (listen(fd, 1) == 0)
        held.push_back(fd);
      else
        errs[1] = errno;
    }
    out[0] = static_cast<uint64_t>(errs[0]);
    out[1] = static_cast<uint64_t>(errs[1]);
  });
  pid_t child = c.pid;
  uint64_t res[8];
  ASSERT_TRUE(c.result(res));
  int errs[2] = {static_cast<int>(res[0]), static_cast<int>(res[1])};
  auto bind_ex =
      t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "bind"; });
  auto listen_ex = t().wait_for(
      [&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "listen"; });
  auto send_ex = t().wait_for(
      [&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == child && j["how"] == "sendmsg"; });
  int code = c.release();  // its exit status; -1 if it did not exit
  ASSERT_NE(code, -1) << "child died";
  ASSERT_NE(code, 6) << "the udp send did not fail with EAGAIN";
  ASSERT_EQ(errs[0], EADDRINUSE);
  ASSERT_EQ(errs[1], EADDRINUSE);
  ASSERT_TRUE(bind_ex) << "no exhausted record for bind(0)";
  EXPECT_EQ((*bind_ex)["proto"], "udp");
  EXPECT_EQ((*bind_ex)["held"], 4);
  const Json start = t().records().front();
  if (unhooked(start, "udp send finding no free port")) {
    EXPECT_FALSE(send_ex) << "an unhooked path has no record";
    EXPECT_TRUE(uncaught_mentions(start, "udp send whose autobind finds no free port")) << start["uncaught"].dump();
  } else {
    ASSERT_TRUE(send_ex) << "no exhausted record for the udp send";
    EXPECT_EQ((*send_ex)["proto"], "udp");
  }
  ASSERT_TRUE(listen_ex) << "no exhausted record for listen()";
  EXPECT_EQ((*listen_ex)["proto"], "tcp");
  EXPECT_EQ((*listen_ex)["held"], 4);
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
  NetnsChild c([](uint64_t* out) {
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

// Item 9: the range fills by ports, not by sockets, and a TIME_WAIT port is
// still taken.
TEST_F(Holes, ExhaustionCountsDistinctPortsAndTimeWaitOnes) {
  NetnsChild c([](uint64_t* out) {
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
  auto udp =
      t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == c.pid && j["proto"] == "udp"; });
  auto tcp =
      t().wait_for([&](const Json& j) { return j["type"] == "exhausted" && j["pid"] == c.pid && j["proto"] == "tcp"; });
  c.release();
  ASSERT_TRUE(udp);
  EXPECT_EQ((*udp)["held"], 4) << "ports held, not sockets: " << udp->dump();
  ASSERT_TRUE(tcp);
  // 5000 (the listener, outside the range, but held), the TIME_WAIT port, three bound
  EXPECT_EQ((*tcp)["held"], 5) << "the TIME_WAIT port still counts: " << tcp->dump();
}
