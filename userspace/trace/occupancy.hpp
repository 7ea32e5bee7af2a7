// How full each network namespace's ephemeral port range is: the ranges
// themselves (read once per namespace), and the warning when one fills
// past a mark (--warn-occupancy).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>

#include "common/net.hpp"
#include "trace/records.hpp"

namespace portghost {

class SocketTable;

// ip_local_port_range per network namespace: from the kernel's records when
// they carry it, else read once (a reader that may enter the namespace).
class PortRanges {
 public:
  using Range = std::pair<uint16_t, uint16_t>;  // {0,0}: unknown
  using Reader = std::function<Range(uint32_t netns)>;

  void set_reader(Reader r) { read_ = std::move(r); }
  // The kernel's range at an event wins: a namespace may reuse a gone
  // one's inode number, or its range may have changed.
  void learn(uint32_t netns, uint16_t lo, uint16_t hi) { ranges_[netns] = {lo, hi}; }
  Range of(uint32_t netns);
  bool contains(uint32_t netns, uint16_t port) {
    Range r = of(netns);
    return r.second != 0 && port >= r.first && port <= r.second;
  }

 private:
  Reader read_;
  std::unordered_map<uint32_t, Range> ranges_;
};

// One warning per crossing of the mark by a (namespace, protocol); it
// re-arms below 90% of the mark.
class Occupancy {
 public:
  Occupancy(unsigned percent, PortRanges& ranges) : percent_(percent), ranges_(ranges) {}

  unsigned percent() const { return percent_; }
  // After an assign in (netns, proto), with the table as it is now: the
  // warning to write, if this assign crossed the mark.
  std::optional<WarningRecord> after_assign(uint32_t netns, Proto proto, const SocketTable& table, uint64_t ts_ns);
  // After a release (which may not know its namespace): re-arm every warned
  // one that fell below 90% of the mark.
  void after_release(const SocketTable& table);

 private:
  static uint64_t key(uint32_t netns, Proto p) { return (uint64_t{netns} << 8) | static_cast<uint8_t>(p); }
  unsigned percent_;
  PortRanges& ranges_;
  std::unordered_map<uint64_t, bool> warned_;  // (netns, proto) warned, not yet re-armed
};

}  // namespace portghost
