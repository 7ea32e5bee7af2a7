#include "logs/who.hpp"
#include "common/net.hpp"
#include "common/text.hpp"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>

#include "common/clock.hpp"
#include "common/community_id.hpp"
#include "common/errors.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "trace/nat_join.hpp"

namespace portghost {

namespace {

constexpr uint64_t kNs = 1'000'000'000ULL;

}  // namespace

namespace {

// The same address, whatever its spelling (IPv4-mapped IPv6, zeros).
bool same_addr(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto ca = canonical_addr(a), cb = canonical_addr(b);
  return ca && cb && *ca == *cb;
}

bool matches(const LogEvent& e, const WhoQuery& q) {
  if (e.lport != q.port) return false;
  if (q.proto && e.proto != *q.proto) return false;
  if (q.family && e.family != *q.family) return false;
  if (q.laddr && !same_addr(e.laddr, *q.laddr) && !(q.laddr_or_wildcard && unspecified_addr(e.laddr))) return false;
  // a release names no namespace: its socket (sock) says whose it is
  if (q.netns && e.type != LogEvent::Type::Release && e.netns != q.netns) return false;
  if (q.host && e.host != *q.host) return false;
  if (q.sock && e.sock != *q.sock) return false;
  return true;
}

// --raddr/--rport: the holding's peer is that one, or unknown (a socket that
// sends to many peers, such as an unconnected UDP socket, names none).
bool peer_may_be(const Holding& h, const WhoQuery& q) {
  auto peer_of = [&](const LogEvent& e) {
    return e.raddr ? std::optional<std::pair<std::string, std::optional<uint16_t>>>(std::make_pair(*e.raddr, e.rport))
                   : std::nullopt;
  };
  auto p = peer_of(h.first);
  if (!p && h.release) p = peer_of(*h.release);
  if (!p) return true;
  if (q.raddr && !same_addr(p->first, *q.raddr)) return false;
  if (q.rport && p->second != q.rport) return false;
  return true;
}

}  // namespace

WhoAnswer answer_who(const std::vector<LogEvent>& events, const WhoQuery& q) {
  WhoAnswer a;
  // Sessions: from a start to its stop, or to the last record before the
  // next start (a crash), or to the end of the log. Holdings live in one.
  // One current session per host: logs of many hosts interleave.
  struct Session {
    uint64_t start_ns = 0, end_ns = 0;
    std::map<uint64_t, Holding> open;  // by sock
  };
  std::vector<std::pair<uint64_t, uint64_t>> covered;
  std::set<std::string> hosts;
  std::map<std::string, Session> current;  // by host
  std::vector<Holding> done;
  auto close_session = [&](const std::string& host, Holding::End how) {
    auto it = current.find(host);
    if (it == current.end()) return;
    Session& cur = it->second;
    covered.emplace_back(cur.start_ns, cur.end_ns);
    for (auto& [sock, h] : cur.open) {
      h.end = how;
      h.end_ns = cur.end_ns;
      done.push_back(std::move(h));
    }
    current.erase(it);
  };
  // a record without a host (a tick read before any record of its file
  // named one, a log from before host was written) is the last host's
  std::string last_host;
  for (const auto& e : events) {
    if (!e.host.empty()) {
      hosts.insert(e.host);
      last_host = e.host;
    }
    const std::string& host = e.host.empty() ? last_host : e.host;
    if (q.host && !host.empty() && host != *q.host) continue;
    switch (e.type) {
      case LogEvent::Type::Start:
        close_session(host, Holding::End::UnknownAfterCrash);
        current[host] = Session{e.ts_ns, e.ts_ns, {}};
        continue;
      case LogEvent::Type::Stop:
        if (auto it = current.find(host); it != current.end()) {
          it->second.end_ns = std::max(it->second.end_ns, e.ts_ns);
          close_session(host, Holding::End::StillHeldAtStop);
        }
        continue;
      case LogEvent::Type::Lost:
        if (e.ts_ns >= q.since_ns && e.ts_ns <= q.until_ns + kNs) a.lost_in_window += e.lost_count;
        break;
      default: break;
    }
    auto [it, fresh] = current.try_emplace(host, Session{e.ts_ns, e.ts_ns, {}});  // no start: a cut log
    Session& cur = it->second;
    cur.end_ns = std::max(cur.end_ns, e.ts_ns);
    // the release of a holding: its socket says so, whatever the address it
    // names now (a socket bound to the wildcard that connected since)
    if (e.type == LogEvent::Type::Release) {
      auto h_it = cur.open.find(e.sock);
      if (h_it != cur.open.end() && h_it->second.first.lport == e.lport) {
        h_it->second.release = e;
        h_it->second.end_ns = e.ts_ns;
        done.push_back(std::move(h_it->second));
        cur.open.erase(h_it);
        continue;
      }
    }
    if (e.type == LogEvent::Type::Lost || e.type == LogEvent::Type::Tick || e.type == LogEvent::Type::Exhausted ||
        e.type == LogEvent::Type::Warning || e.type == LogEvent::Type::Nat || e.type == LogEvent::Type::NatEnd ||
        !matches(e, q))
      continue;
    if (e.type == LogEvent::Type::Release) {
      // its assign is in no log we have
      Holding h;
      h.first = e;
      h.from_existing = true;
      h.release = e;
      h.end_ns = e.ts_ns;
      if (e.duration_ns && *e.duration_ns <= e.ts_ns) {
        h.first.ts_ns = e.ts_ns - *e.duration_ns;
        h.from_existing = false;
      }
      done.push_back(std::move(h));
      continue;
    }
    Holding h;
    h.first = e;
    h.from_existing = e.type == LogEvent::Type::Existing;
    cur.open[e.sock] = std::move(h);  // a second assign of a sock replaces the first
  }
  while (!current.empty()) close_session(current.begin()->first, Holding::End::OpenAtEndOfLog);
  a.hosts_mixed = hosts.size() > 1;

  for (auto& h : done) {
    uint64_t from = h.first.ts_ns;
    bool flow_ok = !q.community_id || h.first.community_id == q.community_id ||
                   (h.release && h.release->community_id == q.community_id);
    if (from <= q.until_ns && (h.end_ns >= q.since_ns || h.from_existing) && peer_may_be(h, q) && flow_ok)
      a.holdings.push_back(std::move(h));
  }
  std::stable_sort(a.holdings.begin(), a.holdings.end(),
                   [](const Holding& x, const Holding& y) { return x.first.ts_ns < y.first.ts_ns; });

  // the window minus what the sessions covered, each gap with its reason
  std::sort(covered.begin(), covered.end());
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  uint64_t at = q.since_ns;
  for (const auto& [from, to] : covered) {
    if (to < at) continue;
    if (from > q.until_ns) break;
    if (from > at) holes.emplace_back(at, from - 1);
    at = to == UINT64_MAX ? to : to + 1;
    if (at > q.until_ns) break;
  }
  if (at <= q.until_ns && at != UINT64_MAX) holes.emplace_back(at, q.until_ns);
  for (const auto& [from, to] : holes) {
    std::string why;
    if (covered.empty())
      why = "no portghost log covers this time";
    else if (to < covered.front().first)
      why = "before the first record of these logs: portghost was not running, or that log is missing";
    else if (from > covered.back().second)
      why = "after the last record of these logs: portghost stopped or crashed, or a later log is missing";
    else
      why = "between two portghost runs: it was stopped or had crashed, and not yet restarted";
    a.gaps.push_back({from, to, why});
  }
  return a;
}

namespace {

std::string when(uint64_t ns) { return format_rfc3339(ns); }

std::string endpoint(const std::string& family, const std::string& addr, std::optional<uint16_t> port) {
  std::string a = family == "ipv6" ? "[" + addr + "]" : addr;
  return a + ":" + (port ? std::to_string(*port) : std::string("-"));
}

const char* end_text(const Holding& h) {
  switch (h.end) {
    case Holding::End::Released: return "released";
    case Holding::End::StillHeldAtStop: return "still held when portghost stopped";
    case Holding::End::OpenAtEndOfLog: return "open at end of log";
    case Holding::End::UnknownAfterCrash: return "unknown: the log ends (portghost crashed or was killed)";
  }
  return "?";
}

}  // namespace

void print_who(const WhoAnswer& a, const WhoQuery& q, std::ostream& out) {
  if (q.json) {
    for (const auto& h : a.holdings) {
      std::string s;
      JsonObject o(s);
      const LogEvent& f = h.first;
      o.str("type", "holding").num("port", f.lport).str("proto", f.proto).str("family", f.family);
      o.str("laddr", f.laddr).opt_str("raddr", f.raddr);
      if (f.rport)
        o.num("rport", *f.rport);
      else
        o.null("rport");
      if (h.from_existing)
        o.null("assigned_ns");
      else
        o.num("assigned_ns", f.ts_ns);
      o.num("seen_ns", f.ts_ns).str("end", end_text(h)).num("end_ns", h.end_ns);
      if (h.release && !h.from_existing)
        o.num("duration_ns", h.end_ns - f.ts_ns);
      else
        o.null("duration_ns");
      auto text = [&](const char* k, const std::string& v) {
        if (v.empty())
          o.null(k);
        else
          o.str(k, v);
      };
      if (f.community_id)
        o.str("community_id", *f.community_id);
      else
        o.null("community_id");
      text("how", f.how);
      o.boolean("from_existing", h.from_existing);
      if (f.pid)
        o.num("pid", *f.pid);
      else
        o.null("pid");
      text("comm", f.comm);
      text("thread", f.thread);
      text("exe", f.exe);
      text("cmdline", f.cmdline);
      if (f.uid)
        o.num("uid", *f.uid);
      else
        o.null("uid");
      text("container", f.container);
      if (f.netns)
        o.num("netns", *f.netns);
      else
        o.null("netns");
      text("host", f.host);
      o.num("sock", f.sock);
      if (h.nat) {
        std::string n;
        JsonObject no(n);
        no.str("laddr", h.nat->nat_laddr).num("lport", h.nat->nat_lport);
        no.str("raddr", h.nat->nat_raddr).num("rport", h.nat->nat_rport);
        no.num("since_ns", h.nat->ts_ns);
        if (h.nat_end_ns)
          no.num("until_ns", *h.nat_end_ns);
        else
          no.null("until_ns");
        no.end();
        o.raw("nat", n);
      } else {
        o.null("nat");
      }
      o.close();
      out << s;
    }
    for (const auto& g : a.gaps) {
      std::string s;
      JsonObject o(s);
      o.str("type", "not_covered").num("from_ns", g.from_ns).num("to_ns", g.to_ns).str("why", g.why);
      o.close();
      out << s;
    }
    if (a.lost_in_window) {
      std::string s;
      JsonObject o(s);
      o.str("type", "lost").num("count", a.lost_in_window);
      o.close();
      out << s;
    }
    return;
  }
  if (a.holdings.empty())
    out << "No socket held " << (q.what.empty() ? "local port " + std::to_string(q.port) : printable(q.what))
        << " in that window, as far as the logs show.\n";
  for (const auto& h : a.holdings) {
    const LogEvent& f = h.first;
    out << printable(f.proto) << " " << printable(endpoint(f.family, f.laddr, f.lport));
    if (f.raddr) out << " -> " << printable(endpoint(f.family, *f.raddr, f.rport));
    if (a.hosts_mixed) out << "  on " << printable(f.host);
    if (h.nat) {
      const LogEvent& n = *h.nat;
      out << "\n  seen as   " << printable(endpoint(n.family, n.nat_laddr, n.nat_lport)) << " -> "
          << printable(endpoint(n.family, n.nat_raddr, n.nat_rport)) << " through NAT, from " << when(n.ts_ns);
      if (h.nat_end_ns)
        out << " to " << when(*h.nat_end_ns);
      else
        out << " (its end is not in the logs)";
    }
    out << "\n  assigned  ";
    if (h.from_existing)
      out << "before " << when(f.ts_ns) << " (held when portghost started: the true start is unknown)";
    else
      out << when(f.ts_ns) << (f.how.empty() ? "" : " by " + printable(f.how));
    // a port given up while its socket stayed open, seen only at the
    // socket's next use: it went at or before that
    bool late = h.end == Holding::End::Released && h.release && h.release->late;
    out << "\n  " << (h.end == Holding::End::Released ? "released  " : "until     ") << (late ? "at or before " : "")
        << when(h.end_ns);
    if (h.end != Holding::End::Released)
      out << " (" << end_text(h) << ")";
    else if (!h.from_existing)
      out << " after " << (late ? "at most " : "") << format_duration(h.end_ns - f.ts_ns);
    if (h.release && h.release->timewait) out << ", then TIME_WAIT";
    out << "\n  process   ";
    if (f.pid)
      out << "pid " << *f.pid;
    else
      out << "pid unknown";
    if (!f.comm.empty()) out << " " << printable(f.comm);
    if (!f.thread.empty() && f.thread != f.comm) out << " (thread " << printable(f.thread) << ")";
    if (f.uid) out << " uid " << *f.uid;
    out << "\n";
    if (!f.exe.empty()) out << "  exe       " << printable(f.exe) << "\n";
    if (!f.cmdline.empty()) out << "  cmdline   " << printable(f.cmdline) << "\n";
    if (f.netns) out << "  netns     " << *f.netns << "\n";
    if (!f.container.empty()) out << "  container " << printable(f.container) << "\n";
  }
  for (const auto& g : a.gaps)
    out << "NOT COVERED: " << when(g.from_ns) << " .. " << when(g.to_ns) << ": " << g.why << "\n";
  if (a.lost_in_window)
    out << "INCOMPLETE: " << a.lost_in_window << " records were lost around this window: a holder may be missing\n";
}

}  // namespace portghost

namespace portghost {

std::optional<WhoQuery> who_query_of(const WhoOptions& o, std::ostream& err) {
  uint64_t now = BootClock::now_unix_ns();
  WhoQuery q;
  q.port = o.port;
  q.proto = o.proto;
  q.family = o.family;
  q.laddr = o.laddr;
  q.host = o.host;
  q.netns = o.netns;
  q.raddr = o.raddr;
  q.rport = o.rport;
  q.json = o.json;
  auto parse = [&](const std::string& name, const std::string& text) -> std::optional<uint64_t> {
    auto t = parse_time(text, now);
    if (!t)
      err << "portghost: " << name << ": cannot read the time '" << printable(text)
          << "' (RFC 3339, HH:MM:SS, unix seconds or -5m) (see 'portghost who --help')\n";
    return t;
  };
  if (!o.at.empty()) {
    auto t = parse("--at", o.at);
    if (!t) return std::nullopt;
    q.since_ns = q.until_ns = *t;
  } else {
    if (!o.since.empty()) {
      auto t = parse("--since", o.since);
      if (!t) return std::nullopt;
      q.since_ns = *t;
    }
    q.until_ns = now;
    if (!o.until.empty()) {
      auto t = parse("--until", o.until);
      if (!t) return std::nullopt;
      q.until_ns = *t;
    }
    if (q.since_ns > q.until_ns) {
      err << "portghost: --since is after --until (see 'portghost who --help')\n";
      return std::nullopt;
    }
  }
  return q;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string addr;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    addr = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;  // IPv6 needs brackets
    addr = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  auto canon = canonical_addr(addr);
  uint32_t p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (!canon || port.empty() || ec != std::errc() || end != port.data() + port.size() || p > 65535) return std::nullopt;
  return Endpoint{*canon, static_cast<uint16_t>(p)};
}

std::optional<std::pair<Endpoint, Endpoint>> parse_flow(std::string_view text) {
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i <= text.size(); i++) {
    char c = i < text.size() ? text[i] : ' ';
    bool arrow = c == '-' && i + 1 < text.size() && text[i + 1] == '>';
    if (c == ' ' || c == '\t' || c == ',' || arrow) {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
      if (arrow) i++;
      continue;
    }
    cur += c;
  }
  if (parts.size() != 2) return std::nullopt;
  auto a = parse_endpoint(parts[0]), b = parse_endpoint(parts[1]);
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}

std::vector<WhoQuery> flow_queries(const WhoQuery& base, const std::pair<Endpoint, Endpoint>& flow) {
  std::vector<WhoQuery> v;
  for (int side = 0; side < 2; side++) {
    const Endpoint& local = side ? flow.second : flow.first;
    const Endpoint& remote = side ? flow.first : flow.second;
    if (side && local.addr == flow.first.addr && local.port == flow.first.port) break;  // one end twice
    WhoQuery q = base;
    q.port = local.port;
    q.laddr = local.addr;
    q.laddr_or_wildcard = true;
    q.raddr = remote.addr;
    q.rport = remote.port;
    v.push_back(q);
  }
  return v;
}

std::vector<NatHop> nat_hops(const std::vector<LogEvent>& events, const WhoQuery& q) {
  std::vector<NatHop> hops;
  std::map<std::tuple<std::string, uint64_t, uint16_t>, size_t> open;  // (host, sock, outside port) -> hop
  std::string last_host;
  for (const auto& e : events) {
    if (!e.host.empty()) last_host = e.host;
    const std::string& host = e.host.empty() ? last_host : e.host;
    if (e.type == LogEvent::Type::NatEnd) {
      auto it = open.find({host, e.sock, e.nat_lport});
      if (it != open.end()) {
        hops[it->second].end_ns = e.ts_ns;
        open.erase(it);
      }
      continue;
    }
    if (e.type != LogEvent::Type::Nat || e.nat_lport != q.port) continue;
    if (q.proto && e.proto != *q.proto) continue;
    if (q.family && e.family != *q.family) continue;
    if (q.host && host != *q.host) continue;
    if (q.laddr && !same_addr(e.nat_laddr, *q.laddr)) continue;
    if (q.raddr && !same_addr(e.nat_raddr, *q.raddr)) continue;
    if (q.rport && e.nat_rport != *q.rport) continue;
    NatHop h;
    h.nat = e;
    h.nat.host = host;
    h.inside = q;
    h.inside.port = e.lport;
    h.inside.laddr = e.laddr;
    h.inside.laddr_or_wildcard = true;  // the socket may be bound to the wildcard
    h.inside.raddr = e.raddr;
    h.inside.rport = e.rport;
    h.inside.netns = e.netns;
    h.inside.sock = e.sock;
    h.inside.community_id.reset();
    if (!host.empty()) h.inside.host = host;
    // the socket that made the translation, even if it let its port go
    // since (a datagram's translation outlives its socket): any time up to
    // the translation (a send's port record may come a moment after it),
    // the one socket named by its cookie
    h.inside.since_ns = 0;
    h.inside.until_ns = e.ts_ns + NatJoin::kWaitNs;
    open[{host, e.sock, e.nat_lport}] = hops.size();
    hops.push_back(std::move(h));
  }
  // in the window: begun by its end, not ended before its start
  std::vector<NatHop> in_window;
  for (auto& h : hops)
    if (h.nat.ts_ns <= q.until_ns && (!h.end_ns || *h.end_ns >= q.since_ns)) in_window.push_back(std::move(h));
  return in_window;
}

WhoAnswer answer_through_nat(const std::vector<LogEvent>& events, const NatHop& hop) {
  WhoAnswer a = answer_who(events, hop.inside);
  for (auto& h : a.holdings) {
    h.nat = hop.nat;
    h.nat_end_ns = hop.end_ns;
  }
  return a;
}

WhoAnswer merge_answers(std::vector<WhoAnswer> parts) {
  if (parts.empty()) return {};
  WhoAnswer a = std::move(parts.front());
  for (size_t i = 1; i < parts.size(); i++) {
    for (auto& h : parts[i].holdings) {
      // one holding found twice (asked directly, and through its NAT
      // translation): once, with what the translation adds
      auto same = std::find_if(a.holdings.begin(), a.holdings.end(), [&](const Holding& x) {
        return x.first.sock == h.first.sock && x.first.ts_ns == h.first.ts_ns && x.first.host == h.first.host;
      });
      if (same == a.holdings.end())
        a.holdings.push_back(std::move(h));
      else if (!same->nat && h.nat)
        *same = std::move(h);
    }
    a.hosts_mixed = a.hosts_mixed || parts[i].hosts_mixed;
  }
  std::stable_sort(a.holdings.begin(), a.holdings.end(),
                   [](const Holding& x, const Holding& y) { return x.first.ts_ns < y.first.ts_ns; });
  return a;
}

std::optional<std::vector<WhoQuery>> who_questions(
    const WhoOptions& o, WhoQuery& q, const std::function<std::set<uint16_t>(const std::string&)>& ports_of,
    std::ostream& err) {
  if (o.flow) {
    auto f = parse_flow(*o.flow);
    if (!f) {
      err << "portghost: --flow: expected 'SRC:SPORT DST:DPORT' (IPv6 in brackets: [2001:db8::1]:443), got '"
          << printable(*o.flow) << "' (see 'portghost who --help')\n";
      return std::nullopt;
    }
    q.what = "either end of " + *o.flow;
    return flow_queries(q, *f);
  }
  if (o.community_id) {
    q.community_id = o.community_id;
    q.what = "the flow " + *o.community_id;
    std::vector<WhoQuery> v;
    for (uint16_t port : ports_of(*o.community_id)) {
      v.push_back(q);
      v.back().port = port;
    }
    if (v.empty()) v.push_back(q);  // no holder: the answer still says what the logs cover
    return v;
  }
  return std::vector<WhoQuery>{q};
}

namespace {

// The logs' records in the order they were written (files by their first
// record's time). `want`: only that port's records; `ports` (if any): only
// those ports' records. The others are kept as ticks (how long each
// session ran), not copied. False after a one-line error: nothing read.
bool read_logs(const std::vector<std::string>& paths, std::optional<uint16_t> want, const std::set<uint16_t>& ports,
               std::vector<LogEvent>& events, std::ostream& err) {
  std::vector<std::pair<uint64_t, std::vector<LogEvent>>> per_file;
  ReadStats totals;
  uint64_t kept = 0;
  for (const auto& p : paths) {
    std::vector<LogEvent> evs;
    ReadStats st = read_log(
        p, want,
        [&](LogEvent&& e) {
          bool port_record = e.type == LogEvent::Type::Assign || e.type == LogEvent::Type::Existing ||
                             e.type == LogEvent::Type::Release;
          if (!ports.empty() && port_record && !ports.count(e.lport)) {
            if (!evs.empty() && evs.back().type == LogEvent::Type::Tick && evs.back().host == e.host) {
              evs.back().ts_ns = std::max(evs.back().ts_ns, e.ts_ns);
            } else {
              LogEvent t;
              t.type = LogEvent::Type::Tick;
              t.ts_ns = e.ts_ns;
              t.host = e.host;
              evs.push_back(std::move(t));
            }
            return;
          }
          evs.push_back(std::move(e));
        },
        err);
    totals.add(st);
    kept += evs.size();
    uint64_t first = evs.empty() ? UINT64_MAX : evs.front().ts_ns;
    per_file.emplace_back(first, std::move(evs));
  }
  if (no_records(paths, kept, totals, err)) return false;
  std::stable_sort(per_file.begin(), per_file.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [first, evs] : per_file)
    for (auto& e : evs) events.push_back(std::move(e));
  return true;
}

}  // namespace

int run_who(const WhoOptions& o, std::ostream& out, std::ostream& err) {
  auto query = who_query_of(o, err);
  if (!query) return kExitUsage;
  WhoQuery q = *query;
  auto paths = expand_log_paths(o.logs, &err);
  if (paths.empty()) {
    err << "portghost: no portghost log found in " << o.logs.front() << "\n";
    return kExitRuntime;
  }
  // one port: the reader skips the others early; a flow or an ID: all
  std::optional<uint16_t> want;
  if (!o.flow && !o.community_id) want = q.port;
  // a --flow names its two ports: records of others only say how long the
  // session ran (kept as one tick at a time, not a copy of every record)
  std::set<uint16_t> flow_ports;
  if (o.flow)
    if (auto f = parse_flow(*o.flow)) flow_ports = {f->first.port, f->second.port};
  std::vector<LogEvent> events;
  if (!read_logs(paths, want, flow_ports, events, err)) return kExitRuntime;
  auto questions = who_questions(
      o, q,
      [&](const std::string& id) {
        std::set<uint16_t> ports;
        for (const auto& e : events)
          if (e.community_id == id) ports.insert(e.lport);
        return ports;
      },
      err);
  if (!questions) return kExitUsage;
  // the outside of a NAT: the sockets behind it hold other ports, read again
  std::vector<NatHop> hops;
  for (const auto& one : *questions)
    for (auto& h : nat_hops(events, one)) hops.push_back(std::move(h));
  if (!hops.empty() && (want || !flow_ports.empty())) {
    if (want) flow_ports.insert(*want);
    for (const auto& h : hops) flow_ports.insert(h.inside.port);
    events.clear();
    if (!read_logs(paths, std::nullopt, flow_ports, events, err)) return kExitRuntime;
  }
  std::vector<WhoAnswer> parts;
  for (const auto& one : *questions) parts.push_back(answer_who(events, one));
  for (const auto& h : hops) parts.push_back(answer_through_nat(events, h));
  print_who(merge_answers(std::move(parts)), q, out);
  return kExitOk;
}

}  // namespace portghost
