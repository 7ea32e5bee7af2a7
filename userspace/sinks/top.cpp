#include "sinks/top.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "common/clock.hpp"

namespace portghost {

namespace {
constexpr uint64_t kSecond = 1'000'000'000ULL;
}

void TopSink::port(const PortRecord& r) {
  switch (r.type) {
    case PortRecord::Type::Assign:
    case PortRecord::Type::Existing:
      held_[r.sock] =
          Held{r.pid.value_or(0), std::string(r.comm.value_or("?")),   r.netns.value_or(0), r.proto, r.lport,
               r.ts_ns,           r.type == PortRecord::Type::Existing};
      if (r.type == PortRecord::Type::Assign) {
        assigns_++;
        recent_.push_back(r.ts_ns);
      }
      break;
    case PortRecord::Type::Release: held_.erase(r.sock); break;
    case PortRecord::Type::Exhausted: break;
  }
}

std::string TopSink::render(uint64_t now_ns) {
  while (!recent_.empty() && recent_.front() + kSecond < now_ns) recent_.pop_front();
  char line[256];
  std::string s;
  std::snprintf(line, sizeof line, "portghost top  %s  held %zu  assigns/s %zu  lost %llu\n\n",
                format_clock_local(now_ns).c_str(), held_.size(), recent_.size(),
                static_cast<unsigned long long>(lost_));
  s += line;

  // per (netns, proto): held, ephemeral occupancy
  struct Ns {
    uint64_t held = 0, in_range = 0;
  };
  std::map<std::pair<uint32_t, int>, Ns> per_ns;
  std::map<std::pair<uint32_t, std::string>, uint64_t> per_proc;
  for (const auto& [sock, h] : held_) {
    auto key = std::make_pair(h.netns, static_cast<int>(h.proto));
    Ns& n = per_ns[key];
    n.held++;
    auto it = ranges_.find(h.netns);
    if (it == ranges_.end()) it = ranges_.emplace(h.netns, range_of_(h.netns)).first;
    if (it->second.second && h.lport >= it->second.first && h.lport <= it->second.second) n.in_range++;
    per_proc[{h.pid, h.comm}]++;
  }
  s += "NETNS        PROTO   HELD  EPHEMERAL RANGE   OCCUPANCY\n";
  for (const auto& [key, n] : per_ns) {
    auto range = ranges_[key.first];
    char occ[32] = "?";
    char rng[32] = "?";
    if (range.second) {
      unsigned size = static_cast<unsigned>(range.second - range.first + 1);
      std::snprintf(occ, sizeof occ, "%.1f%%", 100.0 * static_cast<double>(n.in_range) / size);
      std::snprintf(rng, sizeof rng, "%u-%u", range.first, range.second);
    }
    std::snprintf(line, sizeof line, "%-12u %-5s %6llu  %-15s %s\n", key.first,
                  std::string(to_string(static_cast<Proto>(key.second))).c_str(),
                  static_cast<unsigned long long>(n.held), rng, occ);
    s += line;
  }
  std::vector<std::pair<std::pair<uint32_t, std::string>, uint64_t>> procs(per_proc.begin(), per_proc.end());
  std::sort(procs.begin(), procs.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (procs.size() > rows_) procs.resize(rows_);
  s += "\nPID      COMM               HELD\n";
  for (const auto& [who, n] : procs) {
    std::snprintf(line, sizeof line, "%-8s %-16s %6llu\n", who.first ? std::to_string(who.first).c_str() : "-",
                  printable(who.second).c_str(), static_cast<unsigned long long>(n));
    s += line;
  }
  std::vector<std::pair<uint64_t, const Held*>> oldest;
  for (const auto& [sock, h] : held_) oldest.emplace_back(h.since_ns, &h);
  std::sort(oldest.begin(), oldest.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (oldest.size() > rows_) oldest.resize(rows_);
  s += "\nLONGEST HOLDERS\nPID      COMM             PROTO  PORT  HELD FOR\n";
  for (const auto& [since, h] : oldest) {
    std::string dur = h->existing ? "> " + format_duration(now_ns - since) : format_duration(now_ns - since);
    std::snprintf(line, sizeof line, "%-8s %-16s %-5s %5u  %s\n", h->pid ? std::to_string(h->pid).c_str() : "-",
                  printable(h->comm).c_str(), std::string(to_string(h->proto)).c_str(), h->lport, dur.c_str());
    s += line;
  }
  return s;
}

void TopSink::flush() {
  uint64_t now = BootClock::now_unix_ns();
  if (now - last_draw_ns_ < kSecond) return;
  last_draw_ns_ = now;
  out_.write("\x1b[H\x1b[2J" + render(now));  // home, clear
  out_.flush();
}

}  // namespace portghost
