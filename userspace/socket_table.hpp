// The socket lifetime table: which socket holds which port since when, and
// the one place where a release is matched to its assign (by socket cookie).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "events.hpp"

namespace portghost {

class SocketTable {
 public:
  struct Holder {
    uint64_t since_boot_ns = 0;  // assign time (kernel clock)
    bool existing = false;       // held before the trace: no known start
    bool hidden = false;         // filtered out: its release is hidden too
    std::optional<uint32_t> pid;
    std::optional<std::string> comm;
    Family family = Family::Ipv4;
    std::string laddr;
    uint16_t lport = 0;
    std::string raddr;  // empty: not connected when assigned
    uint16_t rport = 0;
    Proto proto = Proto::Tcp;
    uint32_t netns = 0;
    bool ephemeral_range = false;  // lport inside its namespace's ephemeral range
  };

  // What a release is matched to.
  struct Release {
    std::optional<uint64_t> duration_ns;  // null: the assign was not seen
    std::optional<uint32_t> pid;          // the assigner
    std::optional<std::string> comm;
    std::string laddr;  // filled from the assign when the release lacks it
    uint16_t lport = 0;
    std::string raddr;  // empty: unknown
    uint16_t rport = 0;
  };

  explicit SocketTable(size_t max_entries = 1 << 20) : max_entries_(max_entries) {}

  // A new holder. Returns false when the cookie already holds this same port
  // (the kernel reported it twice, e.g. existing and then assign): drop it.
  bool assign(const SockEvent& e, bool hidden = false);
  // A holder from before the trace (pid/comm from the /proc scan).
  void existing(const SockEvent& e, std::optional<uint32_t> pid, std::optional<std::string> comm,
                bool hidden = false);
  // The release of a cookie. nullopt: nothing to report (hidden, or a
  // socket never seen holding a port and the kernel cannot say which port).
  std::optional<Release> release(const SockEvent& e);

  const Holder* find(uint64_t cookie) const;
  // Ports held now in a network namespace for a protocol, as far as seen;
  // and of those, the ones inside the namespace's ephemeral range.
  uint64_t held_in(uint32_t netns, Proto proto) const;
  uint64_t held_in_range(uint32_t netns, Proto proto) const;
  // Tells whether a port is in a namespace's ephemeral range (default: never).
  void set_range_check(std::function<bool(uint32_t netns, uint16_t port)> f) { in_range_ = std::move(f); }
  size_t size() const { return held_.size(); }
  uint64_t evicted() const { return evicted_; }

 private:
  void insert(uint64_t cookie, Holder h);
  void erase(std::unordered_map<uint64_t, Holder>::iterator it);
  static uint64_t count_key(uint32_t netns, Proto p) { return (uint64_t{netns} << 8) | static_cast<uint8_t>(p); }

  size_t max_entries_;
  uint64_t evicted_ = 0;
  std::unordered_map<uint64_t, Holder> held_;
  std::unordered_map<uint64_t, uint64_t> counts_;           // by count_key
  std::unordered_map<uint64_t, uint64_t> in_range_counts_;  // by count_key
  std::function<bool(uint32_t, uint16_t)> in_range_;
};

}  // namespace portghost
