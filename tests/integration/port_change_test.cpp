// Root integration tests of a socket that gives its port up without a close
// and takes another: a UDP connect(AF_UNSPEC) unhashes a port the user did
// not bind (__udp_disconnect), and the socket's next send, connect or bind
// takes a new one; TCP's disconnect and a reconnect after a refused connect.
// Each port is one assign and one release, at the times they happened, and
// no port is ever stamped with another's time.
//
// Where the kernel shows the disconnect (fexit on inet_dgram_connect, the
// syscall exit of connect) the release is at the disconnect. Where it does
// not (the socket and cgroup worlds), the release comes at the socket's next
// sight, marked late; and a connect() undone before any hook read its port
// leaves no assign: it is counted in a lost record instead.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// The worlds that see a disconnect when it happens.
bool sees_disconnect(const Json& start) { return start["world"] == "fexit" || start["world"] == "syscall"; }

int disconnect(int fd) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  return connect(fd, &unspec, sizeof unspec);
}

// A moment of the test's, [before, after] around one call.
struct Span {
  uint64_t before = 0, after = 0;
  template <class F>
  auto around(F f) {
    before = now_ns();
    auto r = f();
    after = now_ns();
    return r;
  }
};

void expect_within(const Json& r, const Span& s, const char* what) {
  uint64_t ts = r["ts_ns"].get<uint64_t>();
  EXPECT_GE(ts, s.before) << what << ": " << r.dump();
  EXPECT_LE(ts, s.after) << what << ": " << r.dump();
}

// The records of one socket, in the log's order (after its last release).
std::vector<Json> records_of(Tracer& t, uint64_t cookie, uint16_t last_port) {
  auto last = t.wait_for(
      [&](const Json& r) { return r["type"] == "release" && r["sock"] == cookie && r["lport"] == last_port; });
  EXPECT_TRUE(last) << "no release of port " << last_port;
  std::this_thread::sleep_for(300ms);  // anything after it, which must not be there
  return t.all([&](const Json& r) { return r.contains("sock") && r["sock"] == cookie; });
}

std::string kinds(const std::vector<Json>& recs) {
  std::string s;
  for (const auto& r : recs) s += r["type"].get<std::string>() + ":" + std::to_string(r["lport"].get<int>()) + " ";
  return s;
}

template <class A>
void udp_disconnect_then_send(Tracer& t, const Json& start, int family, const A& peer, const A& other,
                              uint64_t* cookie) {
  int fd = socket(family, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  Span connected, dropped, sent;
  ASSERT_EQ(connected.around([&] { return do_connect(fd, peer); }), 0);
  uint16_t a = local_port(fd);
  uint64_t c = sock_cookie(fd);
  *cookie = c;
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(dropped.around([&] { return disconnect(fd); }), 0);
  ASSERT_EQ(local_port(fd), 0) << "the disconnect keeps an autobound port";
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(sent.around([&] { return sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&other), sizeof other); }),
            1);
  uint16_t b = local_port(fd);
  ASSERT_NE(b, 0);
  if (a == b) GTEST_SKIP() << "the kernel chose the same port twice";
  std::this_thread::sleep_for(30ms);
  close(fd);
  auto recs = records_of(t, c, b);
  if (sees_disconnect(start)) {
    ASSERT_EQ(recs.size(), 4u) << kinds(recs);
    EXPECT_EQ(recs[0]["type"], "assign");
    EXPECT_EQ(recs[0]["lport"], a);
    EXPECT_EQ(recs[0]["how"], "connect");
    expect_within(recs[0], connected, "the first port's assign, at the connect");
    EXPECT_EQ(recs[1]["type"], "release");
    EXPECT_EQ(recs[1]["lport"], a);
    EXPECT_EQ(recs[1]["reason"], "disconnect");
    EXPECT_FALSE(recs[1].contains("late")) << recs[1].dump();
    expect_within(recs[1], dropped, "the first port's release, at the disconnect");
    EXPECT_EQ(recs[1]["pid"], getpid());
  } else {
    // the connect's port was given up before any hook could read it
    ASSERT_EQ(recs.size(), 2u) << kinds(recs);
    EXPECT_TRUE(uncaught_mentions(start, "udp connect() undone by connect(AF_UNSPEC)"));
    auto lost = t.wait_for([&](const Json& r) {
      return r["type"] == "lost" && r["reasons"].contains("udp_connect_given_up_unseen") &&
             r["ts_ns"].get<uint64_t>() >= connected.before;
    });
    EXPECT_TRUE(lost) << "the unseen port is counted";
  }
  const Json& assign_b = recs[recs.size() - 2];
  EXPECT_EQ(assign_b["type"], "assign");
  EXPECT_EQ(assign_b["lport"], b);
  EXPECT_EQ(assign_b["how"], "sendmsg") << "the send took it, not the connect";
  expect_within(assign_b, sent, "the second port's assign, at the send");
  EXPECT_EQ(recs.back()["type"], "release");
  EXPECT_FALSE(recs.back().contains("reason")) << recs.back().dump();
}

}  // namespace

TEST_F(Holes, UdpDisconnectGivesUpItsPortAndTheNextSendTakesAnother) {
  uint64_t c = 0;
  udp_disconnect_then_send(t(), start(), AF_INET, v4(53), v4(9), &c);
  EXPECT_TRUE(of_sock("exhausted", c).empty()) << "no port was ever missing";
}

TEST_F(Holes, UdpDisconnectGivesUpItsPortAndTheNextSendTakesAnotherIpv6) {
  uint64_t c = 0;
  udp_disconnect_then_send(t(), start(), AF_INET6, v6(53), v6(9), &c);
  EXPECT_TRUE(of_sock("exhausted", c).empty()) << "no port was ever missing";
}

// getaddrinfo() sorts its answers this way: connect, getsockname,
// connect(AF_UNSPEC), connect to the next one, ... on one socket.
TEST_F(Holes, UdpConnectDisconnectConnectIsTwoPorts) {
  for (int family : {AF_INET, AF_INET6}) {
    int fd = socket(family, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    auto first4 = v4(53), second4 = v4(54);
    auto first6 = v6(53), second6 = v6(54);
    Span one, two;
    ASSERT_EQ(one.around([&] { return family == AF_INET ? do_connect(fd, first4) : do_connect(fd, first6); }), 0);
    uint16_t a = local_port(fd);
    uint64_t c = sock_cookie(fd);
    ASSERT_EQ(disconnect(fd), 0);
    ASSERT_EQ(two.around([&] { return family == AF_INET ? do_connect(fd, second4) : do_connect(fd, second6); }), 0);
    uint16_t b = local_port(fd);
    if (a == b) continue;  // the same port chosen twice: nothing to tell apart
    close(fd);
    auto recs = records_of(t(), c, b);
    if (sees_disconnect(start())) {
      ASSERT_EQ(recs.size(), 4u) << kinds(recs);
      EXPECT_EQ(recs[0]["lport"], a);
      expect_within(recs[0], one, "the first connect's port");
      EXPECT_EQ(recs[1]["type"], "release");
      EXPECT_EQ(recs[1]["lport"], a);
      EXPECT_EQ(recs[1]["reason"], "disconnect");
    } else {
      ASSERT_EQ(recs.size(), 2u) << kinds(recs);
    }
    const Json& assign_b = recs[recs.size() - 2];
    EXPECT_EQ(assign_b["lport"], b);
    EXPECT_EQ(assign_b["how"], "connect");
    EXPECT_EQ(assign_b["rport"], 54);
    expect_within(assign_b, two, "the second connect's port, with its time");
    EXPECT_TRUE(of_sock("exhausted", c).empty()) << "no connect found its ports full";
  }
}

// A port the user bound (SOCK_BINDPORT_LOCK) survives the disconnect; one
// bound as port 0 does not, and a bind() may take another.
TEST_F(Holes, UdpDisconnectKeepsABoundPortAndDropsAChosenOne) {
  uint16_t fixed = closed_port();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto at = v4(fixed, INADDR_ANY);
  ASSERT_EQ(bind(fd, sa(at), sizeof at), 0);
  uint64_t c = sock_cookie(fd);
  ASSERT_EQ(do_connect(fd, v4(53)), 0);
  ASSERT_EQ(disconnect(fd), 0);
  ASSERT_EQ(local_port(fd), fixed);
  close(fd);
  auto recs = records_of(t(), c, fixed);
  ASSERT_EQ(recs.size(), 2u) << kinds(recs);
  EXPECT_EQ(recs[0]["how"], "bind");
  EXPECT_FALSE(recs[1].contains("reason")) << "released at the close: " << recs[1].dump();

  fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto any = v4(0, INADDR_ANY);
  ASSERT_EQ(bind(fd, sa(any), sizeof any), 0);
  uint16_t a = local_port(fd);
  c = sock_cookie(fd);
  ASSERT_EQ(do_connect(fd, v4(53)), 0);
  Span dropped, rebound;
  ASSERT_EQ(dropped.around([&] { return disconnect(fd); }), 0);
  ASSERT_EQ(local_port(fd), 0) << "a port bound as 0 is the kernel's choice: the disconnect drops it";
  std::this_thread::sleep_for(30ms);
  auto lo = v4(0);
  ASSERT_EQ(rebound.around([&] { return bind(fd, sa(lo), sizeof lo); }), 0);
  uint16_t b = local_port(fd);
  close(fd);
  if (a == b) return;
  recs = records_of(t(), c, b);
  ASSERT_EQ(recs.size(), 4u) << kinds(recs);
  EXPECT_EQ(recs[0]["lport"], a);
  EXPECT_EQ(recs[1]["type"], "release");
  EXPECT_EQ(recs[1]["lport"], a);
  EXPECT_EQ(recs[1]["reason"], "disconnect");
  if (sees_disconnect(start())) {
    expect_within(recs[1], dropped, "at the disconnect");
  } else {
    EXPECT_EQ(recs[1]["late"], true) << recs[1].dump();
    expect_within(recs[1], rebound, "at the bind, the next sight");
  }
  EXPECT_EQ(recs[2]["lport"], b);
  EXPECT_EQ(recs[2]["how"], "bind");
  expect_within(recs[2], rebound, "the bind's port");
}

// TCP's disconnect moves the socket to CLOSE (its port goes), and the next
// connect takes another; so does a connect after a refused one.
TEST_F(Holes, TcpDisconnectAndReconnectAfterARefusalAreTwoPortsEach) {
  Listener l;
  for (bool refused_first : {false, true}) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint64_t c = sock_cookie(fd);
    Span one, two;
    if (refused_first) {
      ASSERT_NE(one.around([&] { return do_connect(fd, v4(closed_port())); }), 0);
    } else {
      ASSERT_EQ(one.around([&] { return do_connect(fd, v4(l.port)); }), 0);
      ASSERT_EQ(disconnect(fd), 0);
      accept_and_close(l);
    }
    ASSERT_EQ(two.around([&] { return do_connect(fd, v4(l.port)); }), 0);
    uint16_t b = local_port(fd);
    close(fd);
    accept_and_close(l);
    auto recs = records_of(t(), c, b);
    ASSERT_EQ(recs.size(), 4u) << kinds(recs);
    EXPECT_EQ(recs[0]["type"], "assign");
    expect_within(recs[0], one, "the first port");
    EXPECT_EQ(recs[1]["type"], "release");
    EXPECT_EQ(recs[1]["lport"], recs[0]["lport"]);
    EXPECT_LE(recs[1]["ts_ns"].get<uint64_t>(), two.before);
    EXPECT_EQ(recs[2]["type"], "assign");
    EXPECT_EQ(recs[2]["lport"], b);
    expect_within(recs[2], two, "the second port");
    EXPECT_EQ(recs[3]["type"], "release");
  }
}
