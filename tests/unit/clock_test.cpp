#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include "common/clock.hpp"

using namespace portghost;

namespace {

int64_t read_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Runs the test body with TZ set, restoring the previous TZ afterwards.
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTz() {
    if (old_)
      setenv("TZ", old_->c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }

 private:
  std::optional<std::string> old_;
};

}  // namespace

TEST(BootClock, ToUnixAddsTheOffset) {
  BootClock c(1'700'000'000'000'000'000LL);
  EXPECT_EQ(c.offset_ns(), 1'700'000'000'000'000'000LL);
  EXPECT_EQ(c.to_unix_ns(0), 1'700'000'000'000'000'000ULL);
  EXPECT_EQ(c.to_unix_ns(5'000'000'123ULL), 1'700'000'005'000'000'123ULL);
}

TEST(BootClock, NegativeAndZeroOffsets) {
  BootClock zero(0);
  EXPECT_EQ(zero.to_unix_ns(42), 42u);
  BootClock neg(-1'000);
  EXPECT_EQ(neg.offset_ns(), -1'000);
  EXPECT_EQ(neg.to_unix_ns(5'000), 4'000u);
}

TEST(BootClock, MeasuredOffsetIsRealtimeMinusBoottime) {
  int64_t before = read_ns(CLOCK_REALTIME) - read_ns(CLOCK_BOOTTIME);
  int64_t measured = BootClock::measure_offset_ns();
  int64_t after = read_ns(CLOCK_REALTIME) - read_ns(CLOCK_BOOTTIME);
  // the true offset only moves if the wall clock is stepped; allow a little
  // scheduling noise around the two reference samples
  const int64_t slack = 50'000'000;  // 50 ms
  EXPECT_GT(measured, std::min(before, after) - slack);
  EXPECT_LT(measured, std::max(before, after) + slack);
}

TEST(BootClock, DefaultConstructorAndResyncMeasure) {
  BootClock c;
  int64_t ref = read_ns(CLOCK_REALTIME) - read_ns(CLOCK_BOOTTIME);
  EXPECT_LT(std::llabs(c.offset_ns() - ref), 50'000'000LL);
  BootClock stale(0);
  stale.resync();
  EXPECT_LT(std::llabs(stale.offset_ns() - ref), 50'000'000LL);
  // converting "now" on the boot clock gives "now" on the wall clock
  uint64_t unix_now = c.to_unix_ns(BootClock::now_boot_ns());
  uint64_t real_now = BootClock::now_unix_ns();
  EXPECT_LT(std::llabs(static_cast<long long>(unix_now - real_now)), 50'000'000LL);
}

TEST(BootClock, NowReadsAreSane) {
  uint64_t b0 = BootClock::now_boot_ns();
  uint64_t b1 = BootClock::now_boot_ns();
  EXPECT_LE(b0, b1);
  EXPECT_GT(b0, 0u);
  EXPECT_GT(BootClock::now_unix_ns(), 1'600'000'000ULL * 1'000'000'000ULL) << "after 2020";
}

TEST(FormatRfc3339, KnownInstants) {
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(format_rfc3339(1), "1970-01-01T00:00:00.000000001Z");
  EXPECT_EQ(format_rfc3339(999'999'999), "1970-01-01T00:00:00.999999999Z");
  EXPECT_EQ(format_rfc3339(1'000'000'000), "1970-01-01T00:00:01.000000000Z");
  EXPECT_EQ(format_rfc3339(1795307725658868961ULL), "2026-11-22T00:35:25.658868961Z");
  EXPECT_EQ(format_rfc3339(1709208000ULL * 1'000'000'000ULL), "2024-02-29T12:00:00.000000000Z") << "leap day";
  EXPECT_EQ(format_rfc3339(946684799ULL * 1'000'000'000ULL + 500), "1999-12-31T23:59:59.000000500Z");
}

TEST(FormatRfc3339, IgnoresTheLocalTimeZone) {
  ScopedTz tz("Asia/Kolkata");
  EXPECT_EQ(format_rfc3339(1795307725658868961ULL), "2026-11-22T00:35:25.658868961Z");
}

TEST(FormatClockLocal, UsesLocalTimeWithMilliseconds) {
  {
    ScopedTz tz("UTC");
    EXPECT_EQ(format_clock_local(0), "00:00:00.000");
    EXPECT_EQ(format_clock_local(1795307725658868961ULL), "00:35:25.658");
  }
  {
    ScopedTz tz("UTC-02");  // POSIX: two hours east of UTC
    EXPECT_EQ(format_clock_local(1795307725658868961ULL), "02:35:25.658");
  }
}

TEST(FormatDuration, Units) {
  EXPECT_EQ(format_duration(0), "0ns");
  EXPECT_EQ(format_duration(999), "999ns");
  EXPECT_EQ(format_duration(1'000), "1.0us");
  EXPECT_EQ(format_duration(1'500), "1.5us");
  EXPECT_EQ(format_duration(1'234'567), "1.2ms");
  EXPECT_EQ(format_duration(999'000'000), "999.0ms");
  EXPECT_EQ(format_duration(15'200'000'000ULL), "15.2s");
  EXPECT_EQ(format_duration(3599ULL * 1'000'000'000ULL), "3599.0s");
  EXPECT_EQ(format_duration(3600ULL * 1'000'000'000ULL), "1.0h");
  EXPECT_EQ(format_duration(2ULL * 3600 * 1'000'000'000ULL + 1'800'000'000'000ULL), "2.5h");
}

TEST(FormatDuration, NeverPrintsAThousandOfAUnit) {
  EXPECT_EQ(portghost::format_duration(999'960), "1.0ms");
  EXPECT_EQ(portghost::format_duration(999'960'000), "1.0s");
  EXPECT_EQ(portghost::format_duration(999'940), "999.9us");
}

// Found by fuzzing the decoder: a record's boot time near 2^64 overflowed a
// signed sum (undefined behaviour); it must wrap like the unsigned it is.
TEST(BootClock, AGarbageBootTimeWrapsInsteadOfOverflowing) {
  BootClock c(1'795'306'265'655'505'470LL);
  EXPECT_EQ(c.to_unix_ns(8'674'882'169'680'776'704ULL), 8'674'882'169'680'776'704ULL + 1'795'306'265'655'505'470ULL);
  BootClock back(-5);
  EXPECT_EQ(back.to_unix_ns(3), UINT64_MAX - 1);
}

// Both texts of an instant agree with each other and with plain formatting,
// across a change of second (the cached part) and at the epoch.
TEST(FormatInstant, DecimalAndRfc3339AgreeAcrossSeconds) {
  const uint64_t instants[] = {0,
                               1,
                               999'999'999,
                               1'000'000'000,
                               1'000'000'001,
                               1795307725658868961ULL,
                               1795307725999999999ULL,
                               1795307726000000000ULL,
                               1795307725000000007ULL,
                               UINT64_MAX};
  for (uint64_t ns : instants) {
    InstantText t;
    format_instant(ns, t);
    EXPECT_EQ(std::string(t.decimal, t.decimal_len), std::to_string(ns));
    EXPECT_EQ(std::string(t.rfc3339, t.rfc3339_len), format_rfc3339(ns));
  }
}
