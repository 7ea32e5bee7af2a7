// The trace loop: load the probes, write the start record, feed every
// kernel record to the RecordBuilder, drain, reconcile, stop.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "app/privileges.hpp"
#include "common/options.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

struct TraceContext {
  TraceOptions options;
  uint64_t cgroup_id = 0;
  uint32_t cgroup_level = 0;
  std::string cgroup_root;
  std::optional<RunAs> run_as;  // once attached and the start written, become this user
};

// Runs until `stop` becomes true or the duration passes; reopens the output
// whenever `reopen` is set (and clears it). Returns the exit code.
int run_trace(const TraceContext& ctx, Output& out, Sink& sink, const std::atomic<bool>& stop,
              std::atomic<bool>* reopen = nullptr);

}  // namespace portghost
