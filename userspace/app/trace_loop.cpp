#include "app/trace_loop.hpp"

#include <algorithm>

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.hpp"
#include "common/procfs.hpp"
#include "common/text.hpp"
#include "common/version.hpp"
#include "kernel/conntrack.hpp"
#include "kernel/conntrack_watch.hpp"
#include "kernel/existing.hpp"
#include "kernel/probes.hpp"
#include "kernel/raw_dump.hpp"
#include "trace/nat_join.hpp"
#include "trace/record_builder.hpp"

namespace portghost {

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

// The kernel's conntrack of this namespace, watched, its translations
// handed to the join (or nothing when neither its table nor its events can
// be read: `why` says why). Under --user the table cannot be read once
// privileges are gone (a dump needs CAP_NET_ADMIN): the events are then
// followed from the start, all the time.
std::optional<ConntrackWatch> watch_conntrack(KernelCtSource& src, bool may_look, NatJoin& nat, std::string& why) {
  try {
    return std::make_optional<ConntrackWatch>(src, longest_look_period_ns(), may_look, BootClock::now_boot_ns(),
                                              [&nat](const CtEvent& e) { nat.on_conntrack(e); });
  } catch (const FatalError& e) {
    why = std::string("NAT translations: ") + e.what();
    spdlog::warn("{}: translated flows are not joined", why);
    return std::nullopt;
  }
}

// Waits for the ring or the conntrack stream (at most timeout_ms, less when
// a look at the table is due sooner), reads the stream or looks at the
// table when due, then empties the ring up to a batch. `read_to_unix_ns`:
// every event read was read before it, and every port record made before
// it is read once the ring is emptied (return < kBatch).
int wait_ring_and_conntrack(Probes& probes, ConntrackWatch& ct, NatJoin& nat, uint64_t& read_to_unix_ns,
                            int timeout_ms) {
  uint64_t now = BootClock::now_boot_ns();
  pollfd fds[2] = {{probes.ring_fd(), POLLIN, 0}, {ct.fd_to_wait(now), POLLIN, 0}};
  int nfds = fds[1].fd >= 0 ? 2 : 1;
  timeout_ms = std::min(timeout_ms, ct.ms_to_next(now));
  if (::poll(fds, nfds, timeout_ms) < 0 && errno != EINTR) return -errno;
  ct.tick(BootClock::now_boot_ns(), [&](const CtEvent& e) { nat.on_conntrack(e); });
  // before the ring is read: a flow's entry is made at its first packet,
  // before its socket's release can be read, which is then kept for a join
  if (ct.may_translate()) nat.activate(ct.following());
  nat.want_hints(ct.mode() == ConntrackWatch::Mode::Watching);
  read_to_unix_ns = BootClock::now_unix_ns();
  return probes.drain();
}
// a process is forgotten this long after its exit was read and the ring emptied
constexpr uint64_t kExitGraceNs = 1'000'000'000ULL;
// under --user the kernel side cannot be silenced: the final drain's bound
constexpr uint64_t kReadOnlyDrainNs = 2'000'000'000ULL;
constexpr uint64_t kResyncNs = 60'000'000'000ULL;  // also the period of the -v memory line
constexpr uint64_t kSkipCheckNs = 1'000'000'000ULL;
constexpr uint64_t kLossCheckNs = 10'000'000ULL;
constexpr uint64_t kSkipReconcileGapNs = 10'000'000'000ULL;

}  // namespace

int run_trace(const TraceContext& ctx, Output& out, Sink& sink, const std::atomic<bool>& stop,
              std::atomic<bool>* reopen) {
  const TraceOptions& opt = ctx.options;
  // first, so that every thread started from here on inherits it
  if (setpriority(PRIO_PROCESS, 0, opt.nice) != 0)
    spdlog::warn("cannot set nice {} ({}): records may be lost when the workload keeps every CPU busy", opt.nice,
                 std::strerror(errno));
  ProcessCache procs;
  std::string nat_why;
  std::optional<KernelCtSource> ct_source;
  std::optional<NatJoin> nat;
  if (opt.nat && !opt.probe_report) {
    ct_source.emplace();
    nat.emplace(sink);
  }
  std::optional<ConntrackWatch> conntrack =
      nat ? watch_conntrack(*ct_source, !ctx.run_as, *nat, nat_why) : std::nullopt;
  if (!conntrack) nat.reset();
  Sink& records = nat ? static_cast<Sink&>(*nat) : sink;  // through the NAT join, when there is one
  RecordBuilder builder(records, opt.filters, BootClock(), procs, CgroupResolver(ctx.cgroup_root));
  if (nat) {
    nat->use_table(builder.table());
    // what the records tell the watch, and released sockets kept for late
    // joins: set at each turn of the loop, before the ring is read
    nat->on_remote_flow([&](FlowHint k, uint32_t netns, const FlowTuple* f) {
      conntrack->hint(k, netns, f, BootClock::now_boot_ns());
    });
  }
  if (opt.warn_occupancy)
    builder.warn_occupancy(opt.warn_occupancy, [](uint32_t ns) { return port_range_of_netns(ns); });

  ProbeConfig cfg;
  cfg.filters = opt.filters;
  cfg.cgroup_id = ctx.cgroup_id;
  cfg.cgroup_level = ctx.cgroup_level;
  cfg.cgroup_root = ctx.cgroup_root;
  cfg.ring_buffer_bytes = opt.ring_buffer_mb << 20;
  cfg.allow_fentry = opt.fentry;
  cfg.allow_sock_tp = !opt.syscall_exits;
  cfg.socket_slots = opt.socket_slots;
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
  if (!nat_why.empty()) start.uncaught.push_back(nat_why);
  for (const auto& p : probes.paths()) start.paths.emplace_back(p.path, p.hook);
  std::tie(start.port_lo, start.port_hi) = local_port_range();
  start.ring_buffer_bytes = cfg.ring_buffer_bytes;
  start.kernel_maps_bytes = probes.map_memory();
  start.socket_slots = probes.socket_slots();
  start.filters = filter_summary(opt.filters);
  if (conntrack) start.nat_mode = conntrack->mode_text();
  sink.start(start);
  sink.flush();

  procs.set_exec_records(std::find(start.hooks.begin(), start.hooks.end(), "tp_btf/sched_process_exec") !=
                         start.hooks.end());
  procs.seed();
  spdlog::info("{} sockets held ports before the start", existing.size());
  {
    auto owners = opt.existing ? socket_owners() : std::unordered_map<uint64_t, uint32_t>{};
    for (const auto& e : existing) builder.on_existing(e, owners, opt.existing);
  }
  sink.flush();
  if (ctx.run_as) become_unprivileged(*ctx.run_as, builder, probes);

  uint64_t deadline = opt.duration_s ? BootClock::now_boot_ns() + static_cast<uint64_t>(*opt.duration_s * 1e9) : 0;
  uint64_t last_resync = BootClock::now_boot_ns();
  uint64_t last_reconcile = last_resync;
  // runs of the tracing programs the kernel skipped (nested on a CPU): a
  // skipped move to CLOSE may have cost a release, so it brings the next
  // reconciliation forward (checked once a second, at most one in 10 s)
  uint64_t skipped = probes.skipped_releases(), skipped_at_start = probes.skipped_runs(), last_skip_check = last_resync;
  const uint64_t reconcile_ns = uint64_t{opt.reconcile_s} * 1'000'000'000ULL;
  Counters last{};
  uint64_t lost_total = 0;
  uint64_t unwritten_reported = 0;
  uint64_t ct_overruns_reported = 0, nat_dropped_reported = 0;
  // Losses since the last report: the kernel's, and records the output gave
  // up on while it could not write (told once it writes again). Asked at
  // most every kLossCheckNs while tracing (a turn of the loop can be a
  // fraction of a millisecond under load), and at the stop.
  uint64_t last_loss_check = 0;
  auto report_lost = [&](uint64_t now) {
    if (now && now - last_loss_check < kLossCheckNs) return;
    last_loss_check = now;
    Counters c = probes.counters();
    uint64_t unwritten = out.failing() ? unwritten_reported : out.unwritten();
    uint64_t nat_dropped = nat ? nat->dropped() : 0;
    uint64_t ct_overruns = conntrack ? conntrack->overruns() : 0;
    uint64_t nat_lost = ct_overruns - ct_overruns_reported + nat_dropped - nat_dropped_reported;
    if (c.lost() > last.lost() || unwritten > unwritten_reported || nat_lost) {
      LostRecord l;
      l.ts_ns = BootClock::now_unix_ns();
      l.count = c.lost() - last.lost() + unwritten - unwritten_reported + nat_lost;
      lost_total += l.count;
      l.total = lost_total;
      if (c.drop_ringbuf > last.drop_ringbuf) l.by_reason["ring_buffer_full"] = c.drop_ringbuf - last.drop_ringbuf;
      if (c.drop_storage > last.drop_storage) l.by_reason["socket_storage"] = c.drop_storage - last.drop_storage;
      if (c.drop_pending > last.drop_pending) l.by_reason["pending_connect"] = c.drop_pending - last.drop_pending;
      if (c.drop_proc > last.drop_proc) l.by_reason["proc_ring_full"] = c.drop_proc - last.drop_proc;
      if (c.unseen_connect > last.unseen_connect)
        l.by_reason["udp_connect_given_up_unseen"] = c.unseen_connect - last.unseen_connect;
      if (unwritten > unwritten_reported) l.by_reason["write_failed"] = unwritten - unwritten_reported;
      // each overrun of the conntrack socket lost one event or more
      if (ct_overruns > ct_overruns_reported) l.by_reason["conntrack_overrun"] = ct_overruns - ct_overruns_reported;
      if (nat_dropped > nat_dropped_reported) l.by_reason["nat_pending_full"] = nat_dropped - nat_dropped_reported;
      unwritten_reported = unwritten;
      ct_overruns_reported = ct_overruns;
      nat_dropped_reported = nat_dropped;
      sink.lost(l);
    }
    last = c;
  };

  std::string reason = "signal";
  while (!stop.load()) {
    uint64_t polled_from = BootClock::now_boot_ns();
    uint64_t read_to_unix = 0;
    int n =
        conntrack ? wait_ring_and_conntrack(probes, *conntrack, *nat, read_to_unix, kDrainMs) : probes.poll(kDrainMs);
    if (n < 0 && n != -EINTR) throw FatalError(errno_text("ring buffer", n));
    if (nat && n >= 0 && n < Probes::kBatch) nat->ready(read_to_unix);
    // the ring was emptied: every port record made before polled_from is
    // read, so processes that exited before then (less a margin for records
    // reserved but not yet committed) can be forgotten
    if (n >= 0 && n < Probes::kBatch && polled_from > kExitGraceNs) procs.expire(polled_from - kExitGraceNs);
    report_lost(BootClock::now_boot_ns());
    sink.flush();
    if (reopen && reopen->exchange(false)) {
      out.reopen();
      spdlog::info("output reopened");
    }
    uint64_t now = BootClock::now_boot_ns();
    bool skips = false;
    if (now - last_skip_check >= kSkipCheckNs) {
      last_skip_check = now;
      uint64_t n = probes.skipped_releases();
      skips = n > skipped && now - last_reconcile >= kSkipReconcileGapNs;
      if (skips) spdlog::info("the kernel skipped {} runs at a move to CLOSE: reconciling now", n - skipped);
      if (skips || n == skipped) skipped = n;  // a skip not answered yet waits for the gap
    }
    if (reconcile_ns && (skips || now - last_reconcile >= reconcile_ns)) {
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
  if (conntrack) {  // the translations read by now, of the sockets read by now
    conntrack->last_read(BootClock::now_boot_ns(), [&](const CtEvent& e) { nat->on_conntrack(e); });
    nat->finish();
  }
  // a last walk of what the kernel still holds: a socket whose release no
  // hook produced is released now (reason "reconciled", at the stop)
  // rather than left as held in the log's last word
  if (reconcile_ns) reconcile(probes, builder, !ctx.run_as);
  report_lost(0);
  StopRecord s;
  s.ts_ns = BootClock::now_unix_ns();
  s.reason = reason;
  s.records = builder.written();
  for (const char* k : {"assign", "release", "existing", "exhausted"}) s.records.emplace(k, 0);
  s.lost = lost_total;
  s.table_evicted = builder.table().evicted();
  s.held = builder.table().visible();
  s.skipped_runs = probes.skipped_runs() - skipped_at_start;
  s.process_evicted = procs.evicted();
  s.cgroup_evicted = builder.cgroup_evicted();
  s.socket_slots_full = last.slots_full;
  s.socket_slots_freed = probes.slots_freed();
  if (conntrack) {
    s.nat_looks = conntrack->looks();
    s.nat_subscriptions = conntrack->subscriptions();
    s.nat_probes = conntrack->probes();
  }
  records.stop(s);
  sink.flush();
  out.flush();
  if (dump) dump->flush();
  if (out.failing())
    throw FatalError("the last records, the stop record among them, could not be written: " + out.failure());
  if (builder.malformed()) spdlog::warn("{} malformed kernel records ignored", builder.malformed());
  return kExitOk;
}

}  // namespace portghost
