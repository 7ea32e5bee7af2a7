// libFuzzer target: the parsers of user input: times (`who --at`, `--since`)
// and port ranges (`trace --port-range`).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/clock.hpp"
#include "common/options.hpp"
#include "logs/who.hpp"

using namespace portghost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)parse_time(text, 1'795'307'725'000'000'000ULL);
  if (auto r = parse_port_range(text)) {
    if (r->first > r->second) __builtin_trap();  // a range is never reversed
  }
  return 0;
}
