#include "clock.hpp"

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace portghost {

namespace {
int64_t read_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

BootClock::BootClock() : offset_ns_(measure_offset_ns()) {}

void BootClock::resync() { offset_ns_ = measure_offset_ns(); }

uint64_t BootClock::now_boot_ns() { return static_cast<uint64_t>(read_ns(CLOCK_BOOTTIME)); }
uint64_t BootClock::now_unix_ns() { return static_cast<uint64_t>(read_ns(CLOCK_REALTIME)); }

int64_t BootClock::measure_offset_ns() {
  int64_t best_gap = INT64_MAX, best = 0;
  for (int i = 0; i < 5; i++) {
    int64_t b0 = read_ns(CLOCK_BOOTTIME);
    int64_t r = read_ns(CLOCK_REALTIME);
    int64_t b1 = read_ns(CLOCK_BOOTTIME);
    if (b1 - b0 < best_gap) {
      best_gap = b1 - b0;
      best = r - (b0 + (b1 - b0) / 2);
    }
  }
  return best;
}

size_t format_rfc3339(uint64_t unix_ns, char (&buf)[kRfc3339Max]) {
  // Records come in bursts within one second: the date and time text is
  // formatted once per second, the nanoseconds by hand.
  constexpr size_t kPrefix = 20;  // "2026-11-22T10:03:12." (u64 nanoseconds end in the year 2554)
  thread_local uint64_t cached_sec = UINT64_MAX;
  thread_local char cached[64];
  uint64_t secs = unix_ns / 1'000'000'000;
  auto nanos = static_cast<unsigned>(unix_ns % 1'000'000'000);
  if (secs != cached_sec) {
    time_t t_secs = static_cast<time_t>(secs);
    tm t{};
    gmtime_r(&t_secs, &t);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", t.tm_year + 1900, t.tm_mon + 1,
                  t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
    cached_sec = secs;
  }
  std::memcpy(buf, cached, kPrefix);
  for (int i = 8; i >= 0; i--) {
    buf[kPrefix + static_cast<size_t>(i)] = static_cast<char>('0' + nanos % 10);
    nanos /= 10;
  }
  buf[kPrefix + 9] = 'Z';
  return kPrefix + 10;
}

std::string format_rfc3339(uint64_t unix_ns) {
  char buf[kRfc3339Max];
  return std::string(buf, format_rfc3339(unix_ns, buf));
}

std::string format_clock_local(uint64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  auto millis = static_cast<unsigned>((unix_ns % 1'000'000'000) / 1'000'000);
  tm t{};
  localtime_r(&secs, &t);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03u", t.tm_hour, t.tm_min, t.tm_sec, millis);
  return buf;
}

std::string format_duration(uint64_t ns) {
  char buf[32];
  // each unit up to where %.1f would round to 1000.0 of it
  if (ns < 1'000)
    std::snprintf(buf, sizeof buf, "%lluns", static_cast<unsigned long long>(ns));
  else if (ns < 999'950)
    std::snprintf(buf, sizeof buf, "%.1fus", static_cast<double>(ns) / 1e3);
  else if (ns < 999'950'000)
    std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(ns) / 1e6);
  else if (ns < 3600ULL * 1'000'000'000)
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ns) / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.1fh", static_cast<double>(ns) / 3.6e12);
  return buf;
}

}  // namespace portghost
