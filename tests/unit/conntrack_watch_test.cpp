// When conntrack is listened to: the watch against a table and an event
// stream played by the test, with no kernel.
#include <gtest/gtest.h>

#include <climits>
#include <map>
#include <vector>

#include "common/errors.hpp"
#include "kernel/conntrack_watch.hpp"

using namespace portghost;

namespace {

constexpr uint64_t kMs = 1'000'000ULL;
constexpr uint64_t kPeriod = 1000 * kMs;

// The table and the stream as the test sets them.
struct FakeSource : CtSource {
  std::map<uint32_t, CtEvent> table;  // the flows tracked now
  bool filters = true;                // the kernel filters a dump by status
  bool ipvs = false;
  bool readable = true;
  bool subscribed = false;
  std::vector<CtEvent> queued;  // events waiting on the stream
  int subscribes = 0, dumps = 0, lookups = 0;
  uint64_t now = 0;

  std::string refuse;  // why subscribing fails, if it does
  std::string subscribe() override {
    if (!refuse.empty()) return refuse;
    subscribes++;
    subscribed = true;
    return "";
  }
  void unsubscribe() override {
    subscribed = false;
    queued.clear();
  }
  int fd() const override { return subscribed ? 42 : -1; }
  uint64_t read(const Each& f) override {
    for (const auto& e : queued) f(e);
    queued.clear();
    return 0;
  }
  std::optional<bool> dump_translated(const Each& f) override {
    dumps++;
    if (!readable) return std::nullopt;
    bool untranslated = false;
    for (auto [id, e] : table) {
      if (!e.src_translated() && !e.dst_translated()) {
        untranslated = true;
        if (!filters) return false;
        continue;
      }
      e.read_boot_ns = now;
      f(e);
    }
    return !untranslated || filters;
  }
  std::optional<bool> translated(const FlowTuple& t) override {
    lookups++;
    for (const auto& [id, e] : table)
      if (e.orig_src.port == t.lport && e.orig_dst.port == t.rport) return e.src_translated() || e.dst_translated();
    return std::nullopt;
  }
  bool status_tells_nat() const override { return !ipvs; }
  bool tracks = true;
  bool tracking() override { return tracks; }

  CtEvent flow(uint32_t id, bool translated) const {
    CtEvent e;
    e.id = id;
    e.orig_src.addr = "198.18.0.2";
    e.orig_src.port = static_cast<uint16_t>(40000 + id);
    e.orig_dst.addr = "198.19.0.2";
    e.orig_dst.port = 7000;
    e.reply_src = e.orig_dst;
    e.reply_dst = e.orig_src;
    if (translated) e.reply_dst.addr = "198.19.0.1";
    e.read_boot_ns = now;
    return e;
  }
  // a flow begins: in the table, and on the stream if subscribed
  void begin(uint32_t id, bool translated) {
    table[id] = flow(id, translated);
    if (subscribed) queued.push_back(table[id]);
  }
  void end(uint32_t id) {
    CtEvent e = table[id];
    table.erase(id);
    e.kind = CtEvent::Kind::Destroy;
    e.read_boot_ns = now;
    if (subscribed) queued.push_back(e);
  }
};

struct ConntrackWatchTest : ::testing::Test {
  FakeSource src;
  std::vector<CtEvent> got;
  CtSource::Each keep = [this](const CtEvent& e) { got.push_back(e); };
  void at(ConntrackWatch& w, uint64_t t) {
    src.now = t;
    w.tick(t, keep);
  }
};

}  // namespace

TEST_F(ConntrackWatchTest, UntranslatedFlowsAloneAreLookedAtNeverListenedTo) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  // flows on loopback give no hint (the join gives none): no look at all
  for (int i = 1; i <= 100; i++) {
    src.begin(static_cast<uint32_t>(i), false);
    at(w, src.now + 100 * kMs);
  }
  EXPECT_EQ(src.subscribes, 0);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Watching);
  EXPECT_EQ(w.mode_text(), "watch");
  EXPECT_EQ(w.fd_to_wait(src.now), -1);
  EXPECT_EQ(w.look_period_ns(), 0u);
  EXPECT_EQ(w.looks(), 1u) << "the first only";
  EXPECT_EQ(w.ms_to_next(src.now), INT_MAX);
  EXPECT_TRUE(got.empty());
  // a port taken with no peer named: a look within the longest period
  // (at once here: the last was long ago)
  w.hint(FlowHint::Unnamed, 1, nullptr, src.now);
  EXPECT_EQ(w.look_period_ns(), kPeriod);
  at(w, src.now);
  EXPECT_EQ(w.looks(), 2u);
  w.hint(FlowHint::Unnamed, 1, nullptr, src.now);
  at(w, src.now + kPeriod / 2);
  EXPECT_EQ(w.looks(), 2u) << "not yet";
  at(w, src.now + kPeriod / 2);
  EXPECT_EQ(w.looks(), 3u);
  // a datagram sent unconnected (no tuple to look up): the next look as
  // soon as its cost allows (a look here takes microseconds: well under
  // the longest period)
  w.hint(FlowHint::Unconnected, 1, nullptr, src.now);
  EXPECT_GE(w.look_period_ns(), ConntrackWatch::kMinLookNs);
  EXPECT_LT(w.look_period_ns(), kPeriod);
  at(w, src.now + w.look_period_ns());
  EXPECT_EQ(w.looks(), 4u);
  EXPECT_EQ(w.look_period_ns(), 0u) << "until the next hint";
}

TEST_F(ConntrackWatchTest, ALookThatFindsATranslationSubscribesAndHandsEachFlowOnOnce) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  uint64_t first_look = src.now;
  src.now += 30 * kMs;
  src.begin(1, true);  // between two looks: not seen yet
  at(w, src.now);
  EXPECT_TRUE(got.empty());
  // its socket's record: connected off loopback; its entry is looked up
  FlowTuple t;
  t.lport = 40001;
  t.rport = 7000;
  w.hint(FlowHint::Flow, 5, &t, src.now);
  EXPECT_EQ(w.ms_to_next(src.now), 0);
  at(w, src.now + kMs);
  EXPECT_EQ(src.lookups, 1);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
  EXPECT_EQ(src.subscribes, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 1u);
  ASSERT_TRUE(got[0].found_since_boot_ns);
  EXPECT_EQ(*got[0].found_since_boot_ns, first_look) << "it began after the look that found none";
  EXPECT_EQ(w.looks(), 2u) << "the first, then the one read once subscribed";
  // its event, queued as the table was read: handed on once
  src.queued.push_back(src.table[1]);
  at(w, src.now + 10 * kMs);
  ASSERT_EQ(got.size(), 1u);
  // from now on the stream
  src.begin(2, true);
  src.begin(3, false);  // the stream's filter is the kernel's; the watch filters too
  at(w, src.now + 20 * kMs);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_FALSE(got[1].found_since_boot_ns) << "an event's own time";
  src.end(1);
  src.end(3);
  at(w, src.now + 20 * kMs);
  ASSERT_EQ(got.size(), 3u);
  // an event read a moment after the tick's clock was read is no reason
  // for a look at the whole table
  src.now += 5 * kMs;
  src.begin(4, true);
  w.tick(src.now - kMs, keep);
  w.tick(src.now - kMs, keep);
  EXPECT_EQ(w.looks(), 2u);
  EXPECT_EQ(got[2].kind, CtEvent::Kind::Destroy);
  EXPECT_EQ(got[2].id, 1u);
}

TEST_F(ConntrackWatchTest, QuietOnceNoTranslatedFlowIsLeftItWatchesAgain) {
  src.now = 10 * kPeriod;
  src.begin(1, true);  // before the trace: found by the first look, began at no known time
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(*got[0].found_since_boot_ns, 0u);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
  // still held: following goes on past the quiet time
  at(w, src.now + ConntrackWatch::kQuietNs + kMs);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
  src.end(1);
  at(w, src.now + kMs);
  ASSERT_EQ(got.size(), 2u);
  at(w, src.now + ConntrackWatch::kQuietNs + kMs);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Watching);
  EXPECT_FALSE(src.subscribed);
  EXPECT_EQ(w.fd_to_wait(src.now), -1);
}

TEST_F(ConntrackWatchTest, AFlowWhoseEndWasNeverReadEndsWhenTheTableNoLongerHasIt) {
  src.now = 10 * kPeriod;
  src.begin(1, true);
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  src.table.erase(1);  // gone, its end lost on the stream (an overrun)
  at(w, src.now + ConntrackWatch::kQuietNs + kMs);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].kind, CtEvent::Kind::Destroy);
  EXPECT_EQ(got[1].read_boot_ns, src.now);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Watching);
}

TEST_F(ConntrackWatchTest, WhereALookCannotFindEveryTranslationTheEventsAreFollowedAlways) {
  {
    src.ipvs = true;  // translations without the status bits
    ConntrackWatch w(src, kPeriod, true, 0, keep);
    EXPECT_EQ(w.mode(), ConntrackWatch::Mode::AlwaysFollowing);
  }
  {
    FakeSource s2;
    ConntrackWatch w(s2, kPeriod, false, 0, keep);  // --user: no look later
    EXPECT_EQ(w.mode(), ConntrackWatch::Mode::AlwaysFollowing);
    at(w, ConntrackWatch::kQuietNs * 3);
    EXPECT_TRUE(s2.subscribed);
  }
  {
    FakeSource s3;
    s3.filters = false;  // the kernel hands back the whole table
    s3.begin(1, false);
    ConntrackWatch w(s3, kPeriod, true, 0, keep);
    EXPECT_EQ(w.mode(), ConntrackWatch::Mode::AlwaysFollowing);
    EXPECT_EQ(w.mode_text(), "follow: this kernel does not filter a dump of the table by status");
    EXPECT_EQ(s3.dumps, 2) << "one look, then the dump after subscribing";
  }
  {
    FakeSource s4;
    s4.readable = false;  // a kernel that refuses the dump's filter
    ConntrackWatch w(s4, kPeriod, true, 0, keep);
    EXPECT_EQ(w.mode(), ConntrackWatch::Mode::AlwaysFollowing);
    EXPECT_EQ(w.mode_text(), "follow: the conntrack table cannot be read here");
    s4.refuse = "no ctnetlink";  // and no events either
    EXPECT_THROW(ConntrackWatch(s4, kPeriod, true, 0, keep), FatalError);
  }
}

TEST_F(ConntrackWatchTest, AnUntranslatedFlowOffLoopbackCostsOneLookupANamespaceAPeriod) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  src.begin(1, false);
  src.begin(2, false);
  FlowTuple t1, t2;
  t1.lport = 40001;
  t2.lport = 40002;
  t1.rport = t2.rport = 7000;
  w.hint(FlowHint::Flow, 5, &t1, src.now);
  w.hint(FlowHint::Flow, 6, &t2, src.now + kMs);
  at(w, src.now + 2 * kMs);
  EXPECT_EQ(src.lookups, 2);
  EXPECT_EQ(w.probes(), 2u);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Watching);
  EXPECT_EQ(src.subscribes, 0);
  EXPECT_EQ(w.look_period_ns(), 0u);
  // the same namespace within kProbeGapNs: not looked up, left to a look
  w.hint(FlowHint::Flow, 5, &t2, src.now + kMs);
  at(w, src.now + kMs);
  EXPECT_EQ(src.lookups, 2);
  EXPECT_EQ(w.look_period_ns(), kPeriod);
  w.hint(FlowHint::Flow, 5, &t2, src.now + ConntrackWatch::kProbeGapNs);
  at(w, src.now + ConntrackWatch::kProbeGapNs);
  EXPECT_EQ(src.lookups, 3);
}

// A record can be read before the flow's first packet is tracked: no entry
// yet is looked up again a moment later, then left to a look.
TEST_F(ConntrackWatchTest, AFlowWithNoEntryYetIsLookedUpAgainThenLookedFor) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  FlowTuple t;
  t.lport = 40007;
  t.rport = 7000;
  w.hint(FlowHint::Flow, 5, &t, src.now);
  at(w, src.now);
  EXPECT_EQ(src.lookups, 1);
  EXPECT_EQ(w.ms_to_next(src.now), static_cast<int>(ConntrackWatch::kRetryProbeNs / kMs));
  src.begin(7, true);  // its first packet, now tracked
  at(w, src.now + ConntrackWatch::kRetryProbeNs);
  EXPECT_EQ(src.lookups, 2);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 7u);
}

TEST_F(ConntrackWatchTest, ASubscriptionRefusedIsTriedAgainByALook) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  src.begin(1, true);
  src.refuse = "no buffer space";
  FlowTuple t;
  t.lport = 40001;
  t.rport = 7000;
  w.hint(FlowHint::Flow, 5, &t, src.now);
  at(w, src.now + kMs);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Watching);
  EXPECT_EQ(w.look_period_ns(), kPeriod) << "a look asked for";
  src.refuse.clear();
  at(w, src.now + kPeriod);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
  ASSERT_EQ(got.size(), 1u);
}

TEST_F(ConntrackWatchTest, AFlowOnLoopbackIsLookedUpButNeverLeftToALook) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  FlowTuple t;
  t.lport = 40009;  // no entry
  t.rport = 7000;
  w.hint(FlowHint::Loopback, 5, &t, src.now);
  at(w, src.now);
  at(w, src.now + ConntrackWatch::kRetryProbeNs);
  EXPECT_EQ(src.lookups, 2) << "looked up, then once more";
  w.hint(FlowHint::Loopback, 5, &t, src.now + kMs);  // within kProbeGapNs: dropped
  EXPECT_EQ(w.look_period_ns(), 0u) << "no look for loopback";
  // a local DNAT: translated on loopback
  src.begin(9, true);
  t.lport = 40009;
  w.hint(FlowHint::Loopback, 5, &t, src.now + ConntrackWatch::kProbeGapNs);
  at(w, src.now + ConntrackWatch::kProbeGapNs);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::Following);
}

TEST_F(ConntrackWatchTest, IpvsLoadedLaterMeansTheEventsAreFollowedForGood) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  src.ipvs = true;
  w.hint(FlowHint::Unnamed, 5, nullptr, src.now);
  at(w, src.now + kPeriod);
  EXPECT_EQ(w.mode(), ConntrackWatch::Mode::AlwaysFollowing);
  EXPECT_EQ(w.mode_text(), "follow: IPVS (its translations lack the NAT status bits)");
}

TEST_F(ConntrackWatchTest, PendingLookupsAreMadeAtTheLastRead) {
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  src.begin(1, true);
  FlowTuple t;
  t.lport = 40001;
  t.rport = 7000;
  w.hint(FlowHint::Flow, 5, &t, src.now);
  w.last_read(src.now, keep);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 1u);
}

// Released sockets are kept for a late join only where conntrack tracks
// flows: merely loaded (as opening ctnetlink loads it) it tracks nothing.
TEST_F(ConntrackWatchTest, ReleasedSocketsAreKeptOnlyOnceConntrackTracksFlowsHere) {
  src.tracks = false;
  src.now = 10 * kPeriod;
  ConntrackWatch w(src, kPeriod, true, src.now, keep);
  at(w, src.now + 20 * kMs);
  EXPECT_FALSE(w.may_translate());
  src.tracks = true;  // a first flow's first packet
  at(w, src.now + kMs);
  EXPECT_TRUE(w.may_translate());
}
