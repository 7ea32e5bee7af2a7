#include "text.hpp"
#include "tracer.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "errors.hpp"
#include "existing.hpp"
#include "procfs.hpp"
#include "probes.hpp"
#include "raw_dump.hpp"
#include "record_filter.hpp"
#include "version.hpp"

namespace portghost {

std::string_view tcp_state_name(uint8_t state) {
  static const char* names[] = {"?",         "ESTABLISHED", "SYN_SENT",   "SYN_RECV", "FIN_WAIT1",
                                "FIN_WAIT2", "TIME_WAIT",   "CLOSE",      "CLOSE_WAIT", "LAST_ACK",
                                "LISTEN",    "CLOSING",     "NEW_SYN_RECV"};
  return state < sizeof names / sizeof names[0] ? names[state] : "?";
}

// ---- RecordBuilder --------------------------------------------------------------

void RecordBuilder::on_record(const void* data, size_t size) {
  auto ev = decode(data, size);
  if (!ev) {
    malformed_++;
    return;
  }
  on_event(*ev);
}

void RecordBuilder::on_event(const Event& ev) {
  if (const auto* t = std::get_if<TaskEvent>(&ev)) {
    procs_.on_event(*t);
    return;
  }
  on_sock(std::get<SockEvent>(ev));
}

PortRecord RecordBuilder::base_record(const SockEvent& e, PortRecord::Type type) const {
  PortRecord r;
  r.type = type;
  r.ts_ns = clock_.to_unix_ns(e.ts_boot_ns);
  r.sock = e.cookie;
  r.proto = e.proto;
  r.family = e.family;
  r.laddr = e.laddr;
  r.lport = e.lport;
  if (!e.raddr.empty()) {
    r.raddr = e.raddr;
    r.rport = e.rport;
  }
  return r;
}

void RecordBuilder::attribute(PortRecord& r, const SockEvent& e, std::optional<uint32_t> pid) {
  if (e.netns) r.netns = e.netns;
  if (e.cgroup_id) {
    r.cgroup_id = e.cgroup_id;
    if (cgroups_) {
      if (const std::string* c = cgroups_->container_ref(e.cgroup_id)) r.container = *c;
    }
  }
  if (!pid) return;
  r.pid = *pid;
  if (const ProcInfo* p = procs_.lookup(*pid)) {
    r.exe = p->exe;
    r.cmdline = p->cmdline;
    if (!r.comm) r.comm = p->comm;
    if (!r.ppid && p->ppid) r.ppid = p->ppid;
  }
}

void RecordBuilder::warn_occupancy(unsigned percent,
                                   std::function<std::pair<uint16_t, uint16_t>(uint32_t)> range_of) {
  warn_percent_ = percent;
  range_of_ = std::move(range_of);
  table_.set_range_check([this](uint32_t netns, uint16_t port) {
    auto r = range(netns);
    return r.second != 0 && port >= r.first && port <= r.second;
  });
}

std::pair<uint16_t, uint16_t> RecordBuilder::range(uint32_t netns) {
  auto it = ranges_.find(netns);
  if (it == ranges_.end()) it = ranges_.emplace(netns, range_of_ ? range_of_(netns) : std::make_pair<uint16_t, uint16_t>(0, 0)).first;
  return it->second;
}

// After an assign: has this namespace's ephemeral range just filled past the
// mark? One warning per crossing; it re-arms below 90% of the mark.
void RecordBuilder::check_occupancy(const SockEvent& e) {
  if (!warn_percent_) return;
  auto r = range(e.netns);
  if (!r.second) return;
  uint64_t size = static_cast<uint64_t>(r.second - r.first) + 1;
  uint64_t held = table_.held_in_range(e.netns, e.proto);
  uint64_t key = (uint64_t{e.netns} << 8) | static_cast<uint8_t>(e.proto);
  if (!warned_.count(key) && held * 100 >= size * warn_percent_) {
    warned_.emplace(key, true);
    WarningRecord w;
    w.ts_ns = clock_.to_unix_ns(e.ts_boot_ns);
    w.netns = e.netns;
    w.proto = e.proto;
    w.held = held;
    w.range_lo = r.first;
    w.range_hi = r.second;
    w.threshold = warn_percent_;
    sink_.warning(w);
    written_[kWarning]++;
  }
}

// After a release: re-arm every warned namespace that fell below 90% of the
// mark (the release may not know its namespace; the few warned ones are
// checked instead).
void RecordBuilder::rearm_occupancy() {
  for (auto it = warned_.begin(); it != warned_.end();) {
    auto netns = static_cast<uint32_t>(it->first >> 8);
    auto proto = static_cast<Proto>(it->first & 0xff);
    auto r = range(netns);
    uint64_t size = static_cast<uint64_t>(r.second - r.first) + 1;
    if (table_.held_in_range(netns, proto) * 1000 < size * warn_percent_ * 9)
      it = warned_.erase(it);
    else
      ++it;
  }
}

// The task the kernel saw doing it; a kernel thread is not attributed.
void RecordBuilder::attribute_task(PortRecord& r, const SockEvent& e) {
  r.kernel = e.has(PG_F_KERNEL);
  if (r.kernel) {
    attribute(r, e, std::nullopt);
    return;
  }
  r.tid = e.tid;
  r.ppid = e.ppid;
  r.uid = e.uid;
  r.comm = e.comm;
  r.thread = e.thread;
  attribute(r, e, e.pid);
}

void RecordBuilder::emit(const PortRecord& r, Written type) {
  sink_.port(r);
  written_[type]++;
}

std::map<std::string, uint64_t> RecordBuilder::written() const {
  static const char* const names[kWrittenTypes] = {"assign", "release", "existing", "exhausted", "warning"};
  std::map<std::string, uint64_t> m;
  for (int i = 0; i < kWrittenTypes; i++)
    if (written_[i]) m[names[i]] = written_[i];
  return m;
}

void RecordBuilder::on_sock(const SockEvent& e) {
  // the kernel's range at the event wins, before the table counts the port:
  // a namespace may reuse a gone one's inode number, or its range changed
  if (e.range_hi && warn_percent_) ranges_[e.netns] = {e.range_lo, e.range_hi};
  table_.advance(e.ts_boot_ns);
  switch (e.kind) {
    case SockEvent::Kind::Assign: {
      // the kernel filtered assigns already: nothing is hidden here
      if (!table_.assign(e)) return;  // reported twice (existing, then assign)
      PortRecord r = base_record(e, PortRecord::Type::Assign);
      r.how = e.how;
      r.ephemeral = e.has(PG_F_EPHEMERAL);
      r.late = e.has(PG_F_LATE);
      r.mptcp = e.has(PG_F_MPTCP);
      attribute_task(r, e);
      emit(r, kAssign);
      check_occupancy(e);
      return;
    }
    case SockEvent::Kind::Release: {
      if (!e.reconciled && !reconciled_.empty() && reconciled_.erase(e.cookie)) return;
      auto m = table_.release(e);
      if (!warned_.empty()) rearm_occupancy();
      if (!m) return;
      PortRecord r = base_record(e, PortRecord::Type::Release);
      r.laddr = m->laddr;
      r.lport = m->lport;
      r.raddr.reset();
      r.rport.reset();
      if (!m->raddr.empty()) {
        r.raddr = m->raddr;
        r.rport = m->rport;
      }
      r.duration_ns = m->duration_ns;
      r.pid = m->pid;
      r.comm = m->comm;
      // not in the table (evicted, or its assign was lost): the kernel's
      // socket state still knows who took the port, and when
      if (!m->matched && e.holder) {
        r.pid = e.holder;
        if (const ProcInfo* p = procs_.lookup(e.holder)) r.comm = p->comm;
      }
      if (!m->matched && e.assigned_boot_ns && e.ts_boot_ns >= e.assigned_boot_ns)
        r.duration_ns = e.ts_boot_ns - e.assigned_boot_ns;
      r.timewait = e.has(PG_F_TIMEWAIT);
      r.mptcp = e.has(PG_F_MPTCP);
      r.reconciled = e.reconciled;
      if (e.has(PG_F_CLOSER)) {
        r.closer_pid = e.pid;
        r.closer_tid = e.tid;
        r.closer_comm = e.comm;
      }
      // an unknown holder cannot be checked against owner filters
      if (!m->pid && (filters_.pid || filters_.comm || filters_.cgroup || filters_.netns)) return;
      if (!m->pid && (r.lport < filters_.port_lo || r.lport > filters_.port_hi ||
                      (filters_.proto && *filters_.proto != r.proto) ||
                      (filters_.family && *filters_.family != r.family)))
        return;
      emit(r, kRelease);
      return;
    }
    case SockEvent::Kind::Existing:
      on_existing(e, {});
      return;
    case SockEvent::Kind::Exhausted: {
      PortRecord r = base_record(e, PortRecord::Type::Exhausted);
      r.how = e.how;
      r.held = table_.held_in(e.netns, e.proto);
      attribute_task(r, e);
      emit(r, kExhausted);
      return;
    }
  }
}

size_t RecordBuilder::reconcile(const std::unordered_set<uint64_t>& live, uint64_t listed_boot_ns,
                                uint64_t now_boot_ns, const std::function<bool(const SocketTable::Holder&)>& covered) {
  size_t n = 0;
  for (uint64_t cookie : table_.gone(live, listed_boot_ns, covered)) {
    const SocketTable::Holder* h = table_.find(cookie);
    if (!h) continue;
    SockEvent e{};
    e.kind = SockEvent::Kind::Release;
    e.reconciled = true;
    e.cookie = cookie;
    e.ts_boot_ns = now_boot_ns;
    e.proto = h->proto;
    e.family = h->family;
    e.netns = h->netns;
    e.lport = h->lport;
    e.laddr = h->laddr;
    on_sock(e);
    // its own release may still come (a socket the list could not see after
    // all): the reconciled one stands
    if (reconciled_.size() >= kMaxReconciled) reconciled_.clear();
    reconciled_.insert(cookie);
    n++;
  }
  return n;
}

void RecordBuilder::on_existing(const SockEvent& e, const std::unordered_map<uint64_t, uint32_t>& owners) {
  PortRecord r = base_record(e, PortRecord::Type::Existing);
  if (e.proto == Proto::Tcp) {
    r.state = tcp_state_name(e.state);
    if (e.state == PG_TCP_LISTEN) {
      r.raddr.reset();
      r.rport.reset();
    }
  }
  r.uid = e.uid;
  r.mptcp = e.has(PG_F_MPTCP);
  std::optional<uint32_t> pid;
  if (auto it = owners.find(e.ino); e.ino && it != owners.end()) pid = it->second;
  attribute(r, e, pid);
  // start-up only, not the hot path: the owner's cgroup as /proc tells it now
  if (pid && cgroups_) {
    if (auto id = cgroups_->id_of_pid(*pid)) {
      r.cgroup_id = *id;
      r.container.reset();
      if (const std::string* c = cgroups_->container_ref(*id)) r.container = *c;
    }
  }
  bool hidden = !matches(filters_, r);
  if (filters_.cgroup && !hidden) hidden = true;  // the cgroup of a socket's past assigner is unknown
  table_.existing(e, r.pid, r.comm ? std::optional<std::string>(*r.comm) : std::nullopt, hidden);
  if (!hidden) emit(r, kExisting);
}

// ---- the loop -----------------------------------------------------------------------

namespace {

std::map<std::string, std::string> filter_summary(const Filters& f) {
  std::map<std::string, std::string> m;
  if (f.pid) m["pid"] = std::to_string(*f.pid);
  if (f.comm) m["comm"] = *f.comm;
  if (f.port_lo != 0 || f.port_hi != 65535) m["ports"] = std::to_string(f.port_lo) + "-" + std::to_string(f.port_hi);
  if (f.proto) m["proto"] = std::string(to_string(*f.proto));
  if (f.family) m["family"] = std::string(to_string(*f.family));
  if (f.netns) m["netns"] = std::to_string(*f.netns);
  if (f.cgroup) m["cgroup"] = *f.cgroup;
  if (f.ephemeral_only) m["ephemeral_only"] = "true";
  return m;
}

// Everything from here on works without privileges: the ring buffer and
// maps stay open. What needed them is done first: the namespaces' ranges.
void become_unprivileged(const RunAs& who, RecordBuilder& builder, Probes& probes) {
  std::vector<uint32_t> netns;
  for (const auto& [ns, path] : list_netns()) netns.push_back(ns);
  builder.learn_ranges(netns);
  probes.make_read_only();
  drop_privileges(who);
  try {
    probes.counters();
  } catch (const FatalError& e) {
    throw FatalError(std::string(e.what()) + " as user " + printable(who.name) +
                     ": this kernel lets only privileged processes read BPF maps, so losses could not be "
                     "counted; run without --user");
  }
  spdlog::info("running as {} (uid {}, gid {}) with no capabilities", printable(who.name), who.uid, who.gid);
}

// Sockets recorded as holding a port that the kernel no longer has get the
// release nobody saw (a kernel socket's, or one lost with a full ring). The
// list is taken first, then the ring is emptied, so every release produced
// before the list is read before anything is judged gone.
void reconcile(Probes& probes, RecordBuilder& builder, bool can_setns) {
  uint64_t listed = BootClock::now_boot_ns();
  std::unordered_set<uint64_t> set;
  // where the kernel cannot walk its socket storage: the tcp and udp tables
  // of each namespace, which hold udp sockets with a port and tcp ones that
  // connected or listen, but not a tcp socket only bound, nor udp-lite
  // (SCTP sockets hold no socket storage: the storage walk cannot see them)
  std::function<bool(const SocketTable::Holder&)> covered = [](const SocketTable::Holder& h) {
    return h.proto != Proto::Sctp;
  };
  if (auto live = probes.live_sockets()) {
    set.insert(live->begin(), live->end());
  } else if (can_setns) {
    for (const auto& e : collect_in_all_netns([&] { return probes.run_liveness_iterators(); })) set.insert(e.cookie);
    covered = [](const SocketTable::Holder& h) {
      if (h.proto == Proto::Udp) return true;
      return h.proto == Proto::Tcp && (h.how == How::Connect || h.how == How::Fastopen || h.how == How::Listen);
    };
  } else {
    return;
  }
  for (int i = 0;; i++) {
    int n = probes.drain();
    if (n < 0 && n != -EINTR) throw FatalError(errno_text("ring buffer", n));
    if (n < Probes::kBatch) break;
    if (i == 64) return;  // a flood keeps the ring full: another time
  }
  if (size_t n = builder.reconcile(set, listed, BootClock::now_boot_ns(), covered))
    spdlog::info("reconciled {} sockets gone without a release", n);
}

void print_probe_report(const Probes& probes, Output& out) {
  utsname u{};
  uname(&u);
  std::string text = std::string("# hooks chosen on ") + u.release + " (" + probes.world() + " world)\n";
  for (const auto& p : probes.paths()) {
    std::string path = p.path;
    path.resize(std::max<size_t>(path.size(), 48), ' ');
    text += path + "  " + (p.hook.empty() ? "NOT SEEN" : p.hook) + "\n";
  }
  for (const auto& u : probes.uncaught()) text += "# not caught here: " + u + "\n";
  out.write(text);
  out.flush();
}

constexpr int kDrainMs = 100;  // a quiet system still delivers within ~100 ms
// a process is forgotten this long after its exit was read and the ring emptied
constexpr uint64_t kExitGraceNs = 1'000'000'000ULL;
// under --user the kernel side cannot be silenced: the final drain's bound
constexpr uint64_t kReadOnlyDrainNs = 2'000'000'000ULL;
constexpr uint64_t kResyncNs = 60'000'000'000ULL;  // also the period of the -v memory line

}  // namespace

int run_trace(const TraceContext& ctx, Output& out, Sink& sink, const std::atomic<bool>& stop,
              std::atomic<bool>* reopen) {
  const TraceOptions& opt = ctx.options;
  // first, so that every thread started from here on inherits it
  if (setpriority(PRIO_PROCESS, 0, opt.nice) != 0)
    spdlog::warn("cannot set nice {} ({}): records may be lost when the workload keeps every CPU busy", opt.nice,
                 std::strerror(errno));
  ProcessCache procs;
  RecordBuilder builder(sink, opt.filters, BootClock(), procs, CgroupResolver(ctx.cgroup_root));
  if (opt.warn_occupancy) builder.warn_occupancy(opt.warn_occupancy, [](uint32_t ns) { return port_range_of_netns(ns); });

  ProbeConfig cfg;
  cfg.filters = opt.filters;
  cfg.cgroup_id = ctx.cgroup_id;
  cfg.cgroup_level = ctx.cgroup_level;
  cfg.cgroup_root = ctx.cgroup_root;
  cfg.ring_buffer_bytes = opt.ring_buffer_mb << 20;
  cfg.allow_fentry = opt.fentry;
  cfg.allow_sock_tp = !opt.syscall_exits;
  ensure_tracefs();
  std::optional<RawDumpWriter> dump;
  if (!opt.raw_dump.empty()) dump.emplace(opt.raw_dump);
  Probes probes(cfg, [&](const void* d, size_t n) {
    if (dump) dump->write(d, n);
    builder.on_record(d, n);
  });

  if (opt.probe_report) {
    print_probe_report(probes, out);
    return kExitOk;
  }

  // coverage starts now: every hook is attached
  uint64_t attached_ns = BootClock::now_unix_ns();
  // First thing once attached: the iterators mark, in the kernel, every
  // socket that already holds a port, so that a send or close of such a
  // socket is never taken for a new assignment (they run even with
  // --no-existing, which only keeps the records unwritten).
  auto existing = collect_in_all_netns([&] { return probes.run_iterators(); });

  // every probe is attached: the start record goes out now
  utsname u{};
  uname(&u);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  StartRecord start;
  start.ts_ns = attached_ns;
  start.version = kVersion;
  start.kernel = u.release;
  start.hostname = host;
  start.machine_id = first_line("/etc/machine-id");
  start.boot_id = first_line("/proc/sys/kernel/random/boot_id");
  start.world = probes.world();
  start.hooks = probes.hooks();
  start.uncaught = probes.uncaught();
  for (const auto& p : probes.paths()) start.paths.emplace_back(p.path, p.hook);
  std::tie(start.port_lo, start.port_hi) = local_port_range();
  start.ring_buffer_bytes = cfg.ring_buffer_bytes;
  start.filters = filter_summary(opt.filters);
  sink.start(start);
  sink.flush();

  procs.seed();
  spdlog::info("{} sockets held ports before the start", existing.size());
  if (opt.existing) {
    auto owners = socket_owners();
    for (const auto& e : existing) builder.on_existing(e, owners);
  }
  sink.flush();
  if (ctx.run_as) become_unprivileged(*ctx.run_as, builder, probes);

  uint64_t deadline = opt.duration_s ? BootClock::now_boot_ns() + static_cast<uint64_t>(*opt.duration_s * 1e9) : 0;
  uint64_t last_resync = BootClock::now_boot_ns();
  uint64_t last_reconcile = last_resync;
  const uint64_t reconcile_ns = uint64_t{opt.reconcile_s} * 1'000'000'000ULL;
  Counters last{};
  uint64_t lost_total = 0;
  uint64_t unwritten_reported = 0;
  // Losses since the last report: the kernel's, and records the output gave
  // up on while it could not write (told once it writes again).
  auto report_lost = [&] {
    Counters c = probes.counters();
    uint64_t unwritten = out.failing() ? unwritten_reported : out.unwritten();
    if (c.lost() > last.lost() || unwritten > unwritten_reported) {
      LostRecord l;
      l.ts_ns = BootClock::now_unix_ns();
      l.count = c.lost() - last.lost() + unwritten - unwritten_reported;
      lost_total += l.count;
      l.total = lost_total;
      if (c.drop_ringbuf > last.drop_ringbuf) l.by_reason["ring_buffer_full"] = c.drop_ringbuf - last.drop_ringbuf;
      if (c.drop_storage > last.drop_storage) l.by_reason["socket_storage"] = c.drop_storage - last.drop_storage;
      if (c.drop_pending > last.drop_pending) l.by_reason["pending_connect"] = c.drop_pending - last.drop_pending;
      if (c.drop_proc > last.drop_proc) l.by_reason["proc_ring_full"] = c.drop_proc - last.drop_proc;
      if (unwritten > unwritten_reported) l.by_reason["write_failed"] = unwritten - unwritten_reported;
      unwritten_reported = unwritten;
      sink.lost(l);
    }
    last = c;
  };

  std::string reason = "signal";
  while (!stop.load()) {
    uint64_t polled_from = BootClock::now_boot_ns();
    int n = probes.poll(kDrainMs);
    if (n < 0 && n != -EINTR) throw FatalError(errno_text("ring buffer", n));
    // the ring was emptied: every port record made before polled_from is
    // read, so processes that exited before then (less a margin for records
    // reserved but not yet committed) can be forgotten
    if (n >= 0 && n < Probes::kBatch && polled_from > kExitGraceNs) procs.expire(polled_from - kExitGraceNs);
    report_lost();
    sink.flush();
    if (reopen && reopen->exchange(false)) {
      out.reopen();
      spdlog::info("output reopened");
    }
    uint64_t now = BootClock::now_boot_ns();
    if (reconcile_ns && now - last_reconcile >= reconcile_ns) {
      last_reconcile = now;
      reconcile(probes, builder, !ctx.run_as);
    }
    if (now - last_resync > kResyncNs) {
      builder.clock().resync();
      last_resync = now;
      // what grows with the workload, for a soak run to check it stays flat
      spdlog::info("in memory: {} sockets, {} processes", builder.table().size(), procs.size());
    }
    if (deadline && now >= deadline) {
      reason = "duration";
      break;
    }
  }
  // No new records from here on, then drain what the kernel produced up to
  // now (bounded, even under a flood), then the end.
  probes.stop_producing();
  uint64_t drain_from = BootClock::now_boot_ns();
  long drained = 0;
  for (int n; (n = probes.drain()) > 0;) {
    drained += n;
    // read-only (--user), the kernel side cannot be told to stop: a flood
    // may keep the ring full, so the drain is bounded in time instead
    if (probes.read_only() && BootClock::now_boot_ns() - drain_from > kReadOnlyDrainNs) break;
  }
  spdlog::info("stopping ({}): drained {} records in {} ms", reason, drained,
               (BootClock::now_boot_ns() - drain_from) / 1'000'000);
  report_lost();
  StopRecord s;
  s.ts_ns = BootClock::now_unix_ns();
  s.reason = reason;
  s.records = builder.written();
  for (const char* k : {"assign", "release", "existing", "exhausted"}) s.records.emplace(k, 0);
  s.lost = lost_total;
  s.table_evicted = builder.table().evicted();
  sink.stop(s);
  sink.flush();
  out.flush();
  if (dump) dump->flush();
  if (out.failing()) throw FatalError("the last records, the stop record among them, could not be written: " + out.failure());
  if (builder.malformed()) spdlog::warn("{} malformed kernel records ignored", builder.malformed());
  return kExitOk;
}

}  // namespace portghost
