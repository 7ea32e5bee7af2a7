// The kernel's connection-tracking event stream (ctnetlink, through
// libnetfilter_conntrack): each tracked flow's two tuples when it is
// confirmed and when it is destroyed, in the network namespace of the
// process that opens it. Only the source of events: which of them belong to
// recorded ports is decided in trace/nat_join.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/fixed_text.hpp"
#include "common/net.hpp"

struct nfct_handle;

namespace portghost {

// One end of a conntrack tuple.
struct CtEnd {
  AddrText addr;
  uint16_t port = 0;
  bool operator==(const CtEnd& o) const { return port == o.port && addr == o.addr; }
};

struct CtEvent {
  enum class Kind { New, Destroy } kind = Kind::New;
  uint32_t id = 0;  // the kernel's id of the entry, unique while it lives
  Proto proto = Proto::Tcp;
  Family family = Family::Ipv4;
  CtEnd orig_src, orig_dst;    // as the flow's first packet left its sender
  CtEnd reply_src, reply_dst;  // as the answers come back
  uint64_t read_unix_ns = 0;   // when portghost read it (events carry no time)
  uint64_t read_boot_ns = 0;   // the same on the kernel's boot clock

  // The source end the world saw differs from the sender's (SNAT or
  // MASQUERADE), or the destination the sender named was rewritten (DNAT).
  bool src_translated() const { return !(reply_dst == orig_src); }
  bool dst_translated() const { return !(reply_src == orig_dst); }
};

// Decodes a conntrack object (libnetfilter_conntrack's nf_conntrack) into
// an event; false for a flow that is not TCP, UDP, UDP-Lite or SCTP.
bool decode_conntrack(const void* nf_conntrack, CtEvent::Kind kind, CtEvent& out);

// Does the kernel's table (this namespace) hold a translated flow now? A
// dump, stopped at the first one. False when it cannot be read.
bool conntrack_has_nat();

// The subscription. Non-copyable, movable; closing it unsubscribes.
class ConntrackEvents {
 public:
  // Opens the stream of new and destroyed flows. Throws FatalError when the
  // kernel has no ctnetlink or refuses it.
  ConntrackEvents();
  ~ConntrackEvents();
  ConntrackEvents(const ConntrackEvents&) = delete;
  ConntrackEvents& operator=(const ConntrackEvents&) = delete;
  ConntrackEvents(ConntrackEvents&&) noexcept;
  ConntrackEvents& operator=(ConntrackEvents&&) noexcept;

  // Reads every event queued now (never blocks), calling f for each.
  // Returns how many times the kernel overran the socket's buffer since the
  // last call (each overrun lost one event or more).
  uint64_t read(const std::function<void(const CtEvent&)>& f);
  int fd() const;
  // Whether the kernel drops the events of untranslated flows before they
  // are queued (a socket filter on the status bits; not where IPVS is
  // loaded, whose translations lack them); when not, they are read and
  // the join ignores them.
  bool filtered() const { return filtered_; }

  struct Handle;  // the library's handle and the callback's scratch

 private:
  std::unique_ptr<Handle> h_;
  bool filtered_ = false;
};

}  // namespace portghost
