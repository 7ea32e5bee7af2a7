// The records of the event log, as the sinks receive them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/events.hpp"

namespace portghost {

// assign, existing, release. The text fields are views: they point into the
// decoded event, the process cache or the socket table, and live as long as
// the call that hands the record to a sink. A sink that keeps one copies it.
struct PortRecord {
  enum class Type { Assign, Existing, Release, Exhausted } type = Type::Assign;
  uint64_t ts_ns = 0;  // unix ns
  uint64_t sock = 0;
  Proto proto = Proto::Tcp;
  Family family = Family::Ipv4;
  std::string_view laddr;
  uint16_t lport = 0;
  std::optional<std::string_view> raddr;
  std::optional<uint16_t> rport;
  // assign / existing
  std::optional<How> how;
  std::optional<bool> ephemeral;
  std::optional<uint32_t> pid, tid, ppid, uid;
  std::optional<std::string_view> comm, thread, exe, cmdline;
  std::optional<uint32_t> netns;
  std::optional<uint64_t> cgroup_id;
  std::optional<std::string_view> container;
  bool kernel = false;
  bool late = false;                      // assign: first sight of a port taken earlier, unseen
  bool mptcp = false;                     // an MPTCP subflow's port (proto tcp)
  std::optional<std::string_view> state;  // existing: tcp state
  // exhausted: ports this (netns, proto) held at that moment, as far as seen
  std::optional<uint64_t> held;
  // release
  std::optional<uint64_t> duration_ns;
  bool timewait = false;
  // release: the task whose close() let the port go (not always the holder:
  // a socket passed over SCM_RIGHTS or inherited across fork)
  std::optional<uint32_t> closer_pid, closer_tid;
  std::optional<std::string_view> closer_comm;
  bool reconciled = false;  // the socket was found gone: its release was never seen
  // release: the socket gave its port up and stayed open (a UDP
  // connect(AF_UNSPEC)); with `late`, seen only at its next sight
  bool disconnect = false;
};

// The record's "type" in the log.
inline std::string_view type_name(PortRecord::Type t) {
  switch (t) {
    case PortRecord::Type::Assign: return "assign";
    case PortRecord::Type::Existing: return "existing";
    case PortRecord::Type::Release: return "release";
    case PortRecord::Type::Exhausted: return "exhausted";
  }
  return "?";
}

struct StartRecord {
  uint64_t ts_ns = 0;
  std::string version;
  std::string kernel;
  std::string hostname;
  std::string machine_id;             // /etc/machine-id
  std::string boot_id;                // /proc/sys/kernel/random/boot_id
  std::string world;                  // "fexit", "socket" or "syscall": which hooks see a port's end
  std::vector<std::string> hooks;     // in use
  std::vector<std::string> uncaught;  // paths this kernel cannot show, and why
  std::vector<std::pair<std::string, std::string>> paths;  // path -> hook serving it ("" none)
  uint16_t port_lo = 0, port_hi = 0;
  uint64_t ring_buffer_bytes = 0;
  uint64_t kernel_maps_bytes = 0;  // the maps' kernel memory at the start (socket storage apart)
  uint64_t socket_slots = 0;       // preallocated socket state entries (more go to socket storage)
  std::map<std::string, std::string> filters;
  // NAT following: "watch" (conntrack's events subscribed to only while
  // translated flows exist), or "follow: " and why they are followed all
  // the time; absent with no NAT following
  std::optional<std::string> nat_mode;
};

// A NAT translation (conntrack) of a flow of a recorded socket: how the
// world saw the socket's end (and the peer's, under DNAT). "nat" when the
// kernel confirmed the flow, "nat_end" when it forgot it.
struct NatRecord {
  enum class Type { Nat, NatEnd } type = Type::Nat;
  uint64_t ts_ns = 0;  // unix ns, when read (conntrack events carry no time)
  uint64_t sock = 0;
  Proto proto = Proto::Tcp;
  Family family = Family::Ipv4;
  AddrText laddr, raddr;  // the flow as the socket sent it (conntrack's original tuple)
  uint16_t lport = 0, rport = 0;
  AddrText nat_laddr, nat_raddr;  // as the world saw it (the reply tuple, turned round)
  uint16_t nat_lport = 0, nat_rport = 0;
  uint32_t ct_id = 0;
  std::optional<uint32_t> pid;  // the port's assigner
  std::optional<CommText> comm;
  std::optional<uint32_t> netns;        // the socket's
  std::optional<uint64_t> duration_ns;  // nat_end: since the nat record
};

inline std::string_view type_name(NatRecord::Type t) { return t == NatRecord::Type::Nat ? "nat" : "nat_end"; }

struct LostRecord {
  uint64_t ts_ns = 0;
  uint64_t count = 0;  // newly lost since the previous lost record
  uint64_t total = 0;
  std::map<std::string, uint64_t> by_reason;  // this interval
};

// The ephemeral range of a namespace filled past the --warn-occupancy mark.
struct WarningRecord {
  uint64_t ts_ns = 0;
  uint32_t netns = 0;
  Proto proto = Proto::Tcp;
  uint64_t held = 0;  // ports of the range held
  uint16_t range_lo = 0, range_hi = 0;
  unsigned threshold = 0;  // percent
};

struct StopRecord {
  uint64_t ts_ns = 0;
  std::string reason;
  std::map<std::string, uint64_t> records;  // written, by type
  uint64_t lost = 0;
  uint64_t table_evicted = 0;
  // sockets still holding a recorded port at the stop (the last
  // reconciliation found each of them alive); absent when not counted
  std::optional<uint64_t> held;
  // runs of the tracing programs the kernel skipped (nested on a CPU)
  std::optional<uint64_t> skipped_runs;
  // entries the bounded caches forgot to stay within their bounds: the
  // process cache (exe and cmdline, read again from /proc at the next
  // record) and the cgroup path cache (looked up again)
  std::optional<uint64_t> process_evicted, cgroup_evicted;
  // with NAT joining: translations seen whose flow matched no recorded
  // socket, or more than one
  std::optional<uint64_t> nat_unjoined, nat_ambiguous;
  // with NAT joining: tries that met more sockets on one port than they
  // weigh (NatJoin::kMaxCandidates) and chose among the first of them
  std::optional<uint64_t> nat_crowded;
  // with NAT joining: looks at the whole conntrack table, lookups of one
  // flow's entry, and how many times its event stream was subscribed to
  // (only while translated flows exist)
  std::optional<uint64_t> nat_looks, nat_probes, nat_subscriptions;
  // sockets whose state went to socket storage because the socket slots
  // were full (nothing lost), and slots freed by the liveness walk because
  // their socket ended where no hook saw it
  std::optional<uint64_t> socket_slots_full, socket_slots_freed;
};

}  // namespace portghost
