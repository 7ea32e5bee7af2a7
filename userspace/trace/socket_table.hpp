// The socket lifetime table: which socket holds which port since when, and
// the one place where a release is matched to its assign (by socket cookie).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/flat_map.hpp"
#include "kernel/events.hpp"
#include "trace/occupancy.hpp"

namespace portghost {

class SocketTable {
 public:
  struct Holder {
    uint64_t since_boot_ns = 0;  // assign time (kernel clock)
    bool existing = false;       // held before the trace: no known start
    bool hidden = false;         // filtered out: its release is hidden too
    std::optional<uint32_t> pid;
    std::optional<CommText> comm;
    Family family = Family::Ipv4;
    AddrText laddr;
    uint16_t lport = 0;
    AddrText raddr;  // empty: not connected when assigned
    uint16_t rport = 0;
    Proto proto = Proto::Tcp;
    uint32_t netns = 0;
    How how = How::None;          // of the assign (None: existing)
    uint64_t next_same_port = 0;  // the next holder of (netns, proto, lport); 0: none
    uint64_t prev_same_port = 0;  // the one before (0: this is the first): O(1) removal
  };

  // What a release is matched to.
  struct Release {
    bool matched = false;                 // the table held the socket
    std::optional<uint64_t> duration_ns;  // null: the assign was not seen
    std::optional<uint32_t> pid;          // the assigner
    std::optional<CommText> comm;
    AddrText laddr;  // filled from the assign when the release lacks it
    uint16_t lport = 0;
    AddrText raddr;  // empty: unknown
    uint16_t rport = 0;
  };

  explicit SocketTable(size_t max_entries = 1 << 20) : max_entries_(max_entries) {}

  // A new holder. Returns false when the cookie already holds this same port
  // (the kernel reported it twice, e.g. existing and then assign): drop it.
  bool assign(const SockEvent& e, bool hidden = false);
  // A holder from before the trace (pid/comm from the /proc scan).
  void existing(const SockEvent& e, std::optional<uint32_t> pid, std::optional<std::string> comm, bool hidden = false);
  // The release of a cookie. nullopt: nothing to report (hidden, or a
  // socket never seen holding a port and the kernel cannot say which port).
  std::optional<Release> release(const SockEvent& e);

  const Holder* find(uint64_t cookie) const;

  // The sockets that hold (proto, port) in any namespace now, and (once
  // keep_released() is on) those that let it go within kKeepReleasedNs of
  // now_boot_ns, among the last kMaxReleased releases (of sockets on
  // loopback only with keep_loopback()): f(cookie, holder,
  // released_boot_ns), 0 for a live one. What a NAT translation is joined
  // against. At most `limit` sockets (the live ones first): false when
  // more were left unseen (one port shared by many sockets, SO_REUSEPORT).
  bool for_each_of_port(Proto proto, uint16_t port, uint64_t now_boot_ns,
                        const std::function<void(uint64_t, const Holder&, uint64_t)>& f, size_t limit = SIZE_MAX) const;
  void keep_released(bool on) { keep_released_ = on; }
  // kept released sockets include those on loopback (at either end)
  void keep_loopback(bool on) { keep_loopback_ = on; }
  // The namespace of a live socket bound to this local address (a scan:
  // for the rare question only).
  std::optional<uint32_t> netns_using(std::string_view laddr) const;
  bool keeps_released() const { return keep_released_; }
  static constexpr uint64_t kKeepReleasedNs = 10'000'000'000ULL;
  static constexpr size_t kMaxReleased = 1 << 16;
  // The sockets held since before `before_boot_ns` whose cookie is not in
  // `live`: gone without a release the trace saw.
  // `covered` says which holders the list could have named.
  std::vector<uint64_t> gone(const std::unordered_set<uint64_t>& live, uint64_t before_boot_ns,
                             const std::function<bool(const Holder&)>& covered) const;
  // Distinct ports held now in a network namespace for a protocol, as far
  // as seen (an SO_REUSEPORT group or a listener's many children are one
  // port; a tcp port in TIME_WAIT is held until it expires); and of those,
  // the ones inside the namespace's ephemeral range.
  uint64_t held_in(uint32_t netns, Proto proto) const;
  uint64_t held_in_range(uint32_t netns, Proto proto) const;
  // The kernel's time has reached boot_ns: TIME_WAIT ports older than
  // kTimeWaitNs are free again.
  void advance(uint64_t boot_ns);
  // TCP_TIMEWAIT_LEN: how long the kernel keeps a closed port in TIME_WAIT.
  static constexpr uint64_t kTimeWaitNs = 60'000'000'000ULL;
  // Counts held_in_range() against these ranges (default: none, so 0).
  void count_in_range_of(PortRanges* ranges) { ranges_ = ranges; }
  size_t size() const { return held_.size(); }
  // The sockets held and written (not hidden by a filter): a walk, for the stop.
  uint64_t visible() const;
  uint64_t evicted() const { return evicted_; }

 private:
  void insert(uint64_t cookie, const Holder& h);
  void evict_one_but(uint64_t keep);
  void erase(uint64_t cookie);
  void erase(uint64_t cookie, const Holder& h);  // h: its slot in held_ (gone after)
  static uint64_t count_key(uint32_t netns, Proto p) { return (uint64_t{netns} << 8) | static_cast<uint8_t>(p); }
  static uint64_t port_key(uint32_t netns, Proto p, uint16_t port) { return count_key(netns, p) << 16 | port; }
  // One more or one less reason for (netns, proto, port) to be taken.
  void port_ref(uint32_t netns, Proto p, uint16_t port);
  void port_unref(uint32_t netns, Proto p, uint16_t port);

  struct PortUse {
    uint32_t refs = 0;  // holders and TIME_WAIT entries
    bool in_range = false;
    uint64_t first = 0;  // the first holder's cookie (0: only TIME_WAIT)
  };
  // the holder list of a port: after port_ref, before port_unref
  void link(uint64_t cookie, Holder& h);
  void unlink(uint64_t cookie, const Holder& h);
  void remember_released(uint64_t cookie, const Holder& h, uint64_t released_boot_ns);
  struct Released {
    uint64_t cookie = 0, at_boot_ns = 0;
    uint64_t next = 0;  // the next older of the same (proto, port): its index + 1; 0: none
    Holder h;
  };
  bool keep_released_ = false, keep_loopback_ = false;
  std::vector<Released> released_;      // a ring of the latest releases
  size_t released_next_ = 0;            // where the next one goes
  FlatMap<uint64_t> released_by_port_;  // (proto, port) -> the latest one's index + 1
  size_t max_entries_;
  uint64_t evicted_ = 0;
  // flat: a port's assign and release allocate nothing
  FlatMap<Holder> held_;               // by cookie
  FlatMap<PortUse> ports_;             // by port_key
  FlatMap<uint64_t> counts_;           // distinct ports, by count_key
  FlatMap<uint64_t> in_range_counts_;  // by count_key
  struct TimeWait {
    uint64_t until_boot_ns;
    uint32_t netns;
    uint16_t port;
  };
  std::deque<TimeWait> timewait_;  // in order of expiry
  PortRanges* ranges_ = nullptr;
};

}  // namespace portghost
