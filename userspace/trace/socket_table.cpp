#include "trace/socket_table.hpp"

#include "common/net.hpp"

namespace portghost {

namespace {
void count_down(FlatMap<uint64_t>& m, uint64_t key) {
  uint64_t* c = m.find(key);
  if (c && --*c == 0) m.erase(key);
}
}  // namespace

void SocketTable::port_ref(uint32_t netns, Proto p, uint16_t port) {
  PortUse& u = ports_[port_key(netns, p, port)];
  if (u.refs++ > 0) return;
  uint64_t key = count_key(netns, p);
  counts_[key]++;
  u.in_range = ranges_ && ranges_->contains(netns, port);
  if (u.in_range) in_range_counts_[key]++;
}

void SocketTable::port_unref(uint32_t netns, Proto p, uint16_t port) {
  uint64_t pk = port_key(netns, p, port);
  PortUse* u = ports_.find(pk);
  if (!u || --u->refs > 0) return;
  uint64_t key = count_key(netns, p);
  count_down(counts_, key);
  if (u->in_range) count_down(in_range_counts_, key);
  ports_.erase(pk);
}

void SocketTable::link(uint64_t cookie, Holder& h) {
  PortUse* u = ports_.find(port_key(h.netns, h.proto, h.lport));
  if (!u) return;
  h.prev_same_port = 0;
  h.next_same_port = u->first;
  if (Holder* first = u->first ? held_.find(u->first) : nullptr) first->prev_same_port = cookie;
  u->first = cookie;
}

void SocketTable::unlink(uint64_t cookie, const Holder& h) {
  PortUse* u = ports_.find(port_key(h.netns, h.proto, h.lport));
  if (!u) return;
  // both neighbours by their cookies (many sockets can share one port:
  // SO_REUSEPORT, a walk per release would make closing them quadratic)
  Holder* prev = h.prev_same_port ? held_.find(h.prev_same_port) : nullptr;
  if (prev)
    prev->next_same_port = h.next_same_port;
  else if (u->first == cookie)
    u->first = h.next_same_port;
  if (Holder* next = h.next_same_port ? held_.find(h.next_same_port) : nullptr)
    next->prev_same_port = prev ? h.prev_same_port : 0;
}

namespace {
uint64_t released_key(Proto p, uint16_t port) { return uint64_t{static_cast<uint8_t>(p)} << 16 | port; }
}  // namespace

void SocketTable::remember_released(uint64_t cookie, const Holder& h, uint64_t released_boot_ns) {
  size_t i = released_next_;
  released_next_ = (released_next_ + 1) % kMaxReleased;
  if (i == released_.size()) {
    released_.emplace_back();
  } else {
    // the oldest goes: out of its port's list, where it is the last
    Released& old = released_[i];
    uint64_t key = released_key(old.h.proto, old.h.lport);
    uint64_t* first = released_by_port_.find(key);
    if (first && *first == i + 1) {
      released_by_port_.erase(key);
    } else if (first) {
      for (uint64_t at = *first; at;) {
        Released& r = released_[at - 1];
        if (r.next == i + 1) {
          r.next = 0;
          break;
        }
        at = r.next;
      }
    }
  }
  Released& r = released_[i];
  r.cookie = cookie;
  r.at_boot_ns = released_boot_ns;
  r.h = h;
  uint64_t& first = released_by_port_[released_key(h.proto, h.lport)];
  r.next = first;
  first = i + 1;
}

bool SocketTable::for_each_of_port(Proto proto, uint16_t port, uint64_t now_boot_ns,
                                   const std::function<void(uint64_t, const Holder&, uint64_t)>& f,
                                   size_t limit) const {
  size_t seen = 0;
  bool complete = true;
  counts_.for_each([&](uint64_t key, uint64_t) {  // the namespaces holding ports of proto
    if (!complete || static_cast<Proto>(key & 0xff) != proto) return;
    const PortUse* u = ports_.find(key << 16 | port);
    for (uint64_t at = u ? u->first : 0; at;) {
      const Holder* h = held_.find(at);
      if (!h) break;
      if (seen++ >= limit) {
        complete = false;
        return;
      }
      f(at, *h, 0);
      at = h->next_same_port;
    }
  });
  const uint64_t* first = released_by_port_.find(released_key(proto, port));
  for (uint64_t at = first ? *first : 0; at && complete;) {
    const Released& r = released_[at - 1];
    if (r.at_boot_ns + kKeepReleasedNs >= now_boot_ns) {
      if (seen++ >= limit) return false;
      f(r.cookie, r.h, r.at_boot_ns);
    }
    at = r.next;
  }
  return complete;
}

std::optional<uint32_t> SocketTable::netns_using(std::string_view laddr) const {
  std::optional<uint32_t> ns;
  held_.for_each([&](uint64_t, const Holder& h) {
    if (!ns && h.laddr.view() == laddr) ns = h.netns;
  });
  return ns;
}

void SocketTable::advance(uint64_t boot_ns) {
  while (!timewait_.empty() && timewait_.front().until_boot_ns <= boot_ns) {
    port_unref(timewait_.front().netns, Proto::Tcp, timewait_.front().port);
    timewait_.pop_front();
  }
}

void SocketTable::erase(uint64_t cookie) {
  if (const Holder* h = held_.find(cookie)) erase(cookie, *h);
}

void SocketTable::erase(uint64_t cookie, const Holder& h) {
  unlink(cookie, h);
  port_unref(h.netns, h.proto, h.lport);
  held_.erase(cookie);
}

// Bounded: the oldest holder cannot be found cheaply, any one goes. Its
// release will then be reported without a duration. Counted, never silent.
void SocketTable::evict_one_but(uint64_t keep) {
  uint64_t victim = 0;
  if (!held_.any_key_but(keep, victim)) return;
  erase(victim);
  evicted_++;
}

void SocketTable::insert(uint64_t cookie, const Holder& h) {
  auto [slot, fresh] = held_.try_emplace(cookie);
  if (!fresh) {
    unlink(cookie, *slot);
    port_unref(slot->netns, slot->proto, slot->lport);
  } else if (held_.size() > max_entries_) {
    evict_one_but(cookie);  // moves entries: the slot is looked up again
  }
  Holder& kept = *held_.find(cookie);
  kept = h;
  port_ref(kept.netns, kept.proto, kept.lport);
  link(cookie, kept);
}

uint64_t SocketTable::held_in_range(uint32_t netns, Proto proto) const {
  const uint64_t* c = in_range_counts_.find(count_key(netns, proto));
  return c ? *c : 0;
}

uint64_t SocketTable::held_in(uint32_t netns, Proto proto) const {
  const uint64_t* c = counts_.find(count_key(netns, proto));
  return c ? *c : 0;
}

namespace {
// The socket half of a holder; who holds it is the caller's to say.
void fill_socket(SocketTable::Holder& h, const SockEvent& e, bool existing, bool hidden) {
  h.since_boot_ns = e.ts_boot_ns;
  h.existing = existing;
  h.hidden = hidden;
  h.family = e.family;
  h.laddr = e.laddr;
  h.lport = e.lport;
  h.raddr = e.raddr;
  h.rport = e.rport;
  h.proto = e.proto;
  h.netns = e.netns;
  h.how = e.how;
}
}  // namespace

bool SocketTable::assign(const SockEvent& e, bool hidden) {
  // built in its place in the table: the hot path copies each text once
  auto [slot, fresh] = held_.try_emplace(e.cookie);
  if (!fresh) {
    if (slot->lport == e.lport) return false;
    unlink(e.cookie, *slot);
    port_unref(slot->netns, slot->proto, slot->lport);
  } else if (held_.size() > max_entries_) {
    evict_one_but(e.cookie);  // moves entries: the slot is looked up again
    slot = held_.find(e.cookie);
  }
  Holder& h = *slot;
  fill_socket(h, e, false, hidden);
  if (e.has(PG_F_KERNEL)) {
    h.pid.reset();
    h.comm.reset();
  } else {
    h.pid = e.pid;
    h.comm = e.comm;
  }
  port_ref(h.netns, h.proto, h.lport);
  link(e.cookie, h);
  return true;
}

void SocketTable::existing(const SockEvent& e, std::optional<uint32_t> pid, std::optional<std::string> comm,
                           bool hidden) {
  Holder h;
  fill_socket(h, e, true, hidden);
  h.pid = pid;
  if (comm)
    h.comm = CommText(*comm);
  else
    h.comm.reset();
  insert(e.cookie, h);
}

std::optional<SocketTable::Release> SocketTable::release(const SockEvent& e) {
  Release r;
  Holder* held = held_.find(e.cookie);
  if (!held) {
    // Held since before we could see it (lost record, table eviction): report
    // what the kernel knows, without a lifetime.
    if (e.lport == 0) return std::nullopt;
    r.laddr = e.laddr;
    r.lport = e.lport;
    r.raddr = e.raddr;
    r.rport = e.rport;
    return r;
  }
  const Holder& h = *held;  // read in place; erased at the end
  r.matched = true;
  // a flow on loopback is translated only by a local DNAT or REDIRECT:
  // those sockets (on many hosts, most short-lived ones) are kept only on
  // request, while translated flows are followed
  if (keep_released_ && (keep_loopback_ || (!loopback_addr(h.laddr.view()) && !loopback_addr(h.raddr.view()))))
    remember_released(e.cookie, h, e.ts_boot_ns);
  // the active closer's port stays taken in TIME_WAIT (releases come in
  // time order closely enough: the ones out of order expire a little late)
  if (e.has(PG_F_TIMEWAIT) && h.proto == Proto::Tcp) {
    port_ref(h.netns, h.proto, h.lport);
    uint64_t until = e.ts_boot_ns + kTimeWaitNs;
    if (!timewait_.empty() && until < timewait_.back().until_boot_ns) until = timewait_.back().until_boot_ns;
    timewait_.push_back({until, h.netns, h.lport});
  }
  bool hidden = h.hidden;
  if (!hidden) {
    if (!h.existing && e.ts_boot_ns >= h.since_boot_ns) r.duration_ns = e.ts_boot_ns - h.since_boot_ns;
    r.pid = h.pid;
    r.comm = h.comm;
    // The sock_release hook cannot read the local address: the assign knows it.
    bool has_local = e.lport != 0;
    r.lport = has_local ? e.lport : h.lport;
    if (has_local && !addr_text_unspecified(e.laddr))
      r.laddr = e.laddr;
    else
      r.laddr = h.laddr;
    // a failed connect has forgotten its peer by the time the file is released
    bool has_peer = !e.raddr.empty() && e.rport != 0;
    r.rport = has_peer ? e.rport : h.rport;
    if (has_peer)
      r.raddr = e.raddr;
    else
      r.raddr = h.raddr;
  }
  erase(e.cookie, h);  // h is gone from here on
  if (hidden) return std::nullopt;
  return r;
}

std::vector<uint64_t> SocketTable::gone(const std::unordered_set<uint64_t>& live, uint64_t before_boot_ns,
                                        const std::function<bool(const Holder&)>& covered) const {
  std::vector<uint64_t> out;
  held_.for_each([&](uint64_t cookie, const Holder& h) {
    if (h.since_boot_ns < before_boot_ns && !live.count(cookie) && covered(h)) out.push_back(cookie);
  });
  return out;
}

const SocketTable::Holder* SocketTable::find(uint64_t cookie) const { return held_.find(cookie); }

uint64_t SocketTable::visible() const {
  uint64_t n = 0;
  held_.for_each([&](uint64_t, const Holder& h) { n += !h.hidden; });
  return n;
}

}  // namespace portghost
