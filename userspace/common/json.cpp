#include "common/json.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace portghost {

namespace {

const char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
size_t utf8_seq_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;  // overlong
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;                                           // surrogates
  return n;
}

// Bytes that go out as they are: printable ASCII but the quote and backslash.
struct PlainTable {
  bool plain[256] = {};
  constexpr PlainTable() {
    for (int c = 0x20; c < 0x7f; c++) plain[c] = c != '"' && c != '\\';
  }
};
constexpr PlainTable kPlain;

}  // namespace

namespace json_detail {

// Eight bytes at a time while none needs escaping, then byte by byte.
size_t plain_prefix(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
    uint64_t del_or_high = ((w + kOnes) | w) & kHigh;  // a byte >= 0x7f
    if (below_space | del_or_high | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) break;
  }
  while (i < s.size() && kPlain.plain[static_cast<unsigned char>(s[i])]) i++;
  return i;
}

char* put_quoted(char* p, std::string_view s, size_t plain) {
  *p++ = '"';
  copy_small(p, s.data(), plain);
  p += plain;
  size_t i = plain;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (kPlain.plain[c]) {
      *p++ = static_cast<char>(c);
      i++;
      continue;
    }
    const char* esc = nullptr;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default: break;
    }
    if (esc) {
      *p++ = esc[0];
      *p++ = esc[1];
      i++;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      std::memcpy(p, "\\u00", 4);  // NOLINT(bugprone-not-null-terminated-result): 4 of 6 bytes
      p[4] = kHex[c >> 4];
      p[5] = kHex[c & 0xf];
      p += 6;
      i++;
      continue;
    }
    size_t n = utf8_seq_len(s, i);
    if (n == 0) {                  // not UTF-8: the visible text \xNN
      std::memcpy(p, "\\\\x", 3);  // NOLINT(bugprone-not-null-terminated-result): 3 of 5 bytes
      p[3] = kHex[c >> 4];
      p[4] = kHex[c & 0xf];
      p += 5;
      i++;
      continue;
    }
    std::memcpy(p, s.data() + i, n);
    p += n;
    i += n;
  }
  *p++ = '"';
  return p;
}

namespace {
struct DigitPairs {
  char d[200] = {};
  constexpr DigitPairs() {
    for (int i = 0; i < 100; i++) {
      d[2 * i] = static_cast<char>('0' + i / 10);
      d[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
  }
};
constexpr DigitPairs kPairs;

constexpr uint64_t kPow10[20] = {1ULL,
                                 10ULL,
                                 100ULL,
                                 1000ULL,
                                 10000ULL,
                                 100000ULL,
                                 1000000ULL,
                                 10000000ULL,
                                 100000000ULL,
                                 1000000000ULL,
                                 10000000000ULL,
                                 100000000000ULL,
                                 1000000000000ULL,
                                 10000000000000ULL,
                                 100000000000000ULL,
                                 1000000000000000ULL,
                                 10000000000000000ULL,
                                 100000000000000000ULL,
                                 1000000000000000000ULL,
                                 10000000000000000000ULL};

// From the bit length: log10(2) ~ 1233/4096, corrected by one comparison.
unsigned decimal_digits(uint64_t v) {
  if (v < 10) return 1;
  auto bits = static_cast<unsigned>(64 - __builtin_clzll(v));
  unsigned t = (bits * 1233) >> 12;
  return t + (v >= kPow10[t]);
}
}  // namespace

namespace {
// Four digits of v < 10000 at q, from two table pairs.
inline void put4(char* q, uint32_t v) {
  std::memcpy(q, kPairs.d + 2 * (v / 100), 2);
  std::memcpy(q + 2, kPairs.d + 2 * (v % 100), 2);
}

// The digits of v < 2^32 ending at q: four per step (one division by
// 10,000 and two table pairs), then the one to four left.
inline void put_u32_back(char* q, uint32_t v) {
  while (v >= 10'000) {
    uint32_t r = v % 10'000;
    v /= 10'000;
    q -= 4;
    put4(q, r);
  }
  if (v >= 100) {
    q -= 2;
    std::memcpy(q, kPairs.d + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    q -= 2;
    std::memcpy(q, kPairs.d + 2 * v, 2);
  } else {
    *--q = static_cast<char>('0' + v);
  }
}
}  // namespace

char* put_u64(char* p, uint64_t v) {
  char* end = p + decimal_digits(v);
  char* q = end;
  // the low eight digits at a time while more follow (a boot-time
  // nanosecond count has 19), then the rest in 32 bits
  while (v > UINT32_MAX) {
    auto low = static_cast<uint32_t>(v % 100'000'000);
    v /= 100'000'000;
    q -= 8;
    put4(q, low / 10'000);
    put4(q + 4, low % 10'000);
  }
  put_u32_back(q, static_cast<uint32_t>(v));
  return end;
}

}  // namespace json_detail

void json_append_string(std::string& out, std::string_view s) {
  using namespace json_detail;
  size_t plain = plain_prefix(s);
  size_t n = out.size();
  out.resize(n + quoted_max(s, plain));
  char* end = put_quoted(out.data() + n, s, plain);
  out.resize(static_cast<size_t>(end - out.data()));
}

std::string json_quote(std::string_view s) {
  std::string out;
  json_append_string(out, s);
  return out;
}

namespace {
constexpr size_t kRoomAhead = 512;  // most port records' lines fit
}  // namespace

JsonObject::JsonObject(std::string& out) : out_(out) {
  size_t base = out_.size();
  out_.resize(base + kRoomAhead);
  p_ = out_.data() + base;
  end_ = out_.data() + out_.size();
  *p_++ = '{';
}

JsonObject::JsonObject(std::string& buf, Overwrite) : out_(buf), overwrite_(true) {
  if (out_.size() < kRoomAhead) out_.resize(kRoomAhead);
  p_ = out_.data();
  end_ = out_.data() + out_.size();
  *p_++ = '{';
}

void JsonObject::grow(size_t n) {
  size_t used = static_cast<size_t>(p_ - out_.data());
  out_.resize(std::max(used + n, out_.size() * 2));
  p_ = out_.data() + used;
  end_ = out_.data() + out_.size();
}

void JsonObject::finish(std::string_view tail) {
  if (done_) return;
  done_ = true;
  char* p = room(tail.size());
  json_detail::copy_small(p, tail.data(), tail.size());
  length_ = static_cast<size_t>(p + tail.size() - out_.data());
  if (!overwrite_) out_.resize(length_);
}

}  // namespace portghost
