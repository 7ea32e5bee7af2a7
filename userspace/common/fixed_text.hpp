// Short text held in place: an address or a task name is copied as a plain
// value (no allocation, no call), which the per-record path does several
// times per record.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>

namespace portghost {

// At most N bytes; a longer text is cut at N.
template <size_t N>
class FixedText {
  static_assert(N < 256, "the length is one byte");

 public:
  FixedText() = default;
  FixedText(std::string_view s) { assign(s.data(), s.size()); }  // NOLINT(google-explicit-constructor)
  FixedText& operator=(std::string_view s) {
    assign(s.data(), s.size());
    return *this;
  }
  void assign(const char* s, size_t n) {
    len_ = static_cast<uint8_t>(n < N ? n : N);
    std::memcpy(buf_, s, len_);
  }
  // A kernel char array up to its first NUL. s must have max readable
  // bytes (a char array of that size): at 16 all of them are read.
  void assign_cstr(const char* s, size_t max) {
    if (max == 16 && N == 16) {  // a task's name: all 16 bytes copied (a fixed size is not a call)
      len_ = static_cast<uint8_t>(len16(s));
      std::memcpy(buf_, s, 16);
      return;
    }
    assign(s, strnlen(s, max));
  }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)
  std::string_view view() const { return {buf_, len_}; }
  std::string str() const { return std::string(view()); }
  bool empty() const { return len_ == 0; }
  size_t size() const { return len_; }
  void clear() { len_ = 0; }
  friend bool operator==(const FixedText& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const FixedText& a, const FixedText& b) { return a.view() == b.view(); }
  friend std::ostream& operator<<(std::ostream& os, const FixedText& t) { return os << t.view(); }

 private:
  // strnlen(s, 16) without a call (a task's name, TASK_COMM_LEN): the
  // first zero byte of two words.
  static size_t len16(const char* s) {
    static_assert(std::endian::native == std::endian::little, "the first zero byte is the lowest");
    constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
    for (size_t i = 0; i < 16; i += 8) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      uint64_t zero = (w - kOnes) & ~w & kHigh;  // exact for the first zero byte (little-endian)
      if (zero) return i + static_cast<size_t>(__builtin_ctzll(zero)) / 8;
    }
    return 16;
  }
  char buf_[N];
  uint8_t len_ = 0;
};

// An address's text: INET6_ADDRSTRLEN less its NUL.
using AddrText = FixedText<45>;
// A task's name: TASK_COMM_LEN.
using CommText = FixedText<16>;

}  // namespace portghost
