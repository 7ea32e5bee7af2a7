// Where a NAT translation is joined to the socket whose flow it is: the
// conntrack events of the tracer's namespace against the socket table (the
// sockets holding the port now, and those that let it go lately). Passes
// every record on to the next sink unchanged, and writes a nat record (and
// its nat_end) for each translated flow of a recorded socket; a translation
// no recorded socket sent is not written, only counted.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>

#include "common/flat_map.hpp"
#include "common/net.hpp"

#include "kernel/conntrack.hpp"
#include "trace/sink.hpp"
#include "trace/socket_table.hpp"

namespace portghost {

class NatJoin : public Sink {
 public:
  explicit NatJoin(Sink& next) : next_(next) {}
  // The table the records passing through are matched in (the record
  // builder's). Until NAT is seen (activate(), or the first translated
  // event), the table keeps no released sockets: a host without NAT pays
  // nothing per record for it.
  void use_table(SocketTable& table) { table_ = &table; }
  // Released sockets are kept from now on; those on loopback (translated
  // only by a local DNAT or REDIRECT, and the bulk of many hosts' churn)
  // only with loopback_too: while conntrack's events are followed.
  void activate(bool loopback_too = true) {
    if (!table_) return;
    table_->keep_released(true);
    table_->keep_loopback(loopback_too);
  }

  void start(const StartRecord& r) override { next_.start(r); }
  void port(const PortRecord& r) override {
    if (hints_wanted_ && r.type == PortRecord::Type::Assign) hint(r);
    next_.port(r);
  }
  // Called at each assignment that may begin a flow NAT translates (off
  // loopback), with what the record tells of it (the conntrack watch looks
  // it up, or looks at the table): see ConntrackWatch::hint.
  using Hint = std::function<void(FlowHint kind, uint32_t netns, const FlowTuple* flow)>;
  void on_remote_flow(Hint f) { hint_ = std::move(f); }
  // Whether the hints are wanted now (the watch is watching): while the
  // events are followed, an assignment costs no tuple and no call.
  void want_hints(bool on) { hints_wanted_ = on && hint_; }
  void lost(const LostRecord& r) override { next_.lost(r); }
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override { next_.warning(r); }
  void nat(const NatRecord& r) override { next_.nat(r); }
  void flush() override { next_.flush(); }

  // A conntrack event, held until every port record made before it was read
  // has passed (see ready()).
  void on_conntrack(const CtEvent& e);
  // Every port record made before `read_to_unix_ns` has passed: the events
  // read before then are joined now. One whose socket is not in the table
  // yet waits for it, up to kWaitNs: a datagram's translation is made inside
  // its send, and the send's port record at its end (after the event may
  // already have been read).
  void ready(uint64_t read_to_unix_ns);
  // The end of the trace, every record read: each event still waiting gets
  // its last try now (a flow still unjoined then is counted).
  void finish() {
    ready(UINT64_MAX);
    ready(UINT64_MAX);  // those tried for the first time just now, a last time
  }

  uint64_t unjoined() const { return unjoined_; }
  uint64_t ambiguous() const { return ambiguous_; }
  // tries that met more sockets on the flow's port than kMaxCandidates, and
  // chose among the first kMaxCandidates only (the live ones, the latest
  // first): a port shared by that many sockets (SO_REUSEPORT) costs each
  // flow a bounded walk, not one through every socket
  uint64_t crowded() const { return crowded_; }
  static constexpr size_t kMaxCandidates = 4096;
  size_t pending() const { return pending_.size() + retry_.size(); }
  uint64_t dropped() const { return dropped_; }  // events past kMaxPending

  static constexpr size_t kMaxPending = 1 << 18;
  static constexpr uint64_t kWaitNs = 1'000'000'000ULL;
  static constexpr uint64_t kRetryNs = 50'000'000ULL;  // the second try; the third and last at kWaitNs
  static constexpr size_t kMaxOpen = 1 << 20;          // translations awaiting their end

 private:
  // First: the event's first try; Again: the one at kRetryNs; Last: the last
  enum class Try { First, Again, Last };
  // false: no socket fits yet, or none can be told yet (tried again later)
  bool join(const CtEvent& e, Try attempt);
  void end(const CtEvent& e);

  Sink& next_;
  SocketTable* table_ = nullptr;
  Hint hint_;
  bool hints_wanted_ = false;
  void hint(const PortRecord& r);
  struct Waiting {
    CtEvent e;
    int tries = 0;
  };
  std::deque<CtEvent> pending_;    // read, not yet tried, in order
  std::deque<Waiting> retry_;      // tried and waiting for their socket (and the ends of those), in order
  FlatMap<uint32_t> pending_new_;  // ids of the new flows in either: how many
  FlatMap<uint32_t> retry_new_;    // ids of the new flows in retry_: how many
  void count(FlatMap<uint32_t>& m, uint32_t id, bool add);
  std::unordered_map<uint32_t, NatRecord> open_;  // by conntrack id: written, not yet ended
  uint64_t unjoined_ = 0, ambiguous_ = 0, dropped_ = 0, crowded_ = 0;
  uint64_t written_ = 0, ended_ = 0;
};

}  // namespace portghost
