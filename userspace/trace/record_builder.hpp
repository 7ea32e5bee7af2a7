// Kernel records in, log records out: attribution, matching a release to
// its assign (in the socket table), filters, occupancy warnings.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/clock.hpp"
#include "common/options.hpp"
#include "trace/container.hpp"
#include "trace/occupancy.hpp"
#include "trace/process_cache.hpp"
#include "trace/records.hpp"
#include "trace/sink.hpp"
#include "trace/socket_table.hpp"

namespace portghost {

// Turns decoded kernel records into log records (attribution, matching,
// filters) and hands them to the sink. Knows nothing of BPF: unit-testable.
class RecordBuilder {
 public:
  RecordBuilder(Sink& sink, const Filters& filters, BootClock clock, ProcessCache& procs,
                std::optional<CgroupResolver> cgroups)
      : sink_(sink), filters_(filters), clock_(clock), procs_(procs), cgroups_(std::move(cgroups)) {}

  // A record from the ring buffer.
  void on_record(const void* data, size_t size);
  void on_event(const Event& ev);
  // Sockets from before the start; owners maps socket inode -> pid.
  // write false (--no-existing): held in the table all the same, unwritten,
  // so that a later sight of it is never taken for a new assign (where the
  // kernel cannot mark it held: Linux < 5.12) and its release stays hidden.
  void on_existing(const SockEvent& e, const std::unordered_map<uint64_t, uint32_t>& owners, bool write = true);
  // `live`: the sockets the kernel says still hold a recorded port, listed
  // at `listed_boot_ns`, after which every record produced before was read.
  // Writes a release (reason "reconciled", at `now_boot_ns`) for each socket
  // held since before then that the list lacks. Returns how many.
  // `covered` says which sockets the list could have named (all, where the
  // kernel walks its socket storage).
  size_t reconcile(const std::unordered_set<uint64_t>& live, uint64_t listed_boot_ns, uint64_t now_boot_ns,
                   const std::function<bool(const SocketTable::Holder&)>& covered);

  // Records written so far, by type (types with none are left out).
  std::map<std::string, uint64_t> written() const;
  uint64_t malformed() const { return malformed_; }
  const SocketTable& table() const { return table_; }
  uint64_t cgroup_evicted() const { return cgroups_ ? cgroups_->evicted() : 0; }
  SocketTable& table() { return table_; }
  // Warn (once per crossing; re-armed below 90% of the mark) when a
  // namespace's ephemeral range is this many percent held; range_of gives a
  // namespace's range ({0,0}: unknown).
  void warn_occupancy(unsigned percent, PortRanges::Reader range_of);
  // Reads the ephemeral range of these namespaces now, while it still can
  // (before a drop of privileges: another namespace's range needs setns).
  void learn_ranges(const std::vector<uint32_t>& netns) {
    if (occupancy_)
      for (uint32_t ns : netns) ranges_.of(ns);
  }
  BootClock& clock() { return clock_; }

 private:
  void on_sock(const SockEvent& e);
  PortRecord base_record(const SockEvent& e, PortRecord::Type type) const;
  // at_boot_ns: the record's time, whose process image names it
  void attribute(PortRecord& r, const SockEvent& e, std::optional<uint32_t> pid, uint64_t at_boot_ns);
  void attribute_task(PortRecord& r, const SockEvent& e);
  enum Written { kAssign, kRelease, kExisting, kExhausted, kWarning, kWrittenTypes };
  void emit(const PortRecord& r, Written type);

  Sink& sink_;
  Filters filters_;
  BootClock clock_;
  ProcessCache& procs_;
  std::optional<CgroupResolver> cgroups_;
  static constexpr size_t kMaxReconciled = 65536;
  std::unordered_set<uint64_t> reconciled_;  // released by reconciliation, not (yet) by the kernel
  SocketTable table_;
  uint64_t written_[kWrittenTypes] = {};
  uint64_t malformed_ = 0;
  SockEvent scratch_{};  // the record being handled: its strings' storage reused
  PortRanges ranges_;
  std::optional<Occupancy> occupancy_;  // with --warn-occupancy
};

std::string_view tcp_state_name(uint8_t state);

}  // namespace portghost
