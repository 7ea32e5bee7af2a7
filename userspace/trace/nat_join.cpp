#include "trace/nat_join.hpp"

#include "common/net.hpp"

#include <algorithm>
#include <tuple>

namespace portghost {

void NatJoin::on_conntrack(const CtEvent& e) {
  if (e.kind == CtEvent::Kind::New && !e.src_translated() && !e.dst_translated()) return;
  activate();  // NAT is here: released sockets are kept for their late translations
  // the end of a flow whose translation was written, or may be yet
  if (e.kind == CtEvent::Kind::Destroy && !open_.count(e.id) && !pending_new_.find(e.id)) return;
  if (pending() >= kMaxPending) {
    dropped_++;
    return;
  }
  if (e.kind == CtEvent::Kind::New) count(pending_new_, e.id, true);
  pending_.push_back(e);
}

void NatJoin::hint(const PortRecord& r) {
  uint32_t netns = r.netns.value_or(0);
  bool named = r.raddr && r.rport;
  bool loopback = loopback_addr(r.laddr) || (named && loopback_addr(*r.raddr));
  if (!named) {
    if (!loopback) hint_(r.how == How::Sendmsg ? FlowHint::Unconnected : FlowHint::Unnamed, netns, nullptr);
    return;
  }
  if (unspecified_addr(r.laddr)) {
    if (!loopback) hint_(FlowHint::Unnamed, netns, nullptr);
    return;
  }
  FlowTuple t;
  t.proto = r.proto;
  t.laddr = r.laddr;
  t.lport = r.lport;
  t.raddr = *r.raddr;
  t.rport = *r.rport;
  hint_(loopback ? FlowHint::Loopback : FlowHint::Flow, netns, &t);
}

void NatJoin::count(FlatMap<uint32_t>& m, uint32_t id, bool add) {
  if (add) {
    m[id]++;
  } else if (uint32_t* n = m.find(id); n && --*n == 0) {
    m.erase(id);
  }
}

void NatJoin::ready(uint64_t read_to_unix_ns) {
  // first the flows already tried once and waiting (older than the rest),
  // each tried again at kRetryNs and a last time at kWaitNs; the end of a
  // waiting flow waits behind it. Then the events read since, in order.
  std::deque<Waiting> still;
  for (auto& w : retry_) {
    if (w.e.kind == CtEvent::Kind::New) {
      bool last = w.e.read_unix_ns + kWaitNs <= read_to_unix_ns;
      bool due = last || (w.tries == 1 && w.e.read_unix_ns + kRetryNs <= read_to_unix_ns);
      if (due) w.tries++;
      if (due && join(w.e, last ? Try::Last : Try::Again)) {
        count(pending_new_, w.e.id, false);
        count(retry_new_, w.e.id, false);
        continue;
      }
    } else if (!retry_new_.find(w.e.id)) {
      end(w.e);
      continue;
    }
    still.push_back(w);
  }
  retry_ = std::move(still);
  while (!pending_.empty() && pending_.front().read_unix_ns <= read_to_unix_ns) {
    CtEvent& e = pending_.front();
    if (e.kind == CtEvent::Kind::New) {
      // a consumer already behind by the retry's wait has read every
      // record the sender could make: no reason to wait for one
      if (join(e, e.read_unix_ns + kRetryNs <= read_to_unix_ns ? Try::Again : Try::First)) {
        count(pending_new_, e.id, false);
      } else {
        count(retry_new_, e.id, true);
        retry_.push_back({e, 1});
      }
    } else if (retry_new_.find(e.id)) {
      retry_.push_back({e, 0});
    } else {
      end(e);
    }
    pending_.pop_front();
  }
}

bool NatJoin::join(const CtEvent& e, Try attempt) {
  if (!table_) return true;
  std::string_view src = unmapped_ipv4(e.orig_src.addr.view()), dst = unmapped_ipv4(e.orig_dst.addr.view());
  // a candidate's rank: taken before the event was read (the port record of
  // a send comes at its end, a moment after the translation it made), alive
  // then, the peer named, the local address named (not a wildcard); then,
  // of those taken before, the latest; of those taken after, the first
  using Fit = std::tuple<bool, bool, bool, bool>;
  struct Candidate {
    Fit fit{};
    uint64_t since = 0, cookie = 0;          // since: the greater the better (inverted for those taken after)
    const SocketTable::Holder* h = nullptr;  // null: none yet
  };
  auto better = [](const Candidate& a, const Candidate& b) {
    return !b.h || std::tie(a.fit, a.since) > std::tie(b.fit, b.since);
  };
  // each socket that may have sent the flow, to take(c)
  bool cut = false;
  auto candidates = [&](auto&& take) {
    bool whole = table_->for_each_of_port(
        e.proto, e.orig_src.port, e.read_boot_ns,
        [&](uint64_t cookie, const SocketTable::Holder& h, uint64_t released) {
          if (h.hidden || h.since_boot_ns > e.read_boot_ns + kWaitNs) return;  // not recorded, or long after
          std::string_view laddr = unmapped_ipv4(h.laddr.view()), raddr = unmapped_ipv4(h.raddr.view());
          bool local_named = !laddr.empty() && !unspecified_addr(laddr);
          if (local_named && laddr != src) return;
          bool peer_named = !raddr.empty() && h.rport != 0;
          if (peer_named && (raddr != dst || h.rport != e.orig_dst.port)) return;
          // alive when the flow began (a flow found by a look: at some time
          // between that look and the one before)
          bool alive = released == 0 || released >= e.began_after_boot_ns();
          bool before = h.since_boot_ns <= e.read_boot_ns;
          uint64_t since = before ? h.since_boot_ns : UINT64_MAX - h.since_boot_ns;
          take(Candidate{{before, alive, peer_named, local_named}, since, cookie, &h});
        },
        kMaxCandidates);
    cut = !whole;
  };
  Candidate best;
  candidates([&](const Candidate& c) {
    if (better(c, best)) best = c;
  });
  if (cut) crowded_++;
  if (!best.h) {
    if (attempt == Try::Last) unjoined_++;
    return attempt == Try::Last;
  }
  // only sockets taken after the event was read: the one that sent it may
  // be among them, with its record not read yet (two CPUs' records need not
  // come in the order they were made); the next try has them all
  if (!std::get<0>(best.fit) && attempt == Try::First) return false;
  // a flow found by a look began at some time in a window: of two sockets
  // that sent to no one peer (unconnected datagrams) and held the port in
  // it, no telling which one it was (a connected socket's peer tells; of
  // two with the same peer, the later one's flow replaced the earlier's)
  if (e.found_since_boot_ns && !std::get<2>(best.fit)) {
    size_t fitting = 0;
    candidates([&](const Candidate& c) { fitting += c.fit == best.fit; });
    if (fitting > 1) {
      ambiguous_++;
      return true;
    }
  }
  // sockets of two namespaces fit equally (the same port in each, bound to
  // the wildcard): the best of the namespace that uses the flow's source
  // address, if a socket there says so; else no telling which one sent it
  bool other_namespace = false;
  candidates([&](const Candidate& c) { other_namespace |= c.fit == best.fit && c.h->netns != best.h->netns; });
  if (other_namespace) {
    auto ns = table_->netns_using(src);
    if (ns && *ns != best.h->netns) {
      Candidate in_ns;
      candidates([&](const Candidate& c) {
        if (c.fit == best.fit && c.h->netns == *ns && better(c, in_ns)) in_ns = c;
      });
      if (in_ns.h)
        best = in_ns;
      else
        ns.reset();
    }
    if (!ns) {
      ambiguous_++;
      return true;
    }
  }
  const SocketTable::Holder& s = *best.h;
  NatRecord r;
  r.type = NatRecord::Type::Nat;
  r.ts_ns = e.read_unix_ns;
  r.sock = best.cookie;
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
  return true;
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
  s.nat_crowded = crowded_;
  next_.stop(s);
}

}  // namespace portghost
