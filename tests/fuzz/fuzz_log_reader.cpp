// libFuzzer target: the JSON Lines reader behind `who` and `stats`, on any
// text (a log a crash, a disk or an attacker could leave behind).
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string_view>

#include "logs/log_reader.hpp"

using namespace portghost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string padded = padded_log_text(text);
  std::ostringstream warn;
  uint64_t kept = 0;
  auto keep = [&](LogEvent&& e) { kept += e.ts_ns & 1; };
  read_log_text("fuzz.jsonl", padded, size, std::nullopt, keep, warn);
  read_log_text("fuzz.jsonl", padded, size, uint16_t{443}, keep, warn);  // the fast skip of other ports
  return 0;
}
