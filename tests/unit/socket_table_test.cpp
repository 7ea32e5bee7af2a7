#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <utility>

#include "common/flat_map.hpp"
#include "test_util.hpp"
#include "trace/socket_table.hpp"

using namespace portghost;
using Kind = SockEvent::Kind;

namespace {

SockEvent assign_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid, std::string comm = "srv") {
  SockEvent e = pgtest::sock_event(Kind::Assign, cookie, lport, ts, pid);
  e.comm = std::move(comm);
  e.laddr = "127.0.0.1";
  return e;
}

// What the sock_release hook reports: port from the socket state, no local
// address, maybe no peer.
SockEvent release_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid = 0) {
  SockEvent e = pgtest::sock_event(Kind::Release, cookie, lport, ts, pid);
  e.laddr = "0.0.0.0";
  return e;
}

}  // namespace

TEST(SocketTable, AssignThenReleaseGivesTheLifetime) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(1, 8080, 1'000, 42, "nginx")));
  EXPECT_EQ(t.size(), 1u);
  const SocketTable::Holder* h = t.find(1);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->lport, 8080);
  EXPECT_EQ(h->since_boot_ns, 1'000u);
  EXPECT_FALSE(h->existing);
  EXPECT_FALSE(h->hidden);

  auto r = t.release(release_ev(1, 8080, 6'500, 42));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->duration_ns.has_value());
  EXPECT_EQ(*r->duration_ns, 5'500u);
  EXPECT_EQ(r->pid, 42u);
  EXPECT_EQ(r->comm, "nginx");
  EXPECT_EQ(r->lport, 8080);
  EXPECT_EQ(r->laddr, "127.0.0.1") << "release's unspecified address replaced by the assign's";
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.find(1), nullptr);
}

TEST(SocketTable, ReleaseIsAttributedToTheAssignerNotTheCloser) {
  // fork/dup: pid 100 binds, its child 200 holds the last reference and closes
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(7, 5000, 10, 100, "parent")));
  SockEvent rel = release_ev(7, 5000, 20, 200);
  rel.comm = "child";
  auto r = t.release(rel);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->pid, 100u);
  EXPECT_EQ(r->comm, "parent");
  EXPECT_EQ(r->duration_ns, 10u);
}

TEST(SocketTable, ReleaseOfAnUnseenAssignHasNoDuration) {
  SocketTable t;
  SockEvent rel = release_ev(99, 40000, 1'000, 300);
  rel.laddr = "10.0.0.1";
  rel.raddr = "10.0.0.2";
  rel.rport = 443;
  auto r = t.release(rel);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->duration_ns.has_value());
  EXPECT_FALSE(r->pid.has_value()) << "the closer is not the assigner: unknown";
  EXPECT_FALSE(r->comm.has_value());
  EXPECT_EQ(r->lport, 40000);
  EXPECT_EQ(r->laddr, "10.0.0.1");
  EXPECT_EQ(r->raddr, "10.0.0.2");
  EXPECT_EQ(r->rport, 443);
}

TEST(SocketTable, ReleaseOfAnUnseenSocketWithoutPortIsDropped) {
  SocketTable t;
  EXPECT_FALSE(t.release(release_ev(99, 0, 1'000, 300)).has_value());
}

TEST(SocketTable, DuplicateAssignOfTheSamePortIsDropped) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(3, 9000, 100, 1, "first")));
  EXPECT_FALSE(t.assign(assign_ev(3, 9000, 500, 2, "second")));
  EXPECT_EQ(t.size(), 1u);
  const auto* h = t.find(3);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->since_boot_ns, 100u) << "the first assign is kept";
  EXPECT_EQ(h->pid, 1u);
  auto r = t.release(release_ev(3, 9000, 1'100));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->duration_ns, 1'000u);
  EXPECT_EQ(r->comm, "first");
}

TEST(SocketTable, ExistingThenAssignOfTheSamePortIsDropped) {
  SocketTable t;
  SockEvent ex = assign_ev(4, 22, 50, 0);
  ex.kind = Kind::Existing;
  t.existing(ex, 11u, std::string("sshd"));
  EXPECT_FALSE(t.assign(assign_ev(4, 22, 60, 11, "sshd")));
  const auto* h = t.find(4);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->existing);
}

TEST(SocketTable, AssignOfAnotherPortOnTheSameCookieReplaces) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(5, 1000, 10, 1)));
  EXPECT_TRUE(t.assign(assign_ev(5, 2000, 20, 1)));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find(5)->lport, 2000);
  EXPECT_EQ(t.find(5)->since_boot_ns, 20u);
}

TEST(SocketTable, CookieAssignedAgainAfterReleaseStartsANewLifetime) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(8, 7000, 100, 1, "one")));
  auto r1 = t.release(release_ev(8, 7000, 200));
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->duration_ns, 100u);
  // same cookie and same port again: not a duplicate, a new holder
  ASSERT_TRUE(t.assign(assign_ev(8, 7000, 1'000, 2, "two")));
  auto r2 = t.release(release_ev(8, 7000, 1'250));
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->duration_ns, 250u);
  EXPECT_EQ(r2->pid, 2u);
  EXPECT_EQ(r2->comm, "two");
  // and a second release of the same cookie matches nothing
  auto r3 = t.release(release_ev(8, 7000, 1'300));
  ASSERT_TRUE(r3.has_value());
  EXPECT_FALSE(r3->duration_ns.has_value());
  EXPECT_FALSE(r3->pid.has_value());
}

TEST(SocketTable, ReleaseLackingLocalAndPeerIsFilledFromTheAssign) {
  SocketTable t;
  SockEvent a = assign_ev(9, 51000, 10, 1);
  a.family = Family::Ipv6;
  a.laddr = "2001:db8::1";
  a.raddr = "2001:db8::2";
  a.rport = 443;
  ASSERT_TRUE(t.assign(a));
  SockEvent rel = release_ev(9, 0, 20);  // no port, no address, no peer
  rel.family = Family::Ipv6;
  rel.laddr = "::";
  auto r = t.release(rel);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->lport, 51000);
  EXPECT_EQ(r->laddr, "2001:db8::1");
  EXPECT_EQ(r->raddr, "2001:db8::2");
  EXPECT_EQ(r->rport, 443);
}

TEST(SocketTable, ReleaseKeepsWhatItKnows) {
  SocketTable t;
  SockEvent a = assign_ev(10, 6000, 10, 1);
  a.laddr = "0.0.0.0";  // bound to the wildcard, connected later
  ASSERT_TRUE(t.assign(a));
  SockEvent rel = release_ev(10, 6000, 20);
  rel.laddr = "192.168.1.5";
  rel.raddr = "192.168.1.1";
  rel.rport = 53;
  auto r = t.release(rel);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->laddr, "192.168.1.5");
  EXPECT_EQ(r->raddr, "192.168.1.1");
  EXPECT_EQ(r->rport, 53);
}

TEST(SocketTable, ReleaseWithAPeerAddressButNoPeerPortUsesTheAssignsPeer) {
  // a failed connect: the address may linger, the port is gone
  SocketTable t;
  SockEvent a = assign_ev(11, 6001, 10, 1);
  a.raddr = "10.9.9.9";
  a.rport = 80;
  ASSERT_TRUE(t.assign(a));
  SockEvent rel = release_ev(11, 6001, 20);
  rel.raddr = "10.1.1.1";
  rel.rport = 0;
  auto r = t.release(rel);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->raddr, "10.9.9.9");
  EXPECT_EQ(r->rport, 80);
}

TEST(SocketTable, HiddenHoldersReleasesAreSuppressed) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(12, 3000, 10, 1), /*hidden=*/true));
  ASSERT_NE(t.find(12), nullptr);
  EXPECT_TRUE(t.find(12)->hidden);
  EXPECT_FALSE(t.release(release_ev(12, 3000, 20)).has_value());
  EXPECT_EQ(t.size(), 0u) << "the hidden holder is gone after its release";

  SockEvent ex = assign_ev(13, 3001, 10, 0);
  ex.kind = Kind::Existing;
  t.existing(ex, 5u, std::string("x"), /*hidden=*/true);
  EXPECT_FALSE(t.release(release_ev(13, 3001, 20)).has_value());
  EXPECT_EQ(t.size(), 0u);
}

TEST(SocketTable, ExistingHolderHasAnOwnerButNoDuration) {
  SocketTable t;
  SockEvent ex = assign_ev(14, 443, 10, 0);
  ex.kind = Kind::Existing;
  t.existing(ex, 77u, std::string("nginx"));
  auto r = t.release(release_ev(14, 443, 10'000));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->duration_ns.has_value()) << "held since before the trace: start unknown";
  EXPECT_EQ(r->pid, 77u);
  EXPECT_EQ(r->comm, "nginx");

  SockEvent orphan = assign_ev(15, 444, 10, 0);
  orphan.kind = Kind::Existing;
  t.existing(orphan, std::nullopt, std::nullopt);
  auto r2 = t.release(release_ev(15, 444, 20));
  ASSERT_TRUE(r2.has_value());
  EXPECT_FALSE(r2->pid.has_value());
  EXPECT_FALSE(r2->comm.has_value());
}

TEST(SocketTable, KernelAssignHasNoProcess) {
  SocketTable t;
  SockEvent a = assign_ev(16, 2049, 10, 123, "kworker");
  a.flags = PG_F_KERNEL;
  ASSERT_TRUE(t.assign(a));
  auto r = t.release(release_ev(16, 2049, 30));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->pid.has_value());
  EXPECT_FALSE(r->comm.has_value());
  EXPECT_EQ(r->duration_ns, 20u);
}

TEST(SocketTable, ReleaseBeforeAssignTimeHasNoDuration) {
  // records from different CPUs: never a negative (wrapped) lifetime
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(17, 4000, 1'000, 1)));
  auto r = t.release(release_ev(17, 4000, 999));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->duration_ns.has_value());
  EXPECT_EQ(r->pid, 1u);
}

TEST(SocketTable, EvictionWhenFullIsCounted) {
  SocketTable t(2);
  ASSERT_TRUE(t.assign(assign_ev(1, 1001, 10, 1)));
  ASSERT_TRUE(t.assign(assign_ev(2, 1002, 10, 1)));
  EXPECT_EQ(t.evicted(), 0u);
  ASSERT_TRUE(t.assign(assign_ev(3, 1003, 10, 1)));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evicted(), 1u);
  EXPECT_NE(t.find(3), nullptr) << "the newest holder is kept";
  int left = (t.find(1) != nullptr) + (t.find(2) != nullptr);
  EXPECT_EQ(left, 1);

  // replacing a present cookie when full evicts nothing
  ASSERT_TRUE(t.assign(assign_ev(3, 2003, 20, 1)));
  EXPECT_EQ(t.evicted(), 1u);
  EXPECT_EQ(t.size(), 2u);

  // the evicted socket's release still reports its port, without a lifetime
  uint64_t gone = t.find(1) ? 2 : 1;
  auto r = t.release(release_ev(gone, static_cast<uint16_t>(1000 + gone), 50));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->duration_ns.has_value());

  SockEvent ex = assign_ev(4, 1004, 10, 0);
  t.existing(ex, std::nullopt, std::nullopt);
  SockEvent ex2 = assign_ev(5, 1005, 10, 0);
  t.existing(ex2, std::nullopt, std::nullopt);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evicted(), 3u) << "existing holders count against the bound too";
}

TEST(SocketTable, HeldCountsDistinctPortsNotSockets) {
  SocketTable t;
  PortRanges ranges;
  ranges.learn(0, 40000, 65535);
  t.count_in_range_of(&ranges);
  for (uint64_t c = 1; c <= 3; c++) ASSERT_TRUE(t.assign(assign_ev(c, 40000, c, 1)));  // an SO_REUSEPORT group
  ASSERT_TRUE(t.assign(assign_ev(4, 40001, 4, 1)));
  ASSERT_TRUE(t.assign(assign_ev(5, 80, 5, 1)));
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 3u);
  EXPECT_EQ(t.held_in_range(0, Proto::Tcp), 2u);
  t.release(release_ev(1, 40000, 10));
  t.release(release_ev(2, 40000, 11));
  EXPECT_EQ(t.held_in_range(0, Proto::Tcp), 2u) << "one socket of the group still holds 40000";
  t.release(release_ev(3, 40000, 12));
  EXPECT_EQ(t.held_in_range(0, Proto::Tcp), 1u);
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 2u);
}

TEST(SocketTable, ATimeWaitPortIsHeldUntilItExpires) {
  SocketTable t;
  ASSERT_TRUE(t.assign(assign_ev(1, 40000, 1'000, 1)));
  SockEvent rel = release_ev(1, 40000, 2'000);
  rel.flags |= PG_F_TIMEWAIT;
  ASSERT_TRUE(t.release(rel).has_value());
  EXPECT_EQ(t.size(), 0u) << "the socket is gone";
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 1u) << "its port is not";
  // a new socket may take it again meanwhile (tcp_tw_reuse): still one port
  ASSERT_TRUE(t.assign(assign_ev(2, 40000, 3'000, 1)));
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 1u);
  t.release(release_ev(2, 40000, 4'000));
  t.advance(2'000 + SocketTable::kTimeWaitNs - 1);
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 1u);
  t.advance(2'000 + SocketTable::kTimeWaitNs);
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 0u);
  // a release without TIME_WAIT frees the port at once
  ASSERT_TRUE(t.assign(assign_ev(3, 40002, 5'000, 1)));
  t.release(release_ev(3, 40002, 6'000));
  EXPECT_EQ(t.held_in(0, Proto::Tcp), 0u);
}

// The flat map under the table: erases in the middle of probe runs keep
// every other key findable (checked against std::map over random work).
TEST(FlatMap, AgreesWithAStdMapOverRandomInsertsAndErases) {
  portghost::FlatMap<uint64_t> flat;
  std::map<uint64_t, uint64_t> ref;
  uint64_t x = 88172645463325252ULL;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 200000; i++) {
    // few distinct keys (dense runs, many collisions), some consecutive
    uint64_t key = (i % 3 == 0) ? 1000 + next() % 512 : next() % 4096;
    if (next() % 3 == 0) {
      EXPECT_EQ(flat.erase(key), ref.erase(key) == 1) << "erase " << key;
    } else {
      auto [v, fresh] = flat.try_emplace(key);
      auto [it, ref_fresh] = ref.try_emplace(key, 0);
      ASSERT_EQ(fresh, ref_fresh) << "insert " << key;
      ASSERT_EQ(*v, it->second);
      *v = it->second = next();
    }
    ASSERT_EQ(flat.size(), ref.size());
  }
  for (uint64_t k = 0; k < 5000; k++) {
    const uint64_t* v = std::as_const(flat).find(k);
    auto it = ref.find(k);
    ASSERT_EQ(v != nullptr, it != ref.end()) << k;
    if (v) {
      EXPECT_EQ(*v, it->second);
    }
  }
  size_t seen = 0;
  flat.for_each([&](uint64_t k, uint64_t v) {
    seen++;
    EXPECT_EQ(ref.at(k), v);
  });
  EXPECT_EQ(seen, ref.size());
  uint64_t other = 0;
  ASSERT_TRUE(flat.any_key_but(ref.begin()->first, other));
  EXPECT_NE(other, ref.begin()->first);
  EXPECT_TRUE(ref.count(other));
}
