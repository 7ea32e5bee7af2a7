// Command line: CLI11 definitions, parsing and validation (exit 2 on bad input).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "options.hpp"

namespace portghost {

// `portghost who`, as given (times are parsed when it runs).
struct WhoOptions {
  uint16_t port = 0;
  std::string at, since, until;
  std::optional<std::string> proto, family, laddr, host;
  std::optional<uint64_t> netns;
  bool json = false;
  std::vector<std::string> logs;  // default: the service's log directory
};

// `portghost stats`.
struct StatsOptions {
  std::vector<std::string> logs;
  size_t top = 10;
  bool json = false;
};

struct CliResult {
  bool run = false;   // false: exit now with exit_code (help, version, error)
  int exit_code = 0;
  std::string command;  // "trace", "top", "who" or "stats"
  TraceOptions trace;
  WhoOptions who;
  StatsOptions stats;
  size_t top_rows = 10;
};

extern const char* const kDefaultLogDir;

CliResult parse_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace portghost
