// The socket table's holders of one port: the list the NAT join walks, kept
// right as holders come and go, however many share the port. The rest of
// the table: socket_table_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "trace/socket_table.hpp"

using namespace portghost;
using Kind = SockEvent::Kind;

namespace {

SockEvent assign_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid) {
  SockEvent e = pgtest::sock_event(Kind::Assign, cookie, lport, ts, pid);
  e.comm = "srv";
  e.laddr = "192.0.2.1";
  return e;
}

SockEvent release_ev(uint64_t cookie, uint16_t lport, uint64_t ts) {
  SockEvent e = pgtest::sock_event(Kind::Release, cookie, lport, ts, 0);
  e.laddr = "0.0.0.0";
  return e;
}

}  // namespace

// The holders of one port, every namespace: what a NAT translation is
// joined against; the list stays right as holders come and go.
TEST(SocketTable, TheHoldersOfAPortAcrossNamespacesAndTheLatelyReleased) {
  SocketTable t;
  auto of_port = [&](Proto p, uint16_t port, uint64_t now) {
    std::vector<std::pair<uint64_t, uint64_t>> v;  // (cookie, released)
    t.for_each_of_port(p, port, now,
                       [&](uint64_t c, const SocketTable::Holder&, uint64_t rel) { v.emplace_back(c, rel); });
    std::sort(v.begin(), v.end());
    return v;
  };
  for (uint64_t c = 1; c <= 4; c++) {
    SockEvent e = assign_ev(c, 5000, 10, 1);
    e.netns = c <= 2 ? 7 : 8;  // two in each namespace (SO_REUSEPORT)
    t.assign(e);
  }
  t.assign(assign_ev(9, 5001, 10, 1));
  using V = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(of_port(Proto::Tcp, 5000, 20), (V{{1, 0}, {2, 0}, {3, 0}, {4, 0}}));
  EXPECT_EQ(of_port(Proto::Udp, 5000, 20), V{});
  t.release(release_ev(2, 5000, 30));  // not kept: keep_released is off
  EXPECT_EQ(of_port(Proto::Tcp, 5000, 40), (V{{1, 0}, {3, 0}, {4, 0}}));
  t.keep_released(true);
  t.release(release_ev(3, 5000, 50));
  SockEvent moved = assign_ev(4, 5002, 60, 1);  // a socket's new port replaces its old one
  moved.netns = 8;
  t.assign(moved);
  EXPECT_EQ(of_port(Proto::Tcp, 5000, 70), (V{{1, 0}, {3, 50}}));
  EXPECT_EQ(of_port(Proto::Tcp, 5002, 70), (V{{4, 0}}));
  EXPECT_EQ(of_port(Proto::Tcp, 5000, 50 + SocketTable::kKeepReleasedNs + 1), (V{{1, 0}})) << "too long ago";
  // the ring of releases keeps the latest kMaxReleased: the oldest go
  for (uint64_t c = 100; c < 100 + SocketTable::kMaxReleased; c++) {
    auto port = static_cast<uint16_t>(10000 + c % 3);
    t.assign(assign_ev(c, port, 80, 1));
    t.release(release_ev(c, port, 90));
  }
  EXPECT_EQ(of_port(Proto::Tcp, 5000, 100), (V{{1, 0}})) << "socket 3's release was the oldest";
  size_t kept = 0;
  for (uint16_t port = 10000; port < 10003; port++) kept += of_port(Proto::Tcp, port, 100).size();
  EXPECT_EQ(kept, SocketTable::kMaxReleased);
  // a socket on loopback is never translated: not kept once released
  SockEvent lo = assign_ev(200'000, 5003, 110, 1);
  lo.laddr = "127.0.0.1";
  t.assign(lo);
  t.release(release_ev(200'000, 5003, 120));
  EXPECT_EQ(of_port(Proto::Tcp, 5003, 130), V{});
}

// Many sockets on one port (SO_REUSEPORT), released in any order: the port's
// holder list stays exact. Each release unlinks by its neighbours, never by
// a walk from the newest (closing 100k sockets in creation order was
// quadratic: tens of seconds of a stalled consumer).
TEST(SocketTable, ManyHoldersOfOnePortReleasedInAnyOrder) {
  for (int order = 0; order < 3; order++) {
    SocketTable t;
    const uint64_t n = 2000;
    for (uint64_t c = 1; c <= n; c++) t.assign(assign_ev(c, 5000, c, 1));
    std::vector<uint64_t> cookies;
    for (uint64_t c = 1; c <= n; c++) cookies.push_back(c);
    if (order == 1) std::reverse(cookies.begin(), cookies.end());
    if (order == 2)  // oldest, newest, and the middle ones
      for (size_t i = 0; i + 1 < cookies.size(); i += 2) std::swap(cookies[i], cookies[cookies.size() - 1 - i / 2]);
    std::vector<uint64_t> left(cookies.begin(), cookies.end());
    for (size_t i = 0; i < cookies.size(); i++) {
      ASSERT_TRUE(t.release(release_ev(cookies[i], 5000, n + i)).has_value());
      if (i % 97 != 0 && i + 1 != cookies.size()) continue;
      std::vector<uint64_t> want(cookies.begin() + static_cast<long>(i) + 1, cookies.end()), got;
      t.for_each_of_port(Proto::Tcp, 5000, n + i,
                         [&](uint64_t c, const SocketTable::Holder&, uint64_t) { got.push_back(c); });
      std::sort(want.begin(), want.end());
      std::sort(got.begin(), got.end());
      ASSERT_EQ(got, want) << "order " << order << " after " << i + 1 << " releases";
    }
    EXPECT_EQ(t.size(), 0u);
  }
}

// A walk of a port's holders stops at its limit across namespaces too: the
// namespaces after the one where the limit was reached are not walked.
TEST(SocketTable, AWalkOfAPortStopsAtItsLimitInEveryNamespace) {
  SocketTable t;
  for (uint32_t ns = 1; ns <= 4; ns++)
    for (uint64_t c = 1; c <= 100; c++) {
      SockEvent e = assign_ev(ns * 1000 + c, 5000, c, 1);
      e.netns = ns;
      ASSERT_TRUE(t.assign(e));
    }
  size_t walked = 0;
  auto count = [&](uint64_t, const SocketTable::Holder&, uint64_t) { walked++; };
  EXPECT_FALSE(t.for_each_of_port(Proto::Tcp, 5000, 200, count, 150));
  EXPECT_EQ(walked, 150u);
  walked = 0;
  EXPECT_TRUE(t.for_each_of_port(Proto::Tcp, 5000, 200, count, 400));
  EXPECT_EQ(walked, 400u);
}
