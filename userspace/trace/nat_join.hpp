// Where a NAT translation is joined to the socket whose flow it is: the
// conntrack events of the tracer's namespace against the port records on
// their way to the log. Passes every record on to the next sink unchanged
// and writes a nat record (and its nat_end) for each translated flow of a
// recorded socket; a translation no recorded socket sent is not written,
// only counted.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/flat_map.hpp"
#include "kernel/conntrack.hpp"
#include "trace/sink.hpp"

namespace portghost {

class NatJoin : public Sink {
 public:
  explicit NatJoin(Sink& next) : next_(next) {}

  void start(const StartRecord& r) override { next_.start(r); }
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override { next_.lost(r); }
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override { next_.warning(r); }
  void nat(const NatRecord& r) override { next_.nat(r); }
  void flush() override { next_.flush(); }

  // A conntrack event, held until every port record made before it was read
  // has passed (see ready()).
  void on_conntrack(const CtEvent& e);
  // Every port record made before `read_to_unix_ns` has passed: the events
  // read before then are joined now, and released sockets too old to send
  // anything still unread are forgotten.
  void ready(uint64_t read_to_unix_ns);

  uint64_t unjoined() const { return unjoined_; }
  uint64_t ambiguous() const { return ambiguous_; }
  size_t pending() const { return pending_.size(); }
  uint64_t dropped() const { return dropped_; }  // events past kMaxPending

  // A released socket may still be named by a translation read this long
  // after its release (the event's time in the kernel's socket buffer).
  static constexpr uint64_t kKeepReleasedNs = 10'000'000'000ULL;
  static constexpr size_t kMaxPending = 1 << 18;
  static constexpr size_t kMaxOpen = 1 << 20;  // translations awaiting their end

 private:
  struct Socket {
    Proto proto = Proto::Tcp;
    Family family = Family::Ipv4;
    AddrText laddr, raddr;  // raddr empty: no peer known
    uint16_t lport = 0, rport = 0;
    std::optional<uint32_t> netns, pid;
    std::optional<CommText> comm;
    uint64_t assigned_ns = 0, released_ns = 0;  // unix; released 0: live
  };
  void join(const CtEvent& e);
  void end(const CtEvent& e);
  static uint64_t port_key(Proto p, uint16_t port) { return uint64_t{static_cast<uint8_t>(p)} << 16 | port; }
  void forget(uint64_t sock);

  Sink& next_;
  FlatMap<Socket> sockets_;                                      // by cookie: live, or released lately
  std::unordered_map<uint64_t, std::vector<uint64_t>> by_port_;  // port_key -> cookies
  std::deque<std::pair<uint64_t, uint64_t>> released_;           // (release unix ns, cookie), in order
  std::unordered_map<std::string, uint32_t> addr_netns_;         // a local address -> the namespace that used it
  std::deque<CtEvent> pending_;
  std::unordered_map<uint32_t, NatRecord> open_;  // by conntrack id: written, not yet ended
  uint64_t unjoined_ = 0, ambiguous_ = 0, dropped_ = 0;
  uint64_t written_ = 0, ended_ = 0;
};

}  // namespace portghost
