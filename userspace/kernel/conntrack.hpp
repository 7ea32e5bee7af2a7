// The kernel's connection-tracking event stream (ctnetlink, through
// libnetfilter_conntrack): each tracked flow's two tuples when it is
// confirmed and when it is destroyed, in the network namespace of the
// process that opens it. Only the source of events: which of them belong to
// recorded ports is decided in trace/nat_join.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/fixed_text.hpp"
#include "common/net.hpp"
#include "common/unique_fd.hpp"

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
  // A flow found by a look at the table, not by its event: it began after
  // this (boot clock), the last look that found none (0: at no known time,
  // before the trace). Its socket may have let the port go since.
  std::optional<uint64_t> found_since_boot_ns;
  uint64_t began_after_boot_ns() const { return found_since_boot_ns ? *found_since_boot_ns : read_boot_ns; }

  // The source end the world saw differs from the sender's (SNAT or
  // MASQUERADE), or the destination the sender named was rewritten (DNAT).
  bool src_translated() const { return !(reply_dst == orig_src); }
  bool dst_translated() const { return !(reply_src == orig_dst); }
};

// Decodes a conntrack object (libnetfilter_conntrack's nf_conntrack) into
// an event; false for a flow that is not TCP, UDP, UDP-Lite or SCTP.
bool decode_conntrack(const void* nf_conntrack, CtEvent::Kind kind, CtEvent& out);

// The translated flows in the kernel's table (this namespace) now, each
// passed to f once as a New event: a dump the kernel filters by status
// (IPS_SRC_NAT, then IPS_DST_NAT) where it can. nullopt when the table
// cannot be read; false when the kernel handed back untranslated flows too
// (it cannot filter a dump by status), which are not passed on.
std::optional<bool> dump_translated(const std::function<void(const CtEvent&)>& f);

// A flow as its sender named it: the tuple a conntrack entry is looked up by.
struct FlowTuple {
  Proto proto = Proto::Tcp;
  AddrText laddr, raddr;
  uint16_t lport = 0, rport = 0;
};

// What a port record tells of a flow that NAT may translate: a socket
// connected off loopback (its tuple known), one that sent a datagram with
// no peer named, one that took a port with no peer named yet, or one
// connected on loopback (translated only by a local DNAT or REDIRECT).
enum class FlowHint { Flow, Unconnected, Unnamed, Loopback };

// One entry of the table, looked up by its original tuple (one request,
// O(1) in the kernel, where a dump walks every bucket of the table, which
// all namespaces share). Non-copyable; holds one netlink socket.
class ConntrackQuery {
 public:
  ConntrackQuery();
  ~ConntrackQuery();
  ConntrackQuery(const ConntrackQuery&) = delete;
  ConntrackQuery& operator=(const ConntrackQuery&) = delete;
  // Whether the flow's entry says it is translated (the NAT status bits, or
  // tuples that differ: IPVS); nullopt when there is no entry or no telling
  // (an address that is not one, no ctnetlink).
  std::optional<bool> translated(const FlowTuple& t);

 private:
  nfct_handle* h_ = nullptr;
};

// Whether IPVS is loaded in this namespace: its translations lack the NAT
// status bits that the event filter and the dump filter key on.
bool ipvs_loaded();

// Whether conntrack tracks flows in this namespace now (nf_conntrack_count
// above 0). Merely loaded, it tracks nothing (and opening ctnetlink loads it).
// Asked at every turn of the trace loop until it does: the file is opened
// once and read again in place (one call, where opening it each time took
// three).
class ConntrackCount {
 public:
  bool tracking();

 private:
  UniqueFd fd_;
};

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
