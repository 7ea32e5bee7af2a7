// exe and cmdline of every process, fed by the kernel's exec/fork/exit records
// and seeded from /proc at start, so even a process that lived 1 ms and is
// gone before its records are read is named. No /proc read on the hot path:
// only a pid never seen falls back to /proc, once.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kernel/events.hpp"

namespace portghost {

// Text held by a process's entry and shared by copies (a forked child, an
// image kept for late records): a fork copies a pointer, not megabytes. Its
// bytes count in the budget that made it for as long as any copy lives.
class SharedText {
 public:
  struct Budget {
    size_t bytes = 0;
  };
  SharedText() = default;
  SharedText(std::string s, const std::shared_ptr<Budget>& budget);
  const std::string& str() const { return p_ ? *p_ : empty_text(); }
  operator const std::string&() const { return str(); }  // NOLINT(google-explicit-constructor)
  bool empty() const { return str().empty(); }
  size_t size() const { return str().size(); }
  friend bool operator==(const SharedText& a, std::string_view b) { return a.str() == b; }
  friend std::ostream& operator<<(std::ostream& o, const SharedText& t) { return o << t.str(); }

 private:
  static const std::string& empty_text();
  std::shared_ptr<const std::string> p_;
};

struct ProcInfo {
  SharedText exe;
  SharedText cmdline;
  std::string comm;
  uint32_t ppid = 0;
  uint64_t exited_boot_ns = 0;  // its last thread exited then (0: alive)
  // exe and cmdline unknown (written null, not as the empty strings here):
  // /proc could not name the executable, or the process was renamed by an
  // exec no record told of and was gone before /proc was read
  bool unread = false;
  // when this image began (its exec; 0: as far back as known), and the
  // image before it: a port record is read after every process record
  // already in the kernel, so it may meet an exec that came after it, and
  // is attributed to the image in effect at its own time
  uint64_t since_boot_ns = 0;
  std::shared_ptr<const ProcInfo> before;
};

class ProcessCache {
 public:
  // max_bytes: of the exe and cmdline text held (each counted once, however
  // many processes share it); past it, entries are evicted as past
  // max_entries, and a record of an evicted process reads /proc again
  explicit ProcessCache(std::string proc_root = "/proc", size_t max_entries = 1 << 18,
                        size_t max_bytes = kDefaultMaxBytes)
      : proc_root_(std::move(proc_root)), max_entries_(max_entries), max_bytes_(max_bytes) {}
  static constexpr size_t kDefaultMaxBytes = size_t{128} << 20;

  void on_event(const TaskEvent& t);
  // Forgets the processes that exited before `boot_ns`. An exit is not
  // forgotten when it is read: process records have their own ring, so port
  // records the process made before it exited may still be on their way.
  void expire(uint64_t boot_ns);
  // Reads every /proc/PID (exe, cmdline, comm, ppid). Returns processes read.
  size_t seed();
  // Cached entry; for an unknown pid one /proc read (negative results kept).
  // comm: the process's name at the record; without exec records, a cached
  // entry with another name is from before an exec, and is read again.
  // at_boot_ns: the record's time: the image the process ran then (an
  // entry with exe and cmdline unknown if it began before any image known).
  // The pointer is good until the next call.
  const ProcInfo* lookup(uint32_t pid, std::string_view comm = {},
                         uint64_t at_boot_ns = std::numeric_limits<uint64_t>::max());
  // Images kept per process, the one running included: an exec storm in
  // one pid cannot grow the cache.
  static constexpr int kImagesKept = 3;
  // Whether the kernel sends exec records (it cannot without bpf_loop): if
  // not, a child keeps the exe and cmdline copied from its parent at fork
  // until a record shows it renamed (its exec), and is then read again.
  void set_exec_records(bool on) { exec_records_ = on; }
  size_t size() const { return procs_.size(); }
  // exe and cmdline bytes held now; entries evicted by the bounds so far
  size_t bytes() const { return budget_->bytes; }
  uint64_t evicted() const { return evicted_; }

  // One process from /proc (nullopt when gone). Its image begins at the
  // process's start (since_boot_ns, to the kernel's clock tick): a record
  // older than that was another process's, one that had the pid before.
  std::optional<ProcInfo> read_proc(uint32_t pid) const;

 private:
  void put(uint32_t pid, ProcInfo info);
  void make_room(uint32_t pid);

  std::string proc_root_;
  size_t max_entries_, max_bytes_;
  std::shared_ptr<SharedText::Budget> budget_ = std::make_shared<SharedText::Budget>();
  uint64_t evicted_ = 0;
  std::unordered_map<uint32_t, std::optional<ProcInfo>> procs_;
  std::deque<std::pair<uint64_t, uint32_t>> exits_;  // (exit time, pid), in reading order
  bool exec_records_ = true;
  ProcInfo unknown_;  // exe and cmdline unknown (unread)
};

}  // namespace portghost
