// The NAT join: conntrack events against the socket table, with no kernel.
#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"
#include "trace/nat_join.hpp"
#include "trace/socket_table.hpp"

using namespace portghost;
using Kind = SockEvent::Kind;

namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kUnix = 1'796'000'000 * kSec;  // the boot clock's offset in these tests

// Keeps what reaches the log.
struct Kept : Sink {
  std::vector<NatRecord> nats;
  std::vector<StopRecord> stops;
  void start(const StartRecord&) override {}
  void port(const PortRecord&) override {}
  void lost(const LostRecord&) override {}
  void stop(const StopRecord& r) override { stops.push_back(r); }
  void nat(const NatRecord& r) override { nats.push_back(r); }
  void flush() override {}
};

SockEvent sock(Kind kind, uint64_t cookie, Proto proto, const char* laddr, uint16_t lport, uint64_t ts,
               uint32_t netns = 7, const char* raddr = "", uint16_t rport = 0) {
  SockEvent e = pgtest::sock_event(kind, cookie, lport, ts, 100 + static_cast<uint32_t>(cookie));
  e.proto = proto;
  e.laddr = laddr;
  e.raddr = raddr;
  e.rport = rport;
  e.netns = netns;
  e.comm = "client";
  return e;
}

CtEnd end(const char* addr, uint16_t port) {
  CtEnd e;
  e.addr = addr;
  e.port = port;
  return e;
}

// src -> dst, seen outside as nat_src -> dst; read at boot time `at`
CtEvent ct(CtEvent::Kind kind, uint32_t id, Proto proto, const char* src, uint16_t sport, const char* nat_src,
           uint16_t nat_sport, uint64_t at, const char* dst = "198.19.0.2", uint16_t dport = 7000) {
  CtEvent e;
  e.kind = kind;
  e.id = id;
  e.proto = proto;
  e.orig_src = end(src, sport);
  e.orig_dst = end(dst, dport);
  e.reply_src = end(dst, dport);
  e.reply_dst = end(nat_src, nat_sport);
  e.read_boot_ns = at;
  e.read_unix_ns = kUnix + at;
  return e;
}

struct NatJoinTest : ::testing::Test {
  Kept kept;
  SocketTable table;
  NatJoin nat{kept};
  void SetUp() override { nat.use_table(table); }
  void see(const CtEvent& e) {
    nat.on_conntrack(e);
    nat.ready(e.read_unix_ns);
  }
};

}  // namespace

TEST_F(NatJoinTest, AConnectedSocketsTranslationAndItsEnd) {
  table.assign(sock(Kind::Assign, 1, Proto::Tcp, "198.18.0.2", 49152, 10 * kSec, 7, "198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 55, Proto::Tcp, "198.18.0.2", 49152, "198.19.0.1", 62003, 11 * kSec));
  ASSERT_EQ(kept.nats.size(), 1u);
  const NatRecord& n = kept.nats[0];
  EXPECT_EQ(n.type, NatRecord::Type::Nat);
  EXPECT_EQ(n.sock, 1u);
  EXPECT_EQ(n.laddr, "198.18.0.2");
  EXPECT_EQ(n.lport, 49152);
  EXPECT_EQ(n.raddr, "198.19.0.2");
  EXPECT_EQ(n.rport, 7000);
  EXPECT_EQ(n.nat_laddr, "198.19.0.1");
  EXPECT_EQ(n.nat_lport, 62003);
  EXPECT_EQ(n.nat_raddr, "198.19.0.2");
  EXPECT_EQ(n.nat_rport, 7000);
  EXPECT_EQ(n.ct_id, 55u);
  EXPECT_EQ(n.pid, 101u);
  EXPECT_EQ(n.netns, 7u);
  EXPECT_EQ(n.ts_ns, kUnix + 11 * kSec);
  see(ct(CtEvent::Kind::Destroy, 55, Proto::Tcp, "198.18.0.2", 49152, "198.19.0.1", 62003, 40 * kSec));
  ASSERT_EQ(kept.nats.size(), 2u);
  EXPECT_EQ(kept.nats[1].type, NatRecord::Type::NatEnd);
  EXPECT_EQ(kept.nats[1].sock, 1u);
  EXPECT_EQ(kept.nats[1].duration_ns, 29 * kSec);
  nat.stop(StopRecord{});
  ASSERT_EQ(kept.stops.size(), 1u);
  EXPECT_EQ(kept.stops[0].records.at("nat"), 1u);
  EXPECT_EQ(kept.stops[0].records.at("nat_end"), 1u);
  EXPECT_EQ(kept.stops[0].nat_unjoined, 0u);
}

TEST_F(NatJoinTest, AFlowThatIsNotTranslatedIsNeitherWrittenNorCounted) {
  table.assign(sock(Kind::Assign, 1, Proto::Tcp, "198.18.0.2", 49152, 10 * kSec, 7, "198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 55, Proto::Tcp, "198.18.0.2", 49152, "198.18.0.2", 49152, 11 * kSec));
  EXPECT_TRUE(kept.nats.empty());
  EXPECT_EQ(nat.unjoined(), 0u);
  EXPECT_FALSE(table.keeps_released()) << "no NAT seen: nothing kept for it";
}

// A port shared by many sockets (SO_REUSEPORT): each flow's join weighs a
// bounded number of them, not every one, and says so in the stop record;
// a connected socket among the latest is still found.
TEST_F(NatJoinTest, APortSharedByManySocketsCostsEachFlowABoundedWalk) {
  const uint64_t n = 3 * NatJoin::kMaxCandidates;
  for (uint64_t c = 1; c <= n; c++) table.assign(sock(Kind::Assign, c, Proto::Udp, "0.0.0.0", 5353, 10 * kSec + c));
  size_t walked = 0;
  EXPECT_FALSE(table.for_each_of_port(
      Proto::Udp, 5353, 11 * kSec, [&](uint64_t, const SocketTable::Holder&, uint64_t) { walked++; },
      NatJoin::kMaxCandidates));
  EXPECT_EQ(walked, NatJoin::kMaxCandidates);
  table.assign(sock(Kind::Assign, n + 1, Proto::Udp, "198.18.0.2", 5353, 10 * kSec + n + 1, 7, "198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 9, Proto::Udp, "198.18.0.2", 5353, "198.19.0.1", 61000, 11 * kSec));
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, n + 1);
  EXPECT_EQ(nat.crowded(), 1u);
  nat.stop(StopRecord{});
  ASSERT_EQ(kept.stops.size(), 1u);
  EXPECT_EQ(kept.stops[0].nat_crowded, 1u);
}

TEST_F(NatJoinTest, ATranslationNoRecordedSocketMadeIsCountedNotWritten) {
  see(ct(CtEvent::Kind::New, 1, Proto::Udp, "198.18.0.9", 5353, "198.19.0.1", 5353, 11 * kSec));
  // a hidden (filtered out) socket is not recorded either
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 40000, 10 * kSec), true);
  see(ct(CtEvent::Kind::New, 2, Proto::Udp, "198.18.0.2", 40000, "198.19.0.1", 40000, 11 * kSec + 100));
  // another peer than the connected socket's
  table.assign(sock(Kind::Assign, 3, Proto::Tcp, "198.18.0.2", 40001, 10 * kSec, 7, "198.19.0.3", 80));
  see(ct(CtEvent::Kind::New, 3, Proto::Tcp, "198.18.0.2", 40001, "198.19.0.1", 40001, 11 * kSec + 200));
  EXPECT_EQ(nat.unjoined(), 0u) << "each waits for its socket's record a while";
  EXPECT_EQ(nat.pending(), 3u);
  nat.ready(kUnix + 11 * kSec + 200 + NatJoin::kWaitNs);
  EXPECT_TRUE(kept.nats.empty());
  EXPECT_EQ(nat.unjoined(), 3u);
  EXPECT_EQ(nat.pending(), 0u);
}

// A datagram's socket is often closed before its translation is read: kept
// for that once NAT is seen; before, it is missed (and counted).
TEST_F(NatJoinTest, AReleasedDatagramSocketIsJoinedOnceNatIsSeen) {
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec));
  table.release(sock(Kind::Release, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 5000));
  see(ct(CtEvent::Kind::New, 9, Proto::Udp, "198.18.0.2", 40000, "198.19.0.1", 62000, 10 * kSec + 9000));
  nat.ready(kUnix + 12 * kSec);
  EXPECT_TRUE(kept.nats.empty());
  EXPECT_EQ(nat.unjoined(), 1u);
  EXPECT_TRUE(table.keeps_released());
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 40002, 20 * kSec));
  table.release(sock(Kind::Release, 2, Proto::Udp, "0.0.0.0", 40002, 20 * kSec + 5000));
  see(ct(CtEvent::Kind::New, 10, Proto::Udp, "198.18.0.2", 40002, "198.19.0.1", 62001, 20 * kSec + 9000));
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 2u);
  EXPECT_EQ(kept.nats[0].laddr, "198.18.0.2") << "the flow's own source, not the socket's wildcard";
  // too long after its release, no more
  table.assign(sock(Kind::Assign, 3, Proto::Udp, "0.0.0.0", 40003, 30 * kSec));
  table.release(sock(Kind::Release, 3, Proto::Udp, "0.0.0.0", 40003, 30 * kSec));
  see(ct(CtEvent::Kind::New, 11, Proto::Udp, "198.18.0.2", 40003, "198.19.0.1", 62002,
         30 * kSec + SocketTable::kKeepReleasedNs + 1));
  EXPECT_EQ(kept.nats.size(), 1u);
}

// One port taken again after the first flow ended: each translation goes
// to the socket that held the port when it was read.
TEST_F(NatJoinTest, APortReusedGoesToTheSocketOfTheTime) {
  table.keep_released(true);
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 45000, 10 * kSec));
  see(ct(CtEvent::Kind::New, 1, Proto::Udp, "198.18.0.2", 45000, "198.19.0.1", 62000, 10 * kSec + 100));
  table.release(sock(Kind::Release, 1, Proto::Udp, "0.0.0.0", 45000, 11 * kSec));
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 45000, 12 * kSec));
  see(ct(CtEvent::Kind::New, 2, Proto::Udp, "198.18.0.2", 45000, "198.19.0.1", 62001, 12 * kSec + 100));
  ASSERT_EQ(kept.nats.size(), 2u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
  EXPECT_EQ(kept.nats[1].sock, 2u);
  // read late, after the second socket took the port, the first flow's
  // event would be the second's: it was read before that one existed
  table.release(sock(Kind::Release, 2, Proto::Udp, "0.0.0.0", 45000, 13 * kSec));
  table.assign(sock(Kind::Assign, 3, Proto::Udp, "0.0.0.0", 45000, 14 * kSec));
  see(ct(CtEvent::Kind::New, 3, Proto::Udp, "198.18.0.2", 45000, "198.19.0.1", 62002, 13 * kSec + 500));
  ASSERT_EQ(kept.nats.size(), 3u);
  EXPECT_EQ(kept.nats[2].sock, 2u) << "socket 3 was assigned after the event was read";
}

// The translation of a datagram is made inside its send; the send's port
// record comes at the send's end, after the event may have been read.
TEST_F(NatJoinTest, AnEventReadBeforeItsSendsRecordWaitsForIt) {
  see(ct(CtEvent::Kind::New, 9, Proto::Udp, "198.18.0.2", 40000, "198.19.0.1", 62000, 10 * kSec));
  EXPECT_EQ(nat.pending(), 1u);
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 20'000));
  nat.ready(kUnix + 10 * kSec + 30'000);
  EXPECT_TRUE(kept.nats.empty()) << "tried again only after a while";
  nat.ready(kUnix + 10 * kSec + NatJoin::kRetryNs);
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
  EXPECT_EQ(nat.unjoined(), 0u);
}

// Two CPUs' records need not come in the order they were made: a socket
// that took the port just after the event was read may be seen before the
// one that sent it. Only sockets taken after the event: not told at the
// first try; at the next, the first of them.
TEST_F(NatJoinTest, ASocketTakenAfterTheEventIsNotChosenBeforeTheSendersRecordCanCome) {
  CtEvent e = ct(CtEvent::Kind::New, 9, Proto::Udp, "198.18.0.2", 40000, "198.19.0.1", 62000, 10 * kSec);
  nat.on_conntrack(e);
  // another process's socket, taken 10 us after the event was read
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 10'000));
  nat.ready(kUnix + 10 * kSec + 20'000);
  EXPECT_TRUE(kept.nats.empty()) << "the sender's record may still come";
  // the sender's, made at 5 us, read after it (released since: one datagram)
  table.keep_released(true);
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 5'000));
  table.release(sock(Kind::Release, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 8'000));
  nat.ready(kUnix + 10 * kSec + NatJoin::kRetryNs);
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u) << "the first socket taken after the event, not the latest";
  EXPECT_EQ(nat.unjoined(), 0u);
  EXPECT_EQ(nat.pending(), 0u);
}

TEST_F(NatJoinTest, AnEventWaitsUntilTheRecordsBeforeItAreRead) {
  CtEvent e = ct(CtEvent::Kind::New, 5, Proto::Tcp, "198.18.0.2", 49152, "198.19.0.1", 62003, 11 * kSec);
  nat.on_conntrack(e);
  nat.ready(e.read_unix_ns - 1);  // the ring was emptied before the event was read
  EXPECT_EQ(nat.pending(), 1u);
  // its socket's assign arrives (made before the event, read after it)
  table.assign(sock(Kind::Assign, 1, Proto::Tcp, "198.18.0.2", 49152, 10 * kSec, 7, "198.19.0.2", 7000));
  // the end of the flow comes while its start waits: kept for after it
  nat.on_conntrack(ct(CtEvent::Kind::Destroy, 5, Proto::Tcp, "198.18.0.2", 49152, "198.19.0.1", 62003, 12 * kSec));
  nat.ready(kUnix + 13 * kSec);
  ASSERT_EQ(kept.nats.size(), 2u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
  EXPECT_EQ(kept.nats[1].type, NatRecord::Type::NatEnd);
  EXPECT_EQ(nat.pending(), 0u);
}

// The same port in two namespaces, both bound to the wildcard: which one
// sent it is told by a socket bound to the flow's source address, or not
// at all.
TEST_F(NatJoinTest, TwoNamespacesOnePortIsAmbiguousUnlessAnAddressTells) {
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 5353, 10 * kSec, 7));
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 5353, 10 * kSec, 8));
  see(ct(CtEvent::Kind::New, 1, Proto::Udp, "198.18.0.3", 5353, "198.19.0.1", 5353, 11 * kSec));
  EXPECT_TRUE(kept.nats.empty());
  EXPECT_EQ(nat.ambiguous(), 1u);
  table.assign(sock(Kind::Assign, 3, Proto::Tcp, "198.18.0.3", 43000, 10 * kSec, 7, "198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 2, Proto::Udp, "198.18.0.3", 5353, "198.19.0.1", 5353, 12 * kSec));
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
  EXPECT_EQ(kept.nats[0].netns, 7u);
}

// Three sockets fit equally, two in one namespace and one in another: not
// the first namespace's because its two sockets outrank each other.
TEST_F(NatJoinTest, ThreeSocketsOfTwoNamespacesAreAmbiguousToo) {
  CtEvent e = ct(CtEvent::Kind::New, 3, Proto::Udp, "198.18.0.3", 5353, "198.19.0.1", 5353, 10 * kSec);
  nat.on_conntrack(e);
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 5353, 10 * kSec + 5'000, 7));
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "0.0.0.0", 5353, 10 * kSec + 6'000, 7));
  table.assign(sock(Kind::Assign, 3, Proto::Udp, "0.0.0.0", 5353, 10 * kSec + 7'000, 8));
  nat.ready(kUnix + 10 * kSec + NatJoin::kRetryNs);
  EXPECT_TRUE(kept.nats.empty());
  EXPECT_EQ(nat.ambiguous(), 1u);
  // a socket of namespace 7 bound to the flow's source tells: the best of
  // that namespace's (the latest, all taken before this event), not the
  // best of all (namespace 8's)
  table.assign(sock(Kind::Assign, 4, Proto::Tcp, "198.18.0.3", 43000, 9 * kSec, 7, "198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 4, Proto::Udp, "198.18.0.3", 5353, "198.19.0.1", 5353, 11 * kSec));
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 2u);
  EXPECT_EQ(kept.nats[0].netns, 7u);
}

TEST_F(NatJoinTest, ADualStackSocketsFlowIsItsIpv4One) {
  table.assign(sock(Kind::Assign, 1, Proto::Tcp, "::ffff:198.18.0.2", 49152, 10 * kSec, 7, "::ffff:198.19.0.2", 7000));
  see(ct(CtEvent::Kind::New, 5, Proto::Tcp, "198.18.0.2", 49152, "198.19.0.1", 49152, 11 * kSec));
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
}

// At the stop nothing may be left waiting unseen: every event gets its last
// try, and what stays unjoined is counted.
TEST_F(NatJoinTest, AtTheStopEveryWaitingFlowIsJoinedOrCounted) {
  see(ct(CtEvent::Kind::New, 1, Proto::Udp, "198.18.0.2", 40000, "198.19.0.1", 62000, 10 * kSec));
  see(ct(CtEvent::Kind::New, 2, Proto::Udp, "198.18.0.2", 40001, "198.19.0.1", 62001, 10 * kSec + 10));
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "0.0.0.0", 40000, 10 * kSec + 20));
  EXPECT_EQ(nat.pending(), 2u);
  nat.finish();
  EXPECT_EQ(nat.pending(), 0u);
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u);
  EXPECT_EQ(nat.unjoined(), 1u);
}

// A flow found by a look at the table, not by its event: it began between
// that look and the one before, so a socket that let the port go before the
// look was alive then; two unconnected sockets in the window are no telling.
TEST_F(NatJoinTest, AFlowFoundByALookIsTheSocketThatHeldThePortInItsWindow) {
  table.keep_released(true);
  // connected, released before the look; a later one with no peer named,
  // alive at the look (had the flow been read as an event then, that one)
  table.assign(sock(Kind::Assign, 1, Proto::Udp, "198.18.0.2", 45000, 10 * kSec, 7, "198.19.0.2", 7000));
  table.release(sock(Kind::Release, 1, Proto::Udp, "198.18.0.2", 45000, 10 * kSec + 50'000'000));
  table.assign(sock(Kind::Assign, 2, Proto::Udp, "198.18.0.2", 45000, 10 * kSec + 500'000'000));
  CtEvent found = ct(CtEvent::Kind::New, 5, Proto::Udp, "198.18.0.2", 45000, "198.19.0.1", 45000,
                     10 * kSec + 900'000'000, "198.19.0.2", 7000);
  found.found_since_boot_ns = 9 * kSec + 900'000'000;
  see(found);
  ASSERT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(kept.nats[0].sock, 1u) << "the socket whose peer it is, alive when the flow began";

  // two unconnected sockets on one port within the window: ambiguous
  table.assign(sock(Kind::Assign, 3, Proto::Udp, "0.0.0.0", 46000, 20 * kSec));
  table.release(sock(Kind::Release, 3, Proto::Udp, "0.0.0.0", 46000, 20 * kSec + 10'000'000));
  table.assign(sock(Kind::Assign, 4, Proto::Udp, "0.0.0.0", 46000, 20 * kSec + 20'000'000));
  found = ct(CtEvent::Kind::New, 6, Proto::Udp, "198.18.0.2", 46000, "198.19.0.1", 46000, 20 * kSec + 900'000'000,
             "198.19.0.2", 7001);
  found.found_since_boot_ns = 19 * kSec + 950'000'000;
  see(found);
  EXPECT_EQ(kept.nats.size(), 1u);
  EXPECT_EQ(nat.ambiguous(), 1u);
  // read as an event instead, the socket holding the port then is the one
  found.found_since_boot_ns.reset();
  found.id = 7;
  see(found);
  ASSERT_EQ(kept.nats.size(), 2u);
  EXPECT_EQ(kept.nats[1].sock, 4u);
}
