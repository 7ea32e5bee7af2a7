// When the kernel's conntrack is listened to. A process subscribed to
// conntrack's event groups makes the kernel build a message for the start
// and the end of every tracked flow, in the context of the flow's own
// process, before any filter can drop it: on a host where a masquerade
// rule makes conntrack track every connection (loopback included), that
// cost is paid by every connection, translated or not. So portghost
// subscribes only while translated flows exist. While none does, it
// *watches*: a look at the table every look period (a dump the kernel
// filters to translated flows), which costs the workload nothing. A look
// that finds one subscribes, then reads the table once more and hands on
// every translated flow that began since the last look; from then on the
// events carry the flows, until the table holds no translated flow for
// kQuietNs. A flow is seen by a look if its entry lives longer than the
// look period, which the kernel's shortest timeouts bound (see
// longest_look_period_ns): what a look can miss is a translated flow whose entry is
// deleted within one period (the same tuple used again, `conntrack -D`, or
// a table so full that the kernel drops entries early).
//
// Where the kernel cannot filter a dump (it hands back untranslated flows)
// or translations lack the status bits the filter keys on (IPVS), the
// events are followed all the time, as before.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel/conntrack.hpp"

namespace portghost {

// The kernel's side as the watch uses it (a fake in the unit tests).
class CtSource {
 public:
  using Each = std::function<void(const CtEvent&)>;
  virtual ~CtSource() = default;
  // Opens the event stream (filtered to translated flows where it can be):
  // empty, or why the kernel refused it.
  virtual std::string subscribe() = 0;
  virtual void unsubscribe() = 0;
  virtual int fd() const = 0;  // the stream's, -1 when not subscribed
  // Every event queued now; returns the stream's overruns since the last
  // call (each lost one event or more).
  virtual uint64_t read(const Each& f) = 0;
  // The table's translated flows now, as New events. nullopt: the table
  // could not be read. false: the kernel handed back untranslated flows
  // too (no dump filter), which were not passed on.
  virtual std::optional<bool> dump_translated(const Each& f) = 0;
  // Whether one flow's entry says it is translated (nullopt: no entry).
  virtual std::optional<bool> translated(const FlowTuple& t) = 0;
  // Whether translations always carry the NAT status bits (no IPVS).
  virtual bool status_tells_nat() const = 0;
  // Whether conntrack tracks flows in this namespace now.
  virtual bool tracking() = 0;
};

// The kernel's conntrack of the tracer's namespace.
class KernelCtSource : public CtSource {
 public:
  std::string subscribe() override;
  void unsubscribe() override { events_.reset(); }
  int fd() const override { return events_ ? events_->fd() : -1; }
  uint64_t read(const Each& f) override { return events_ ? events_->read(f) : 0; }
  std::optional<bool> dump_translated(const Each& f) override { return portghost::dump_translated(f); }
  std::optional<bool> translated(const FlowTuple& t) override;
  bool status_tells_nat() const override { return !ipvs_loaded(); }
  bool tracking() override { return count_.tracking(); }

 private:
  ConntrackCount count_;
  std::optional<ConntrackEvents> events_;
  std::unique_ptr<ConntrackQuery> query_;
};

class ConntrackWatch {
 public:
  enum class Mode { Watching, Following, AlwaysFollowing, Off };

  // The first look, now: translated flows already in the table are handed
  // on (as begun at an unknown time, found_since_boot_ns 0). Without
  // `may_look` (the table will not be readable later: --user), the events
  // are followed from now on, all the time. Throws FatalError when neither
  // the table nor the events can be read.
  ConntrackWatch(CtSource& src, uint64_t max_look_period_ns, bool may_look, uint64_t now_boot_ns,
                 const CtSource::Each& deliver);

  // Reads the events due (following) or looks (watching) when due, and
  // hands on every event of a translated flow, each once.
  void tick(uint64_t now_boot_ns, const CtSource::Each& deliver);
  // The last read before the end: events queued now, whatever the pace.
  void last_read(uint64_t now_boot_ns, const CtSource::Each& deliver);

  // The stream to wait on now (-1: none; too soon after a busy read), and
  // the longest wait before tick() has something to do.
  int fd_to_wait(uint64_t now_boot_ns) const;
  int ms_to_next(uint64_t now_boot_ns) const;

  // While watching, what a port record tells (socket of namespace netns):
  // - Flow (connected off loopback): its entry is looked up at the next tick
  //   (one request; at most one flow of a namespace per kProbeGapNs, the
  //   others left to a look within the longest period; with no entry yet,
  //   once more kRetryProbeNs later, then a look within the longest period);
  // - Unconnected (a datagram sent with no peer named): the next look as
  //   soon as looks cost at most 1/kLookShare of a CPU;
  // - Unnamed (a port taken with no peer named yet): a look within the
  //   longest period;
  // - Loopback (connected on loopback: translated only by a local DNAT or
  //   REDIRECT): looked up as Flow, never left to a look.
  // With no hint, no look: an idle host, or one whose flows are all on
  // loopback, costs nothing.
  void hint(FlowHint kind, uint32_t netns, const FlowTuple* flow, uint64_t now_boot_ns);

  Mode mode() const { return mode_; }
  bool following() const { return mode_ == Mode::Following || mode_ == Mode::AlwaysFollowing; }
  // "watch", or "follow: " and why the events are followed all the time
  std::string mode_text() const;
  // conntrack tracks flows here: a translation may be found late, by a
  // look, so released sockets must be kept for the join (a host whose
  // conntrack tracks nothing pays nothing for it)
  bool may_translate() const { return tracking_; }
  uint64_t overruns() const { return overruns_; }
  uint64_t looks() const { return looks_; }
  uint64_t subscriptions() const { return subscriptions_; }
  uint64_t probes() const { return probes_; }
  // the period of the looks asked for now (0: none asked for)
  uint64_t look_period_ns() const { return look_soon_ ? period_ns_ : look_due_ ? max_period_ns_ : 0; }

  // no translated flow begun this long, and none in the table: watch again
  // (and, while following, the table checked at most this often for flows
  // whose end an overrun of the stream lost)
  static constexpr uint64_t kQuietNs = 10'000'000'000ULL;
  // Events wake the loop at most this often: a batch read kBatchNs apart
  // costs the join's timing no more than that, where each event would be
  // a wakeup.
  static constexpr uint64_t kBatchNs = 10'000'000ULL;
  static constexpr size_t kMaxLive = 1 << 20;  // translated flows known to be alive
  // The look period once hinted: what the last look took, times
  // kLookShare (looks cost this process at most 1% of a CPU), between
  // kMinLookNs and the longest the kernel's timeouts allow (the period
  // without a hint). The shorter it is, the fewer flows a tuple used again
  // within it can hide.
  static constexpr uint64_t kLookShare = 100;
  static constexpr uint64_t kMinLookNs = 10'000'000ULL;
  static constexpr uint64_t kProbeGapNs = 100'000'000ULL;
  static constexpr uint64_t kRetryProbeNs = 50'000'000ULL;
  static constexpr size_t kMaxProbes = 64;  // flows looked up at one tick

 private:
  void look(uint64_t now, const CtSource::Each& deliver);
  void follow(uint64_t since, uint64_t now, const CtSource::Each& deliver);
  void read_events(uint64_t now, const CtSource::Each& deliver);
  // hands on the table's translated flows not known yet (begun after since)
  std::optional<bool> dump(uint64_t since, const CtSource::Each& deliver, bool end_the_missing, uint64_t now);
  void pass(const CtEvent& e, const CtSource::Each& deliver);
  bool probe(uint64_t now, const CtSource::Each& deliver);  // true: a translation found, following now
  void check(uint64_t now, bool quiet, const CtSource::Each& deliver);
  void always_follow(std::string why, uint64_t now, const CtSource::Each& deliver);
  uint64_t next_look_at() const;

  CtSource& src_;
  std::string follow_why_;  // AlwaysFollowing: why
  uint64_t period_ns_, max_period_ns_;
  Mode mode_ = Mode::Off;
  bool tracking_ = false;   // conntrack tracked flows here at a tick (and so may still)
  uint64_t last_look_ = 0;  // watching: the last look that found nothing
  uint64_t last_read_ = 0;  // following: the last read of the events
  bool busy_ = false;       // that read found events
  bool look_soon_ = false;  // watching: a datagram sent unconnected since the last look
  bool look_due_ = false;   // watching: a port with no peer named, or a flow with no entry
  struct Probe {
    FlowTuple flow;
    bool loopback = false;
  };
  std::vector<Probe> to_probe_;                    // watching: flows to look up at the next tick
  std::vector<std::pair<uint64_t, Probe>> retry_;  // flows with no entry yet: when to look them up again
  std::unordered_map<uint32_t, uint64_t> probed_;  // by namespace: its last flow looked up
  uint64_t last_translated_ = 0;                   // following: the last translated flow begun, or the last check
  std::unordered_map<uint32_t, CtEvent> live_;     // by id: handed on, not ended
  bool live_overflowed_ = false;                   // a flow handed on was not kept in live_
  uint64_t last_check_ = 0, overruns_checked_ = 0;
  uint64_t followed_since_ = 0;  // following: the flows found later began after this
  uint64_t overruns_ = 0, looks_ = 0, subscriptions_ = 0, probes_ = 0;
};

// The longest look period for this namespace's conntrack: half the shortest
// life an entry can have once its flow is over (the timeouts of TCP's
// CLOSE, UDP and SCTP's CLOSED; 10 s, 30 s, 10 s by default), at most 5 s,
// at least 100 ms. (A look walks every bucket of a table all namespaces
// share: about 20 ms with 262,144 buckets.)
uint64_t longest_look_period_ns();

}  // namespace portghost
