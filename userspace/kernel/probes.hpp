// Loading and attaching the BPF programs: open -> configure (rodata) -> load
// -> attach, with feature probes deciding which programs load. Every libbpf
// handle is owned by RAII; libbpf's negative errno becomes a FatalError here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/options.hpp"
#include "common/unique_fd.hpp"
#include "kernel/counters.hpp"
#include "kernel/hook_plan.hpp"

struct portghost_bpf;
struct bpf_link;
struct ring_buffer;

namespace portghost {

struct ProbeConfig {
  Filters filters;
  uint64_t cgroup_id = 0;  // resolved --cgroup
  uint32_t cgroup_level = 0;
  uint32_t ring_buffer_bytes = 8u << 20;
  std::string cgroup_root;        // cgroup v2 mount to attach the socket hooks to
  bool allow_fentry = true;       // false: the tracepoint hooks even where fentry works
  bool allow_sock_tp = true;      // false: without fexit, the syscall exits even where socket tracepoints serve
  uint32_t socket_slots = 65536;  // preallocated socket state entries (0: socket storage only)
};

class Probes {
 public:
  using Callback = std::function<void(const void* data, size_t size)>;

  // Loads and attaches everything; throws FatalError.
  Probes(const ProbeConfig& cfg, Callback on_record);
  ~Probes() = default;
  Probes(Probes&&) noexcept = default;
  Probes& operator=(Probes&&) noexcept = default;
  Probes(const Probes&) = delete;
  Probes& operator=(const Probes&) = delete;

  // Waits up to timeout_ms for a wakeup, then consumes pending records, at
  // most kBatch of them, so that a flood never keeps the caller from its
  // other duties (flushing, noticing a stop). Returns records consumed;
  // -EINTR when interrupted by a signal.
  int poll(int timeout_ms);
  // The ring's epoll descriptor, for a caller that waits on more than it.
  int ring_fd() const;
  // Consumes up to kBatch pending records; returns how many (0: none left).
  int drain();
  static constexpr int kBatch = 16384;
  // The kernel produces no new record after this (the hooks stay attached
  // until destruction, but return at once). A no-op once read_only().
  void stop_producing();
  // Before the privileges go (--user): every map descriptor this process
  // holds is swapped for a read-only one, and the programs' global data is
  // mapped again read-only, so that what remains can read the records and
  // the loss counters but neither silence the kernel side nor zero them.
  // Throws FatalError. The ring buffers' consumer pages stay writable (the
  // reader must move its position), and the links stay (closing them
  // would detach the programs: the log would then just stop).
  void make_read_only();
  bool read_only() const { return read_only_; }
  // Throws FatalError when the kernel refuses to read them.
  Counters counters() const;
  // Runs of the tracing programs the kernel skipped (kernel/skipped_runs.hpp);
  // skipped_releases: those of the program a TCP socket's release at CLOSE
  // may depend on (tp_btf/inet_sock_set_state).
  uint64_t skipped_runs() const;
  uint64_t skipped_releases() const;
  // socket slots freed by the liveness walk: their socket ended unseen
  uint64_t slots_freed() const { return slots_freed_; }
  uint32_t socket_slots() const { return slots_; }
  // The kernel memory the maps hold (kernel/map_memory.hpp).
  uint64_t map_memory() const;

  // "fexit", "socket" (socket tracepoints, nothing on the syscall layer) or
  // "syscall" (the syscall exits): where the ends of connect, bind and send
  // are seen.
  const std::string& world() const { return world_; }
  const std::vector<std::string>& hooks() const { return hooks_; }
  const std::vector<std::string>& uncaught() const { return uncaught_; }
  const std::vector<PathHook>& paths() const { return paths_; }

  // Runs the tcp and udp socket iterators in the caller's network namespace
  // and returns the raw records they wrote.
  std::vector<uint8_t> run_iterators();
  // Cookies of the live sockets that hold a port this trace recorded (in
  // every namespace); nullopt where the kernel has no such iterator. Frees
  // the socket slots of sockets gone without their end seen.
  std::optional<std::vector<uint64_t>> live_sockets();
  // The same list from the tcp and udp iterators, in the caller's network
  // namespace only, where the kernel cannot walk socket storage: raw records.
  std::vector<uint8_t> run_liveness_iterators();

 private:
  struct SkelDeleter {
    void operator()(portghost_bpf* s) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* l) const;
  };
  struct RingDeleter {
    void operator()(ring_buffer* r) const;
  };
  using Link = std::unique_ptr<bpf_link, LinkDeleter>;

  // Declaration order is teardown order, reversed: the ring and the links go
  // before the skeleton that owns their programs and maps.
  struct RingCtx {
    Callback cb;
    int batch = 0;
    ring_buffer* proc = nullptr;  // taken before every port record
  };
  std::unique_ptr<RingCtx> ring_ctx_;  // stable address for libbpf's ctx
  std::unique_ptr<portghost_bpf, SkelDeleter> skel_;
  std::vector<Link> links_;
  Link iter_tcp_, iter_udp_, iter_live_;
  uint32_t slots_ = 0;  // sk_slots entries (0: socket state in socket storage only)
  uint64_t slots_freed_ = 0;
  std::unique_ptr<ring_buffer, RingDeleter> proc_ring_;  // exec/fork/exit: before ring_
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  UniqueFd cgroup_fd_;
  std::string world_;
  std::vector<std::string> hooks_, uncaught_;
  std::vector<PathHook> paths_;
  std::vector<uint8_t> read_socket_iterators();
  bool read_only_ = false;
  bool sk_tracing_ = true;  // tracing programs make cookies: no sock_diag dump needed
};

// Routes libbpf's own messages into spdlog (debug when verbose, else warn+).
void route_libbpf_logs(int verbose);
// Mounts tracefs if no tracing directory is visible. Returns false if it
// could not.
bool ensure_tracefs();

}  // namespace portghost
