#include "trace/occupancy.hpp"

#include "trace/socket_table.hpp"

namespace portghost {

PortRanges::Range PortRanges::of(uint32_t netns) {
  auto it = ranges_.find(netns);
  if (it == ranges_.end()) it = ranges_.emplace(netns, read_ ? read_(netns) : Range{0, 0}).first;
  return it->second;
}

std::optional<WarningRecord> Occupancy::after_assign(uint32_t netns, Proto proto, const SocketTable& table,
                                                     uint64_t ts_ns) {
  auto r = ranges_.of(netns);
  if (!r.second) return std::nullopt;
  uint64_t size = static_cast<uint64_t>(r.second - r.first) + 1;
  uint64_t held = table.held_in_range(netns, proto);
  if (warned_.count(key(netns, proto)) || held * 100 < size * percent_) return std::nullopt;
  warned_.emplace(key(netns, proto), true);
  WarningRecord w;
  w.ts_ns = ts_ns;
  w.netns = netns;
  w.proto = proto;
  w.held = held;
  w.range_lo = r.first;
  w.range_hi = r.second;
  w.threshold = percent_;
  return w;
}

void Occupancy::after_release(const SocketTable& table) {
  for (auto it = warned_.begin(); it != warned_.end();) {
    auto netns = static_cast<uint32_t>(it->first >> 8);
    auto proto = static_cast<Proto>(it->first & 0xff);
    auto r = ranges_.of(netns);
    uint64_t size = static_cast<uint64_t>(r.second - r.first) + 1;
    if (table.held_in_range(netns, proto) * 1000 < size * percent_ * 9)
      it = warned_.erase(it);
    else
      ++it;
  }
}

}  // namespace portghost
