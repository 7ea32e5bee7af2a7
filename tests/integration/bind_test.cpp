// Root integration tests of bind(): a port given or chosen (bind(0)), an
// address bound without a port until the connect (IP_BIND_ADDRESS_NO_PORT),
// and what a failed connect does to a bound port.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

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

namespace {
// The lines of the log that name sock c (its records as written).
size_t lines_of_sock(const Tracer& t, uint64_t c) {
  std::ifstream f(t.path());
  std::string needle = "\"sock\":" + std::to_string(c) + ",";
  size_t n = 0;
  for (std::string line; std::getline(f, line);) n += line.find(needle) != std::string::npos;
  return n;
}
}  // namespace

// A port released within --life-ms (100 ms) of its assign is one `life`
// line; one held longer is an assign line, written while it is held, and a
// release line.
TEST_F(Trace, AShortLivedPortIsOneLineALongerLivedOneTwo) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint64_t c = sock_cookie(fd);
  close(fd);
  Json r = release_of(c);
  Json a = assign_of(c);
  EXPECT_EQ(a["life"], true) << a;
  EXPECT_EQ(r["life"], true) << r;
  EXPECT_EQ(a["seq"], r["seq"]);
  EXPECT_EQ(a["ts_ns"].get<uint64_t>() + r["duration_ns"].get<uint64_t>(), r["ts_ns"].get<uint64_t>());
  EXPECT_EQ(lines_of_sock(t(), c), 1u);

  fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  c = sock_cookie(fd);
  a = assign_of(c);  // written while the socket still holds its port
  EXPECT_FALSE(a.contains("life")) << a;
  close(fd);
  r = release_of(c);
  EXPECT_FALSE(r.contains("life")) << r;
  EXPECT_GT(r["duration_ns"].get<uint64_t>(), 100'000'000u);
  EXPECT_GT(r["seq"].get<uint64_t>(), a["seq"].get<uint64_t>());
  EXPECT_EQ(lines_of_sock(t(), c), 2u);
}
