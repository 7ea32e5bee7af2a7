#include "who.hpp"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>

#include "cli.hpp"
#include "clock.hpp"
#include "errors.hpp"
#include "json.hpp"
#include "sink.hpp"

namespace portghost {

namespace {

constexpr uint64_t kNs = 1'000'000'000ULL;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "123" or "123.456" -> ns; nullopt if malformed
std::optional<uint64_t> seconds_to_ns(std::string_view s) {
  auto dot = s.find('.');
  std::string_view whole = s.substr(0, dot), frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(frac)) || whole.size() > 11)
    return std::nullopt;
  uint64_t secs = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), secs);
  uint64_t ns = 0, scale = kNs / 10;
  for (char c : frac.substr(0, 9)) {
    ns += static_cast<uint64_t>(c - '0') * scale;
    scale /= 10;
  }
  return secs * kNs + ns;
}

int num(std::string_view s, size_t pos, size_t len) {
  int v = 0;
  for (size_t i = pos; i < pos + len; i++) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<uint64_t> parse_time(const std::string& text, uint64_t now_ns) {
  std::string_view s = text;
  if (s.empty()) return std::nullopt;
  // relative: -5m
  if (s[0] == '-' && s.size() >= 3) {
    char unit = s.back();
    uint64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
    auto v = seconds_to_ns(s.substr(1, s.size() - 2));
    if (!mult || !v || *v / kNs > 100ULL * 365 * 86400) return std::nullopt;
    uint64_t back = *v * mult;
    return back > now_ns ? std::nullopt : std::optional<uint64_t>(now_ns - back);
  }
  // unix seconds
  if (s.find(':') == std::string_view::npos && s.find('-') == std::string_view::npos) return seconds_to_ns(s);
  // local clock time today: HH:MM[:SS[.frac]]
  if (s.size() >= 4 && s.size() <= 18 && (s[1] == ':' || s[2] == ':') && s.find('-') == std::string_view::npos) {
    size_t c1 = s.find(':');
    int hh = num(s, 0, c1), mm = num(s, c1 + 1, 2), ss = 0;
    uint64_t frac = 0;
    size_t rest = c1 + 3;
    if (rest < s.size()) {
      if (s[rest] != ':') return std::nullopt;
      auto sec = seconds_to_ns(s.substr(rest + 1));
      if (!sec) return std::nullopt;
      ss = static_cast<int>(*sec / kNs);
      frac = *sec % kNs;
    } else if (rest != s.size()) {
      return std::nullopt;
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss > 60) return std::nullopt;
    time_t now = static_cast<time_t>(now_ns / kNs);
    tm t{};
    localtime_r(&now, &t);
    t.tm_hour = hh;
    t.tm_min = mm;
    t.tm_sec = ss;
    t.tm_isdst = -1;
    time_t at = mktime(&t);
    if (at < 0) return std::nullopt;
    return static_cast<uint64_t>(at) * kNs + frac;
  }
  // RFC 3339: YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  int y = num(s, 0, 4), mo = num(s, 5, 2), d = num(s, 8, 2), h = num(s, 11, 2), mi = num(s, 14, 2),
      se = num(s, 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
    return std::nullopt;
  size_t i = 19;
  uint64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') j++;
    auto f = seconds_to_ns("0" + std::string(s.substr(i, j - i)));
    if (!f || j == i + 1) return std::nullopt;
    frac = *f;
    i = j;
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) {
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = num(s, i + 1, 2), om = num(s, i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;
  }
  tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  t.tm_sec = se;
  int64_t secs = static_cast<int64_t>(timegm(&t)) - offset;
  if (secs < 0) return std::nullopt;
  return static_cast<uint64_t>(secs) * kNs + frac;
}

namespace {

bool matches(const LogEvent& e, const WhoQuery& q) {
  if (e.lport != q.port) return false;
  if (q.proto && e.proto != *q.proto) return false;
  if (q.family && e.family != *q.family) return false;
  if (q.laddr && e.laddr != *q.laddr) return false;
  if (q.netns && e.netns != q.netns) return false;
  if (q.host && e.host != *q.host) return false;
  return true;
}

}  // namespace

WhoAnswer answer_who(const std::vector<LogEvent>& events, const WhoQuery& q) {
  WhoAnswer a;
  // Sessions: from a start to its stop, or to the last record before the
  // next start (a crash), or to the end of the log. Holdings live in one.
  struct Session {
    uint64_t start_ns = 0, end_ns = 0;
    std::map<uint64_t, Holding> open;  // by sock
  };
  std::vector<std::pair<uint64_t, uint64_t>> covered;
  std::set<std::string> hosts;
  std::optional<Session> cur;
  std::vector<Holding> done;
  auto close_session = [&](Holding::End how) {
    if (!cur) return;
    covered.emplace_back(cur->start_ns, cur->end_ns);
    for (auto& [sock, h] : cur->open) {
      h.end = how;
      h.end_ns = cur->end_ns;
      done.push_back(std::move(h));
    }
    cur.reset();
  };
  for (const auto& e : events) {
    if (!e.host.empty()) hosts.insert(e.host);
    if (q.host && !e.host.empty() && e.host != *q.host) continue;
    switch (e.type) {
      case LogEvent::Type::Start:
        close_session(Holding::End::UnknownAfterCrash);
        cur = Session{e.ts_ns, e.ts_ns, {}};
        continue;
      case LogEvent::Type::Stop:
        if (cur) {
          cur->end_ns = std::max(cur->end_ns, e.ts_ns);
          close_session(Holding::End::StillHeldAtStop);
        }
        continue;
      case LogEvent::Type::Lost:
        if (e.ts_ns >= q.since_ns && e.ts_ns <= q.until_ns + kNs) a.lost_in_window += e.lost_count;
        break;
      default:
        break;
    }
    if (!cur) cur = Session{e.ts_ns, e.ts_ns, {}};  // records without a start: a cut log
    cur->end_ns = std::max(cur->end_ns, e.ts_ns);
    if (e.type == LogEvent::Type::Lost || e.type == LogEvent::Type::Tick || e.type == LogEvent::Type::Exhausted ||
        e.type == LogEvent::Type::Warning || !matches(e, q))
      continue;
    if (e.type == LogEvent::Type::Release) {
      auto it = cur->open.find(e.sock);
      if (it == cur->open.end()) {  // its assign is in no log we have
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
      } else {
        it->second.release = e;
        it->second.end_ns = e.ts_ns;
        done.push_back(std::move(it->second));
        cur->open.erase(it);
      }
      continue;
    }
    Holding h;
    h.first = e;
    h.from_existing = e.type == LogEvent::Type::Existing;
    cur->open[e.sock] = std::move(h);  // a second assign of a sock replaces the first
  }
  close_session(Holding::End::OpenAtEndOfLog);
  a.hosts_mixed = hosts.size() > 1;

  for (auto& h : done) {
    uint64_t from = h.first.ts_ns;
    if (from <= q.until_ns && (h.end_ns >= q.since_ns || h.from_existing)) a.holdings.push_back(std::move(h));
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
      o.str("type", "holding").num("port", q.port).str("proto", f.proto).str("family", f.family);
      o.str("laddr", f.laddr).opt_str("raddr", f.raddr);
      if (f.rport) o.num("rport", *f.rport); else o.null("rport");
      if (h.from_existing) o.null("assigned_ns"); else o.num("assigned_ns", f.ts_ns);
      o.num("seen_ns", f.ts_ns).str("end", end_text(h)).num("end_ns", h.end_ns);
      if (h.release && !h.from_existing) o.num("duration_ns", h.end_ns - f.ts_ns); else o.null("duration_ns");
      auto text = [&](const char* k, const std::string& v) {
        if (v.empty()) o.null(k); else o.str(k, v);
      };
      text("how", f.how);
      o.boolean("from_existing", h.from_existing);
      if (f.pid) o.num("pid", *f.pid); else o.null("pid");
      text("comm", f.comm);
      text("thread", f.thread);
      text("exe", f.exe);
      text("cmdline", f.cmdline);
      if (f.uid) o.num("uid", *f.uid); else o.null("uid");
      text("container", f.container);
      if (f.netns) o.num("netns", *f.netns); else o.null("netns");
      text("host", f.host);
      o.num("sock", f.sock);
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
  if (a.holdings.empty()) out << "No socket held local port " << q.port << " in that window, as far as the logs show.\n";
  for (const auto& h : a.holdings) {
    const LogEvent& f = h.first;
    out << printable(f.proto) << " " << printable(endpoint(f.family, f.laddr, f.lport));
    if (f.raddr) out << " -> " << printable(endpoint(f.family, *f.raddr, f.rport));
    if (a.hosts_mixed) out << "  on " << printable(f.host);
    out << "\n  assigned  ";
    if (h.from_existing)
      out << "before " << when(f.ts_ns) << " (held when portghost started: the true start is unknown)";
    else
      out << when(f.ts_ns) << (f.how.empty() ? "" : " by " + printable(f.how));
    out << "\n  " << (h.end == Holding::End::Released ? "released  " : "until     ") << when(h.end_ns);
    if (h.end != Holding::End::Released) out << " (" << end_text(h) << ")";
    else if (!h.from_existing) out << " after " << format_duration(h.end_ns - f.ts_ns);
    if (h.release && h.release->timewait) out << ", then TIME_WAIT";
    out << "\n  process   ";
    if (f.pid) out << "pid " << *f.pid; else out << "pid unknown";
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

int run_who(const WhoOptions& o, std::ostream& out, std::ostream& err) {
  uint64_t now = BootClock::now_unix_ns();
  WhoQuery q;
  q.port = o.port;
  q.proto = o.proto;
  q.family = o.family;
  q.laddr = o.laddr;
  q.host = o.host;
  q.netns = o.netns;
  q.json = o.json;
  auto parse = [&](const std::string& name, const std::string& text) -> std::optional<uint64_t> {
    auto t = parse_time(text, now);
    if (!t) err << "portghost: " << name << ": cannot read the time '" << printable(text)
                << "' (RFC 3339, HH:MM:SS, unix seconds or -5m) (see 'portghost who --help')\n";
    return t;
  };
  if (!o.at.empty()) {
    auto t = parse("--at", o.at);
    if (!t) return kExitUsage;
    q.since_ns = q.until_ns = *t;
  } else {
    if (!o.since.empty()) {
      auto t = parse("--since", o.since);
      if (!t) return kExitUsage;
      q.since_ns = *t;
    }
    q.until_ns = now;
    if (!o.until.empty()) {
      auto t = parse("--until", o.until);
      if (!t) return kExitUsage;
      q.until_ns = *t;
    }
    if (q.since_ns > q.until_ns) {
      err << "portghost: --since is after --until (see 'portghost who --help')\n";
      return kExitUsage;
    }
  }
  std::vector<LogEvent> events;
  auto paths = expand_log_paths(o.logs);
  if (paths.empty()) {
    err << "portghost: no portghost log found in " << o.logs.front() << "\n";
    return kExitRuntime;
  }
  // files in the order they were written: by their first record's time
  std::vector<std::pair<uint64_t, std::vector<LogEvent>>> per_file;
  ReadStats totals;
  uint64_t kept = 0;
  for (const auto& p : paths) {
    std::vector<LogEvent> evs;
    ReadStats st = read_log(p, q.port, [&](LogEvent&& e) { evs.push_back(std::move(e)); }, err);
    totals.bad_lines += st.bad_lines;
    totals.unknown_types += st.unknown_types;
    kept += evs.size();
    uint64_t first = evs.empty() ? UINT64_MAX : evs.front().ts_ns;
    per_file.emplace_back(first, std::move(evs));
  }
  if (no_records(paths, kept, totals, err)) return kExitRuntime;
  std::stable_sort(per_file.begin(), per_file.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [first, evs] : per_file)
    for (auto& e : evs) events.push_back(std::move(e));
  print_who(answer_who(events, q), q, out);
  return kExitOk;
}

}  // namespace portghost
