#include "common/clock.hpp"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>

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

namespace {
// The text of one second, formatted once: records come in bursts within it.
struct SecondText {
  uint64_t secs = UINT64_MAX;
  char prefix[64];  // "2026-11-22T10:03:12."
  char decimal[24];
  size_t decimal_len = 0;
};
static_assert(sizeof(InstantText::decimal) >= sizeof(SecondText::decimal), "format_instant copies it whole");
constexpr size_t kPrefix = 20;  // u64 nanoseconds end in the year 2554: always 4-digit years

const SecondText& second_text(uint64_t secs) {
  thread_local SecondText c;
  if (secs != c.secs) {
    time_t t_secs = static_cast<time_t>(secs);
    tm t{};
    gmtime_r(&t_secs, &t);
    std::snprintf(c.prefix, sizeof c.prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", t.tm_year + 1900, t.tm_mon + 1,
                  t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
    c.decimal_len = static_cast<size_t>(std::to_chars(c.decimal, c.decimal + sizeof c.decimal, secs).ptr - c.decimal);
    c.secs = secs;
  }
  return c;
}

// The nine digits of the nanoseconds, two at a time.
void put_nanos(char* p, unsigned nanos) {
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  for (int i = 7; i >= 1; i -= 2) {
    std::memcpy(p + i, kPairs + 2 * (nanos % 100), 2);
    nanos /= 100;
  }
  p[0] = static_cast<char>('0' + nanos);
}
}  // namespace

size_t format_rfc3339(uint64_t unix_ns, char (&buf)[kRfc3339Max]) {
  const SecondText& c = second_text(unix_ns / 1'000'000'000);
  std::memcpy(buf, c.prefix, kPrefix);
  put_nanos(buf + kPrefix, static_cast<unsigned>(unix_ns % 1'000'000'000));
  buf[kPrefix + 9] = 'Z';
  return kPrefix + 10;
}

void format_instant(uint64_t unix_ns, InstantText& out) {
  uint64_t secs = unix_ns / 1'000'000'000;
  out.rfc3339_len = format_rfc3339(unix_ns, out.rfc3339);
  if (secs == 0) {  // no leading zeros
    out.decimal_len =
        static_cast<size_t>(std::to_chars(out.decimal, out.decimal + sizeof out.decimal, unix_ns).ptr - out.decimal);
    return;
  }
  const SecondText& c = second_text(secs);
  std::memcpy(out.decimal, c.decimal, sizeof c.decimal);  // all of it: a fixed size is not a call
  std::memcpy(out.decimal + c.decimal_len, out.rfc3339 + kPrefix, 9);
  out.decimal_len = c.decimal_len + 9;
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

// ---- parsing an instant -------------------------------------------------------

namespace {

constexpr uint64_t kNs = 1'000'000'000ULL;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "123" or "123.456" -> ns; nullopt if malformed
std::optional<uint64_t> seconds_to_ns(std::string_view s) {
  auto dot = s.find('.');
  std::string_view whole = s.substr(0, dot), frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(frac)) || whole.size() > 11)
    return std::nullopt;
  uint64_t secs = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), secs);
  uint64_t ns = 0, scale = kNs / 10;
  for (char c : frac.substr(0, 9)) {
    ns += static_cast<uint64_t>(c - '0') * scale;
    scale /= 10;
  }
  return secs * kNs + ns;
}

int num(std::string_view s, size_t pos, size_t len) {
  int v = 0;
  for (size_t i = pos; i < pos + len; i++) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<uint64_t> parse_time(const std::string& text, uint64_t now_ns) {
  std::string_view s = text;
  if (s.empty()) return std::nullopt;
  // relative: -5m
  if (s[0] == '-' && s.size() >= 3) {
    char unit = s.back();
    uint64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
    auto v = seconds_to_ns(s.substr(1, s.size() - 2));
    if (!mult || !v || *v / kNs > 100ULL * 365 * 86400) return std::nullopt;
    uint64_t back = *v * mult;
    return back > now_ns ? std::nullopt : std::optional<uint64_t>(now_ns - back);
  }
  // unix seconds
  if (s.find(':') == std::string_view::npos && s.find('-') == std::string_view::npos) return seconds_to_ns(s);
  // local clock time today: HH:MM[:SS[.frac]]
  if (s.size() >= 4 && s.size() <= 18 && (s[1] == ':' || s[2] == ':') && s.find('-') == std::string_view::npos) {
    size_t c1 = s.find(':');
    int hh = num(s, 0, c1), mm = num(s, c1 + 1, 2), ss = 0;
    uint64_t frac = 0;
    size_t rest = c1 + 3;
    if (rest < s.size()) {
      if (s[rest] != ':') return std::nullopt;
      auto sec = seconds_to_ns(s.substr(rest + 1));
      if (!sec) return std::nullopt;
      ss = static_cast<int>(*sec / kNs);
      frac = *sec % kNs;
    } else if (rest != s.size()) {
      return std::nullopt;
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss > 60) return std::nullopt;
    time_t now = static_cast<time_t>(now_ns / kNs);
    tm t{};
    localtime_r(&now, &t);
    t.tm_hour = hh;
    t.tm_min = mm;
    t.tm_sec = ss;
    t.tm_isdst = -1;
    time_t at = mktime(&t);
    if (at < 0) return std::nullopt;
    return static_cast<uint64_t>(at) * kNs + frac;
  }
  // RFC 3339: YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
      s[16] != ':')
    return std::nullopt;
  int y = num(s, 0, 4), mo = num(s, 5, 2), d = num(s, 8, 2), h = num(s, 11, 2), mi = num(s, 14, 2), se = num(s, 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
    return std::nullopt;
  size_t i = 19;
  uint64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') j++;
    auto f = seconds_to_ns("0" + std::string(s.substr(i, j - i)));
    if (!f || j == i + 1) return std::nullopt;
    frac = *f;
    i = j;
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) {
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = num(s, i + 1, 2), om = num(s, i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;
  }
  tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  t.tm_sec = se;
  int64_t secs = static_cast<int64_t>(timegm(&t)) - offset;
  if (secs < 0) return std::nullopt;
  return static_cast<uint64_t>(secs) * kNs + frac;
}

}  // namespace portghost
