#include "trace/nat_join.hpp"

#include <algorithm>
#include <tuple>

namespace portghost {

namespace {

// An IPv4-mapped IPv6 address as the IPv4 one (a dual-stack socket's
// packets are IPv4, and so is their conntrack entry).
std::string_view plain(std::string_view a) {
  constexpr std::string_view kMapped = "::ffff:";
  if (a.size() > kMapped.size() && a.substr(0, kMapped.size()) == kMapped && a.find('.') != std::string_view::npos)
    return a.substr(kMapped.size());
  return a;
}

bool wildcard(std::string_view a) { return a.empty() || a == "0.0.0.0" || a == "::"; }

constexpr size_t kMaxAddresses = 1 << 16;

}  // namespace

void NatJoin::forget(uint64_t sock) {
  Socket* s = sockets_.find(sock);
  if (!s) return;
  auto it = by_port_.find(port_key(s->proto, s->lport));
  if (it != by_port_.end()) {
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), sock), v.end());
    if (v.empty()) by_port_.erase(it);
  }
  sockets_.erase(sock);
}

void NatJoin::port(const PortRecord& r) {
  using T = PortRecord::Type;
  if ((r.type == T::Assign || r.type == T::Existing) && r.lport != 0) {
    forget(r.sock);  // a socket holds one port: a new one replaces the old
    auto [s, fresh] = sockets_.try_emplace(r.sock);
    (void)fresh;
    s->proto = r.proto;
    s->family = r.family;
    s->laddr = plain(r.laddr);
    s->lport = r.lport;
    s->raddr = r.raddr && r.rport ? plain(*r.raddr) : std::string_view();
    s->rport = r.rport.value_or(0);
    s->netns = r.netns;
    s->pid = r.pid;
    if (r.comm)
      s->comm = CommText(*r.comm);
    else
      s->comm.reset();
    s->assigned_ns = r.ts_ns;
    s->released_ns = 0;
    by_port_[port_key(r.proto, r.lport)].push_back(r.sock);
    if (r.netns && !wildcard(s->laddr.view())) {
      if (addr_netns_.size() >= kMaxAddresses) addr_netns_.clear();
      addr_netns_[std::string(s->laddr.view())] = *r.netns;
    }
  } else if (r.type == T::Release) {
    if (Socket* s = sockets_.find(r.sock); s && !s->released_ns) {
      s->released_ns = std::max<uint64_t>(r.ts_ns, 1);
      released_.emplace_back(s->released_ns, r.sock);
    }
  }
  next_.port(r);
}

void NatJoin::on_conntrack(const CtEvent& e) {
  if (e.kind == CtEvent::Kind::New && !e.src_translated() && !e.dst_translated()) return;
  if (e.kind == CtEvent::Kind::Destroy && !open_.count(e.id)) return;
  if (pending_.size() >= kMaxPending) {
    dropped_++;
    return;
  }
  pending_.push_back(e);
}

void NatJoin::ready(uint64_t read_to_unix_ns) {
  while (!pending_.empty() && pending_.front().read_unix_ns <= read_to_unix_ns) {
    if (pending_.front().kind == CtEvent::Kind::New)
      join(pending_.front());
    else
      end(pending_.front());
    pending_.pop_front();
  }
  // the events still pending were read after read_to: a socket released
  // long before that cannot be theirs
  while (!released_.empty() && released_.front().first + kKeepReleasedNs < read_to_unix_ns) {
    uint64_t sock = released_.front().second;
    const Socket* s = sockets_.find(sock);
    if (s && s->released_ns == released_.front().first) forget(sock);
    released_.pop_front();
  }
}

void NatJoin::join(const CtEvent& e) {
  auto it = by_port_.find(port_key(e.proto, e.orig_src.port));
  if (it == by_port_.end()) {
    unjoined_++;
    return;
  }
  std::string_view src = plain(e.orig_src.addr.view()), dst = plain(e.orig_dst.addr.view());
  auto learned = addr_netns_.find(std::string(src));
  // a candidate's rank: alive when the event was read, the peer named, the
  // local address named (not a wildcard), in the namespace that address
  // was seen in; then the latest assign
  using Rank = std::tuple<bool, bool, bool, bool, uint64_t>;
  struct Candidate {
    Rank rank{};
    uint64_t sock = 0;
    const Socket* s = nullptr;  // null: none yet
  };
  Candidate best, runner_up;
  for (uint64_t sock : it->second) {
    const Socket* s = sockets_.find(sock);
    if (!s || s->assigned_ns > e.read_unix_ns) continue;
    bool local_named = !wildcard(s->laddr.view());
    if (local_named && s->laddr.view() != src) continue;
    bool peer_named = !s->raddr.empty() && s->rport != 0;
    if (peer_named && (s->raddr.view() != dst || s->rport != e.orig_dst.port)) continue;
    bool alive = s->released_ns == 0 || s->released_ns >= e.read_unix_ns;
    bool ns_ok = learned != addr_netns_.end() && s->netns == learned->second;
    Candidate c{{alive, peer_named, local_named, ns_ok, s->assigned_ns}, sock, s};
    if (!best.s || c.rank > best.rank) {
      runner_up = best;
      best = c;
    } else if (!runner_up.s || c.rank > runner_up.rank) {
      runner_up = c;
    }
  }
  if (!best.s) {
    unjoined_++;
    return;
  }
  // two namespaces' sockets equally fit (the same port in each, bound to
  // the wildcard): no way to tell which one sent it
  auto fit = [](const Rank& r) {
    return std::make_tuple(std::get<0>(r), std::get<1>(r), std::get<2>(r), std::get<3>(r));
  };
  if (runner_up.s && fit(runner_up.rank) == fit(best.rank) && runner_up.s->netns != best.s->netns) {
    ambiguous_++;
    return;
  }
  const Socket& s = *best.s;
  NatRecord r;
  r.type = NatRecord::Type::Nat;
  r.ts_ns = e.read_unix_ns;
  r.sock = best.sock;
  r.proto = e.proto;
  r.family = e.family;
  r.laddr = e.orig_src.addr;
  r.lport = e.orig_src.port;
  r.raddr = e.orig_dst.addr;
  r.rport = e.orig_dst.port;
  r.nat_laddr = e.reply_dst.addr;
  r.nat_lport = e.reply_dst.port;
  r.nat_raddr = e.reply_src.addr;
  r.nat_rport = e.reply_src.port;
  r.ct_id = e.id;
  r.pid = s.pid;
  r.comm = s.comm;
  r.netns = s.netns;
  next_.nat(r);
  written_++;
  if (e.id && open_.size() < kMaxOpen) open_[e.id] = r;
}

void NatJoin::end(const CtEvent& e) {
  auto it = open_.find(e.id);
  if (it == open_.end()) return;
  NatRecord r = it->second;
  open_.erase(it);
  // the id is reused only after the entry is gone: the tuples say it is it
  if (r.lport != e.orig_src.port || r.nat_lport != e.reply_dst.port || !(r.laddr == e.orig_src.addr.view())) return;
  r.type = NatRecord::Type::NatEnd;
  r.duration_ns = e.read_unix_ns >= r.ts_ns ? e.read_unix_ns - r.ts_ns : 0;
  r.ts_ns = e.read_unix_ns;
  next_.nat(r);
  ended_++;
}

void NatJoin::stop(const StopRecord& r) {
  StopRecord s = r;
  s.records["nat"] = written_;
  s.records["nat_end"] = ended_;
  s.nat_unjoined = unjoined_;
  s.nat_ambiguous = ambiguous_;
  next_.stop(s);
}

}  // namespace portghost
