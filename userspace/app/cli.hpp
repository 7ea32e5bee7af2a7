// Command line: CLI11 definitions, parsing and validation (exit 2 on bad input).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/options.hpp"

namespace portghost {

struct CliResult {
  bool run = false;  // false: exit now with exit_code (help, version, error)
  int exit_code = 0;
  std::string command;  // "trace", "top", "who", "stats", "ship" or "schema"
  TraceOptions trace;
  WhoOptions who;
  StatsOptions stats;
  ShipOptions ship;
  SchemaOptions schema;
  size_t top_rows = 10;
};

CliResult parse_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace portghost
