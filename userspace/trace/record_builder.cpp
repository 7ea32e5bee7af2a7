#include "trace/record_builder.hpp"

#include "trace/record_filter.hpp"

namespace portghost {

std::string_view tcp_state_name(uint8_t state) {
  switch (state) {
    case PG_TCP_ESTABLISHED: return "ESTABLISHED";
    case PG_TCP_SYN_SENT: return "SYN_SENT";
    case PG_TCP_SYN_RECV: return "SYN_RECV";
    case PG_TCP_FIN_WAIT1: return "FIN_WAIT1";
    case PG_TCP_FIN_WAIT2: return "FIN_WAIT2";
    case PG_TCP_TIME_WAIT: return "TIME_WAIT";
    case PG_TCP_CLOSE: return "CLOSE";
    case PG_TCP_CLOSE_WAIT: return "CLOSE_WAIT";
    case PG_TCP_LAST_ACK: return "LAST_ACK";
    case PG_TCP_LISTEN: return "LISTEN";
    case PG_TCP_CLOSING: return "CLOSING";
    case PG_TCP_NEW_SYN_RECV: return "NEW_SYN_RECV";
    default: return "?";
  }
}

// ---- RecordBuilder --------------------------------------------------------------

void RecordBuilder::on_record(const void* data, size_t size) {
  if (is_sock_record(data, size)) {
    if (decode_sock_into(data, size, scratch_))
      on_sock(scratch_);
    else
      malformed_++;
    return;
  }
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

void RecordBuilder::attribute(PortRecord& r, const SockEvent& e, std::optional<uint32_t> pid, uint64_t at_boot_ns) {
  if (e.netns) r.netns = e.netns;
  if (e.cgroup_id) {
    r.cgroup_id = e.cgroup_id;
    if (cgroups_) {
      if (const std::string* c = cgroups_->container_ref(e.cgroup_id)) r.container = *c;
    }
  }
  if (!pid) return;
  r.pid = *pid;
  if (const ProcInfo* p = procs_.lookup(*pid, r.comm ? *r.comm : std::string_view(), at_boot_ns)) {
    if (!p->unread) {
      r.exe = p->exe.str();
      r.cmdline = p->cmdline.str();
    }
    if (!r.comm) r.comm = p->comm;
    if (!r.ppid && p->ppid) r.ppid = p->ppid;
  }
}

void RecordBuilder::warn_occupancy(unsigned percent, PortRanges::Reader range_of) {
  ranges_.set_reader(std::move(range_of));
  occupancy_.emplace(percent, ranges_);
  table_.count_in_range_of(&ranges_);
}

// The task the kernel saw doing it; a kernel thread is not attributed.
void RecordBuilder::attribute_task(PortRecord& r, const SockEvent& e) {
  r.kernel = e.has(PG_F_KERNEL);
  if (r.kernel) {
    attribute(r, e, std::nullopt, e.ts_boot_ns);
    return;
  }
  r.tid = e.tid;
  r.ppid = e.ppid;
  r.uid = e.uid;
  r.comm = e.comm;
  r.thread = e.thread;
  attribute(r, e, e.pid, e.ts_boot_ns);
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
  if (e.range_hi && occupancy_) ranges_.learn(e.netns, e.range_lo, e.range_hi);
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
      if (occupancy_) {
        if (auto w = occupancy_->after_assign(e.netns, e.proto, table_, clock_.to_unix_ns(e.ts_boot_ns))) {
          sink_.warning(*w);
          written_[kWarning]++;
        }
      }
      return;
    }
    case SockEvent::Kind::Release: {
      if (!e.reconciled && !reconciled_.empty() && reconciled_.erase(e.cookie)) return;
      // unchecked with a port: only for a socket held with that port (it
      // may have been released already, and hold another one by now)
      if (e.has(PG_F_UNCHECKED) && e.lport) {
        const SocketTable::Holder* h = table_.find(e.cookie);
        if (!h || h->lport != e.lport) return;
      }
      auto m = table_.release(e);
      if (occupancy_) occupancy_->after_release(table_);
      if (!m) return;
      // the kernel could not tell whether it reported this port: only a
      // socket the table holds was (Linux < 5.12)
      if (e.has(PG_F_UNCHECKED) && !m->matched) return;
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
      r.disconnect = e.has(PG_F_DISCONNECT);
      r.late = e.has(PG_F_LATE);
      if (e.has(PG_F_CLOSER)) {
        r.closer_pid = e.pid;
        r.closer_tid = e.tid;
        r.closer_comm = e.comm;
      }
      // an unknown holder cannot be checked against owner filters
      if (!m->pid && (filters_.pid || filters_.comm || filters_.cgroup || filters_.netns)) return;
      if (!m->pid &&
          (r.lport < filters_.port_lo || r.lport > filters_.port_hi || (filters_.proto && *filters_.proto != r.proto) ||
           (filters_.family && *filters_.family != r.family)))
        return;
      emit(r, kRelease);
      return;
    }
    case SockEvent::Kind::Existing: on_existing(e, {}); return;
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

size_t RecordBuilder::reconcile(const std::unordered_set<uint64_t>& live, uint64_t listed_boot_ns, uint64_t now_boot_ns,
                                const std::function<bool(const SocketTable::Holder&)>& covered) {
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

void RecordBuilder::on_existing(const SockEvent& e, const std::unordered_map<uint64_t, uint32_t>& owners, bool write) {
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
  attribute(r, e, pid, std::numeric_limits<uint64_t>::max());
  // start-up only, not the hot path: the owner's cgroup as /proc tells it now
  if (pid && cgroups_) {
    if (auto id = cgroups_->id_of_pid(*pid)) {
      r.cgroup_id = *id;
      r.container.reset();
      if (const std::string* c = cgroups_->container_ref(*id)) r.container = *c;
    }
  }
  bool hidden = !write || !matches(filters_, r);
  if (filters_.cgroup && !hidden) hidden = true;  // the cgroup of a socket's past assigner is unknown
  table_.existing(e, r.pid, r.comm ? std::optional<std::string>(*r.comm) : std::nullopt, hidden);
  if (!hidden) emit(r, kExisting);
}

}  // namespace portghost
