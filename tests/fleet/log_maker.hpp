// Logs for the fleet tests, written by the tracer's own sink and output
// (JSON Lines, rotation): sessions of assigns and releases over a few ports,
// with existing sockets, losses, exhaustions, occupancy warnings, and a
// session cut short (no stop), so that who and stats have every case to
// answer. Deterministic: the same arguments give the same log.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"

namespace pgfleet {

struct LogShape {
  std::string host = "web-1";
  uint64_t t0_ns = 1'796'500'000'000'000'000ULL;  // 2026-12-05T...
  unsigned sessions = 3;                          // the last one without a stop
  unsigned records_per_session = 2000;            // assigns (each with its release, most of them)
  uint64_t rotate_bytes = 0;                      // 0: one file
  unsigned keep = 50;
  uint16_t first_port = 40000;
  unsigned ports = 40;
  uint64_t step_ns = 1'000'000;         // between records
  uint64_t gap_ns = 60'000'000'000ULL;  // between sessions: a time no log covers
};

// Writes LOG (rotated as FILE.N beside it); returns the lines written by type.
std::map<std::string, uint64_t> make_log(const std::string& file, const LogShape& shape);

// Instants worth asking `who` about for a log of this shape: inside
// holdings, between sessions, before the first and after the last record.
std::vector<uint64_t> probe_instants(const LogShape& shape);

}  // namespace pgfleet
