// `portghost who PORT`: who held a local port when, from the logs, and where
// the logs cannot tell (portghost not running, records lost, start unknown).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "logs/log_reader.hpp"

namespace portghost {

struct WhoQuery {
  uint16_t port = 0;
  uint64_t since_ns = 0, until_ns = UINT64_MAX;  // inclusive window
  std::optional<std::string> proto, family, laddr, host;
  std::optional<uint64_t> netns;
  std::optional<std::string> raddr;  // the peer: holdings with another known peer are left out
  std::optional<uint16_t> rport;
  bool json = false;
};

// A socket holding the port for a while.
struct Holding {
  LogEvent first;  // the assign or existing record
  std::optional<LogEvent> release;
  bool from_existing = false;  // held since before its trace started
  enum class End { Released, StillHeldAtStop, OpenAtEndOfLog, UnknownAfterCrash } end = End::Released;
  uint64_t end_ns = 0;  // release, stop or last record time
};

struct Gap {
  uint64_t from_ns, to_ns;
  std::string why;
};

struct WhoAnswer {
  std::vector<Holding> holdings;  // overlapping the window, in time order
  std::vector<Gap> gaps;          // parts of the window not covered
  uint64_t lost_in_window = 0;
  bool hosts_mixed = false;
};

// Events in the order they were written (files oldest first).
WhoAnswer answer_who(const std::vector<LogEvent>& events, const WhoQuery& q);
void print_who(const WhoAnswer& a, const WhoQuery& q, std::ostream& out);

struct WhoOptions;
// The query the options ask (times parsed); nullopt after a one-line error.
std::optional<WhoQuery> who_query_of(const WhoOptions& o, std::ostream& err);
// The whole command: read the logs, answer, print. Returns the exit code.
int run_who(const WhoOptions& o, std::ostream& out, std::ostream& err);

}  // namespace portghost
