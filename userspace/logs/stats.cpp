#include "logs/stats.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cstdio>

#include "common/clock.hpp"
#include "common/errors.hpp"
#include "common/json.hpp"
#include "common/options.hpp"

namespace portghost {

namespace {
std::string proc_key(const LogEvent& e) {
  std::string k = e.comm.empty() ? "?" : e.comm;
  if (!e.exe.empty()) k += " (" + e.exe + ")";
  return k;
}
// [{...},{...}]: n objects, each filled by fill(object, index)
template <class F>
std::string object_array(size_t n, F fill) {
  std::string a = "[";
  for (size_t i = 0; i < n; i++) {
    if (i) a += ',';
    JsonObject o(a);
    fill(o, i);
    o.end();
  }
  return a + "]";
}

}  // namespace

const std::vector<std::pair<uint64_t, const char*>>& LogStats::buckets() {
  static const std::vector<std::pair<uint64_t, const char*>> b = {
      {1'000'000ULL, "< 1 ms"},        {10'000'000ULL, "< 10 ms"},    {100'000'000ULL, "< 100 ms"},
      {1'000'000'000ULL, "< 1 s"},     {10'000'000'000ULL, "< 10 s"}, {60'000'000'000ULL, "< 1 min"},
      {3'600'000'000'000ULL, "< 1 h"}, {UINT64_MAX, ">= 1 h"}};
  return b;
}

void LogStats::add(const LogEvent& e) {
  if (e.type != LogEvent::Type::Tick) {
    first_ns_ = std::min(first_ns_, e.ts_ns);
    last_ns_ = std::max(last_ns_, e.ts_ns);
  }
  switch (e.type) {
    case LogEvent::Type::Start: sessions_++; break;
    case LogEvent::Type::Lost: lost_ += e.lost_count; break;
    case LogEvent::Type::Existing: existing_++; break;
    case LogEvent::Type::Warning: warnings_++; break;
    case LogEvent::Type::Exhausted:
      exhausted_++;
      exhausted_by_[proc_key(e)]++;
      break;
    case LogEvent::Type::Assign:
      assigns_++;
      procs_[proc_key(e)].assigns++;
      break;
    case LogEvent::Type::Release: {
      releases_++;
      if (!e.duration_ns) {
        unmatched_++;
        break;
      }
      uint64_t d = *e.duration_ns;
      for (size_t i = 0; i < buckets().size(); i++)
        if (d < buckets()[i].first || i + 1 == buckets().size()) {
          hist_[i]++;
          break;
        }
      // a release names only comm; the exe of the same comm's assigns is
      // not known here, so port-time is kept by comm
      procs_[e.comm.empty() ? "?" : e.comm].held_ns += d;
      break;
    }
    default: break;
  }
}

void LogStats::print(std::ostream& out, size_t top, bool json) const {
  std::vector<std::pair<std::string, Proc>> by_assign(procs_.begin(), procs_.end()), by_held = by_assign;
  std::sort(by_assign.begin(), by_assign.end(),
            [](const auto& a, const auto& b) { return a.second.assigns > b.second.assigns; });
  std::sort(by_held.begin(), by_held.end(),
            [](const auto& a, const auto& b) { return a.second.held_ns > b.second.held_ns; });
  while (!by_assign.empty() && by_assign.back().second.assigns == 0) by_assign.pop_back();
  while (!by_held.empty() && by_held.back().second.held_ns == 0) by_held.pop_back();
  if (by_assign.size() > top) by_assign.resize(top);
  if (by_held.size() > top) by_held.resize(top);
  if (json) {
    std::string s;
    JsonObject o(s);
    o.str("type", "stats").num("sessions", sessions_).num("assign", assigns_).num("release", releases_);
    o.num("existing", existing_).num("lost", lost_).num("release_without_lifetime", unmatched_);
    o.num("exhausted", exhausted_).num("warning", warnings_);
    if (first_ns_ != UINT64_MAX) o.num("from_ns", first_ns_).num("to_ns", last_ns_);
    o.raw("top_by_assign", object_array(by_assign.size(), [&](JsonObject& p, size_t i) {
            p.str("process", by_assign[i].first).num("assign", by_assign[i].second.assigns);
          }));
    o.raw("top_by_port_time", object_array(by_held.size(), [&](JsonObject& p, size_t i) {
            p.str("comm", by_held[i].first).num("port_ns", by_held[i].second.held_ns);
          }));
    o.raw("lifetimes", object_array(hist_.size(), [&](JsonObject& p, size_t i) {
            p.str("lifetime", buckets()[i].second).num("count", hist_[i]);
          }));
    o.close();
    out << s;
    return;
  }
  out << "records  " << assigns_ << " assign, " << releases_ << " release, " << existing_ << " existing in "
      << sessions_ << " session(s)";
  if (first_ns_ != UINT64_MAX) out << ", " << format_rfc3339(first_ns_) << " .. " << format_rfc3339(last_ns_);
  out << "\n";
  if (lost_) out << "LOST     " << lost_ << " records were lost: counts below are a lower bound\n";
  if (exhausted_ || warnings_) {
    out << "PORTS    " << exhausted_ << " exhaustion event(s), " << warnings_ << " occupancy warning(s)\n";
    for (const auto& [name, n] : exhausted_by_)
      out << "         " << n << " x no free port for " << printable(name) << "\n";
  }
  out << "\nTop processes by assignments\n";
  for (const auto& [name, p] : by_assign) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%12llu  ", static_cast<unsigned long long>(p.assigns));
    out << buf << printable(name) << "\n";
  }
  out << "\nTop processes by port-time held (released ports)\n";
  for (const auto& [name, p] : by_held) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%12s  ", format_duration(p.held_ns).c_str());
    out << buf << printable(name) << "\n";
  }
  out << "\nPort lifetimes (" << releases_ - unmatched_ << " releases with a known lifetime)\n";
  uint64_t most = *std::max_element(hist_.begin(), hist_.end());
  for (size_t i = 0; i < hist_.size(); i++) {
    size_t bar = most ? static_cast<size_t>(hist_[i] * 40 / most) : 0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%10s %12llu  ", buckets()[i].second, static_cast<unsigned long long>(hist_[i]));
    out << buf << std::string(bar, '#') << "\n";
  }
}

int run_stats(const StatsOptions& o, std::ostream& out, std::ostream& err) {
  auto paths = expand_log_paths(o.logs, &err);
  if (paths.empty()) {
    err << "portghost: no portghost log found in " << o.logs.front() << "\n";
    return kExitRuntime;
  }
  LogStats st;
  ReadStats totals;
  uint64_t kept = 0;
  for (const auto& p : paths) {
    ReadStats r = read_log(
        p, std::nullopt,
        [&](LogEvent&& e) {
          if (o.host && e.host != *o.host) return;
          st.add(e);
          kept++;
        },
        err);
    totals.add(r);
  }
  if (no_records(paths, kept, totals, err)) return kExitRuntime;
  st.print(out, o.top, o.json);
  return kExitOk;
}

}  // namespace portghost
