// pg_mklog: a synthetic portghost log of about RECORDS assigns, for the fleet
// benchmark (scripts/bench-fleet.sh). The fleet tests' own generator, written
// by the tracer's JSON sink: assigns with their releases, existing sockets,
// losses, exhaustions and warnings, over SESSIONS sessions (the last one
// without a stop), on 2000 ports from 40000, one millisecond apart.
// Deterministic: the same arguments give the same log.
//
//   pg_mklog FILE RECORDS [HOST] [SESSIONS]     (HOST web-1, SESSIONS 4)
//
// Prints lines=N (every line written) and the count of each record type.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "log_maker.hpp"

namespace {

bool parse_count(const char* s, unsigned long long& v) {
  char* end = nullptr;
  v = std::strtoull(s, &end, 10);
  return *s && *end == '\0' && v > 0;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long long records = 0, sessions = 4;
  if (argc < 3 || argc > 5 || !parse_count(argv[2], records) || (argc == 5 && !parse_count(argv[4], sessions)) ||
      sessions > 1000 || records < sessions || records / sessions > 0xffffffffULL) {
    std::fprintf(stderr, "usage: pg_mklog FILE RECORDS [HOST] [SESSIONS]   (RECORDS >= SESSIONS > 0)\n");
    return 2;
  }
  pgfleet::LogShape shape;
  shape.host = argc >= 4 ? argv[3] : "web-1";
  shape.sessions = static_cast<unsigned>(sessions);
  shape.records_per_session = static_cast<unsigned>(records / sessions);
  shape.first_port = 40000;
  shape.ports = 2000;
  try {
    auto written = pgfleet::make_log(argv[1], shape);
    unsigned long long lines = 0;
    std::string by_type;
    for (const auto& [type, n] : written) {
      lines += n;
      by_type += " " + type + "=" + std::to_string(n);
    }
    std::printf("lines=%llu%s\n", lines, by_type.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pg_mklog: %s\n", e.what());
    return 1;
  }
  return 0;
}
