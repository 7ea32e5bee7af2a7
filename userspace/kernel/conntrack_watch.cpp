#include "kernel/conntrack_watch.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <unordered_set>

#include "common/clock.hpp"
#include "common/errors.hpp"
#include "common/procfs.hpp"

namespace portghost {

namespace {
// now - since, 0 when since is later (an event read after `now` was taken)
uint64_t elapsed(uint64_t now, uint64_t since) { return now > since ? now - since : 0; }
}  // namespace

std::string KernelCtSource::subscribe() {
  try {
    events_.emplace();
  } catch (const FatalError& e) {
    return e.what();
  }
  if (!events_->filtered())
    spdlog::info(
        "conntrack events: not filtered in the kernel here (IPVS, or no socket filter): every flow's "
        "events are read");
  return "";
}

std::optional<bool> KernelCtSource::translated(const FlowTuple& t) {
  if (!query_) query_ = std::make_unique<ConntrackQuery>();
  return query_->translated(t);
}

ConntrackWatch::ConntrackWatch(CtSource& src, uint64_t max_look_period_ns, bool may_look, uint64_t now,
                               const CtSource::Each& deliver)
    : src_(src), period_ns_(max_look_period_ns), max_period_ns_(max_look_period_ns) {
  tracking_ = src_.tracking();
  if (!may_look || !src_.status_tells_nat()) {
    follow_why_ = !may_look ? "--user (the table is not readable once privileges are dropped)"
                            : "IPVS (its translations lack the NAT status bits)";
    // no later look, or a translation may lack the status bits a look keys on
    if (std::string why = src_.subscribe(); !why.empty()) throw FatalError(why);
    subscriptions_++;
    mode_ = Mode::AlwaysFollowing;
    last_read_ = now;
    return;
  }
  mode_ = Mode::Watching;
  look(now, deliver);  // last_look_ 0: what it finds began at an unknown time
  if (mode_ != Mode::Off) return;
  // the table cannot be read (a kernel that refuses the dump's filter): the events, all the time
  if (std::string why = src_.subscribe(); !why.empty()) throw FatalError(why);
  subscriptions_++;
  follow_why_ = "the conntrack table cannot be read here";
  mode_ = Mode::AlwaysFollowing;
  last_read_ = now;
}

void ConntrackWatch::pass(const CtEvent& e, const CtSource::Each& deliver) {
  if (e.kind == CtEvent::Kind::New) {
    if (!e.src_translated() && !e.dst_translated()) return;
    if (e.id && !live_.count(e.id)) {
      if (live_.size() < kMaxLive)
        live_.emplace(e.id, e);
      else
        live_overflowed_ = true;  // its end passes unchecked (the join knows its own)
    } else if (e.id) {
      return;  // handed on already (by a look, then its event)
    }
    last_translated_ = std::max(last_translated_, e.read_boot_ns);
    deliver(e);
    return;
  }
  auto it = live_.find(e.id);
  if (it != live_.end())
    live_.erase(it);
  else if (!live_overflowed_)
    return;  // not a flow handed on
  deliver(e);
}

std::optional<bool> ConntrackWatch::dump(uint64_t since, const CtSource::Each& deliver, bool end_the_missing,
                                         uint64_t now) {
  std::unordered_set<uint32_t> seen;
  auto filtered = src_.dump_translated([&](const CtEvent& d) {
    CtEvent e = d;
    e.found_since_boot_ns = since;
    if (end_the_missing) seen.insert(e.id);
    pass(e, deliver);
  });
  if (filtered && end_the_missing) {
    // gone from the table with no end read (an overrun of the stream): ended by now
    for (auto it = live_.begin(); it != live_.end();) {
      if (seen.count(it->first)) {
        ++it;
        continue;
      }
      CtEvent e = it->second;
      e.kind = CtEvent::Kind::Destroy;
      e.read_boot_ns = now;
      e.read_unix_ns = BootClock::now_unix_ns();
      it = live_.erase(it);
      deliver(e);
    }
  }
  return filtered;
}

void ConntrackWatch::follow(uint64_t since, uint64_t now, const CtSource::Each& deliver) {
  if (std::string why = src_.subscribe(); !why.empty()) {
    spdlog::warn("NAT translations: {}: looked for again in {} ms", why, max_period_ns_ / 1'000'000);
    last_look_ = now;
    look_due_ = true;
    return;
  }
  subscriptions_++;
  looks_++;  // the dump below
  mode_ = Mode::Following;
  last_read_ = now;
  busy_ = false;
  last_translated_ = last_check_ = now;
  overruns_checked_ = overruns_;
  followed_since_ = since;
  // subscribed first, then the table: a flow begun since the look that
  // found one is in this dump, its event in the stream, or both (the same
  // id, handed on once)
  dump(since, deliver, false, now);
  spdlog::info("conntrack: translated flows here: following its events");
}

void ConntrackWatch::always_follow(std::string why, uint64_t now, const CtSource::Each& deliver) {
  follow_why_ = std::move(why);
  spdlog::info("conntrack: {}: following its events", follow_why_);
  if (mode_ != Mode::Following) follow(last_look_, now, deliver);
  if (mode_ == Mode::Following) mode_ = Mode::AlwaysFollowing;
}

void ConntrackWatch::look(uint64_t now, const CtSource::Each& deliver) {
  look_soon_ = look_due_ = false;
  if (!src_.status_tells_nat()) {  // IPVS loaded since: no look can find its translations
    always_follow("IPVS (its translations lack the NAT status bits)", now, deliver);
    return;
  }
  looks_++;
  bool found = false;
  uint64_t began = BootClock::now_boot_ns();
  auto filtered = src_.dump_translated([&](const CtEvent&) { found = true; });
  // once hinted, as often as costs this process at most 1/kLookShare of a CPU
  uint64_t took = BootClock::now_boot_ns() - began;
  period_ns_ = std::clamp(took * kLookShare, std::min(kMinLookNs, max_period_ns_), max_period_ns_);
  if (!filtered) {
    if (looks_ == 1) mode_ = Mode::Off;  // never readable: the caller says why
    last_look_ = now;
    return;
  }
  if (!*filtered) {
    // the kernel cannot filter a dump: each look would read the whole
    // table; follow the events for good instead (filtered as they are)
    always_follow("this kernel does not filter a dump of the table by status", now, deliver);
    return;
  }
  if (found)
    follow(last_look_, now, deliver);
  else
    last_look_ = now;
}

void ConntrackWatch::read_events(uint64_t now, const CtSource::Each& deliver) {
  size_t n = 0;
  overruns_ += src_.read([&](const CtEvent& e) {
    n++;
    pass(e, deliver);
  });
  busy_ = n > 0;
  last_read_ = now;
}

void ConntrackWatch::tick(uint64_t now, const CtSource::Each& deliver) {
  if (!tracking_) tracking_ = src_.tracking();  // a file read a tick until it does
  switch (mode_) {
    case Mode::Off: return;
    case Mode::Watching:
      if (probe(now, deliver)) return;
      if (now >= next_look_at()) look(now, deliver);
      return;
    case Mode::Following:
    case Mode::AlwaysFollowing:
      if (!busy_ || elapsed(now, last_read_) >= kBatchNs) read_events(now, deliver);
      break;
  }
  if (mode_ != Mode::Following) return;
  bool quiet = elapsed(now, last_translated_) >= kQuietNs;
  bool overran = overruns_ > overruns_checked_ && elapsed(now, last_check_) >= kQuietNs;
  if (quiet || overran) check(now, quiet, deliver);
}

void ConntrackWatch::check(uint64_t now, bool quiet, const CtSource::Each& deliver) {
  // does the table still hold a translated flow? (and the flows whose end
  // an overrun of the stream lost end now)
  last_check_ = now;
  overruns_checked_ = overruns_;
  if (!src_.status_tells_nat()) {  // IPVS loaded since: a dump would miss its flows
    always_follow("IPVS (its translations lack the NAT status bits)", now, deliver);
    return;
  }
  looks_++;
  auto filtered = dump(followed_since_, deliver, true, now);
  if (filtered && !*filtered) {
    always_follow("this kernel does not filter a dump of the table by status", now, deliver);
    return;
  }
  if (!quiet || !filtered || !live_.empty()) {
    if (quiet) last_translated_ = now;  // still some, or no telling: asked again later
    return;
  }
  // none: unsubscribed first, then a last look closes the gap between
  src_.unsubscribe();
  mode_ = Mode::Watching;
  last_look_ = now;
  busy_ = false;
  live_overflowed_ = false;
  spdlog::info("conntrack: no translated flow for {} s: watching its table again", kQuietNs / 1'000'000'000);
  look(now, deliver);
}

bool ConntrackWatch::probe(uint64_t now, const CtSource::Each& deliver) {
  std::vector<std::pair<Probe, bool>> due;  // (flow, tried before)
  for (const auto& p : to_probe_) due.emplace_back(p, false);
  to_probe_.clear();
  for (auto it = retry_.begin(); it != retry_.end();) {
    if (it->first > now) {
      ++it;
      continue;
    }
    due.emplace_back(it->second, true);
    it = retry_.erase(it);
  }
  for (const auto& [p, again] : due) {
    probes_++;
    auto r = src_.translated(p.flow);
    if (r && *r) {
      to_probe_.clear();
      retry_.clear();
      spdlog::info("conntrack: a flow {}is translated", p.loopback ? "on loopback " : "");
      follow(last_look_, now, deliver);
      return true;
    }
    // no entry yet (the record can be read before the first packet is
    // tracked): once more a moment later, then (off loopback) a look
    if (!r && !again && retry_.size() < kMaxProbes)
      retry_.emplace_back(now + kRetryProbeNs, p);
    else if (!r && !p.loopback)
      look_due_ = true;
  }
  return false;
}

uint64_t ConntrackWatch::next_look_at() const {
  uint64_t period = look_period_ns();
  return period ? last_look_ + period : UINT64_MAX;
}

void ConntrackWatch::hint(FlowHint kind, uint32_t netns, const FlowTuple* flow, uint64_t now) {
  if (mode_ != Mode::Watching) return;
  if (kind == FlowHint::Unconnected) look_soon_ = true;
  if (kind == FlowHint::Unnamed) look_due_ = true;
  if ((kind != FlowHint::Flow && kind != FlowHint::Loopback) || !flow) return;
  if (probed_.size() >= 4096) probed_.clear();  // bounded: namespaces come and go
  uint64_t& last = probed_[netns];
  bool loopback = kind == FlowHint::Loopback;
  if ((last && elapsed(now, last) < kProbeGapNs) || to_probe_.size() >= kMaxProbes) {
    // not looked up: off loopback, a look within the longest period finds
    // it; on loopback (translated only by a local DNAT or REDIRECT), the
    // next flow's lookup
    if (!loopback) look_due_ = true;
    return;
  }
  last = now;
  to_probe_.push_back({*flow, loopback});
}

std::string ConntrackWatch::mode_text() const {
  if (mode_ == Mode::AlwaysFollowing) return "follow: " + follow_why_;
  return "watch";
}

void ConntrackWatch::last_read(uint64_t now, const CtSource::Each& deliver) {
  if (mode_ == Mode::Watching) {  // the lookups and the look asked for, at once
    retry_.clear();
    if (!probe(now, deliver) && (look_soon_ || look_due_)) look(now, deliver);
  }
  if (mode_ == Mode::Following || mode_ == Mode::AlwaysFollowing) read_events(now, deliver);
}

int ConntrackWatch::fd_to_wait(uint64_t now) const {
  if (mode_ != Mode::Following && mode_ != Mode::AlwaysFollowing) return -1;
  if (busy_ && elapsed(now, last_read_) < kBatchNs) return -1;  // too soon after a busy read
  return src_.fd();
}

int ConntrackWatch::ms_to_next(uint64_t now) const {
  auto ms_until = [&](uint64_t at) { return at <= now ? 0 : static_cast<int>((at - now + 999'999) / 1'000'000); };
  switch (mode_) {
    case Mode::Off: return INT_MAX;
    case Mode::Watching: {
      if (!to_probe_.empty()) return 0;
      uint64_t at = next_look_at();
      for (const auto& r : retry_) at = std::min(at, r.first);
      return at == UINT64_MAX ? INT_MAX : ms_until(at);
    }
    case Mode::Following:
    case Mode::AlwaysFollowing: break;
  }
  int next = mode_ == Mode::Following ? ms_until(last_translated_ + kQuietNs) : INT_MAX;
  if (busy_) next = std::min(next, ms_until(last_read_ + kBatchNs));
  return next;
}

uint64_t longest_look_period_ns() {
  uint64_t shortest_s = UINT64_MAX;
  for (const char* name :
       {"nf_conntrack_tcp_timeout_close", "nf_conntrack_udp_timeout", "nf_conntrack_sctp_timeout_closed"}) {
    std::string line = first_line((std::string("/proc/sys/net/netfilter/") + name).c_str());
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec == std::errc{} && v > 0) shortest_s = std::min(shortest_s, v);
  }
  uint64_t half = shortest_s == UINT64_MAX ? UINT64_MAX : shortest_s * 500'000'000ULL;
  return std::clamp<uint64_t>(half, 100'000'000ULL, 5'000'000'000ULL);
}

}  // namespace portghost
