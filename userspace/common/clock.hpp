// Kernel timestamps (CLOCK_BOOTTIME) to wall clock, and their RFC 3339 text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace portghost {

class BootClock {
 public:
  // Measures the offset between CLOCK_REALTIME and CLOCK_BOOTTIME now.
  BootClock();
  explicit BootClock(int64_t offset_ns) : offset_ns_(offset_ns) {}

  // Re-measures the offset (the wall clock may have been stepped).
  void resync();
  int64_t offset_ns() const { return offset_ns_; }
  // Unsigned arithmetic: a garbage kernel time wraps instead of overflowing.
  uint64_t to_unix_ns(uint64_t boot_ns) const { return boot_ns + static_cast<uint64_t>(offset_ns_); }
  static uint64_t now_boot_ns();
  static uint64_t now_unix_ns();

  // realtime - boottime, sampled as the narrowest of a few bracketed reads.
  static int64_t measure_offset_ns();

 private:
  int64_t offset_ns_;
};

// 2026-11-22T10:03:12.123456789Z
std::string format_rfc3339(uint64_t unix_ns);
// The same into buf (no allocation); returns its length.
constexpr size_t kRfc3339Max = 40;
size_t format_rfc3339(uint64_t unix_ns, char (&buf)[kRfc3339Max]);
// Both texts of one instant, as every record's head has them: RFC 3339 and
// the decimal nanoseconds (which end in the same nine digits).
struct InstantText {
  char rfc3339[kRfc3339Max];
  size_t rfc3339_len;
  char decimal[32];  // 20 digits at most; the room past them lets the compiler see copy_small() stay inside
  size_t decimal_len;
};
void format_instant(uint64_t unix_ns, InstantText& out);
// 10:03:12.123 (local time), for the table
std::string format_clock_local(uint64_t unix_ns);
// "1.234ms", "15.2s", ...
std::string format_duration(uint64_t ns);

// An instant as people type it, to unix ns:
// "2026-11-22T10:03:12Z", "2026-11-22T10:03:12.5+02:00", "10:03:12" (today,
// local time), "1795307725" (unix seconds), "-5m" / "-30s" / "-2h" / "-1d".
// now_ns is the current unix time. nullopt if malformed.
std::optional<uint64_t> parse_time(const std::string& text, uint64_t now_ns);

}  // namespace portghost
