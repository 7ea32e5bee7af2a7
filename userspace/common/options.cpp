#include "common/options.hpp"

#include <charconv>

namespace portghost {

const char* const kDefaultLogDir = "/var/log/portghost";

namespace {
std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}
}  // namespace

std::optional<std::pair<uint16_t, uint16_t>> parse_port_range(const std::string& s) {
  auto dash = s.find('-');
  if (dash == std::string::npos) {
    auto p = parse_port(s);
    if (!p) return std::nullopt;
    return std::make_pair(*p, *p);
  }
  auto lo = parse_port(std::string_view(s).substr(0, dash));
  auto hi = parse_port(std::string_view(s).substr(dash + 1));
  if (!lo || !hi || *lo > *hi) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

}  // namespace portghost
