// Minimal JSON text building: escaping that never lets a byte through raw.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace portghost {

// Appends s as a JSON string literal (with quotes). Control characters and
// DEL are \u escapes; bytes that are not valid UTF-8 become the visible text
// \xNN (written as "\\xNN"), so the result is always valid JSON and one line.
void json_append_string(std::string& out, std::string_view s);
std::string json_quote(std::string_view s);

namespace json_detail {
// Leading bytes of s that need no escaping.
size_t plain_prefix(std::string_view s);
// Bytes s takes as a JSON string, at most, when `plain` lead bytes are plain.
inline size_t quoted_max(std::string_view s, size_t plain) { return plain + (s.size() - plain) * 6 + 2; }
// Writes s quoted and escaped at p; returns the end.
char* put_quoted(char* p, std::string_view s, size_t plain);
// Copies n bytes: up to 32 by two overlapping moves, not a call.
inline void copy_small(char* p, const char* s, size_t n) {
  if (n > 16 && n <= 32) {
    std::memcpy(p, s, 16);
    std::memcpy(p + n - 16, s + n - 16, 16);
  } else if (n >= 8 && n <= 16) {
    std::memcpy(p, s, 8);
    std::memcpy(p + n - 8, s + n - 8, 8);
  } else if (n >= 4 && n < 8) {
    std::memcpy(p, s, 4);
    std::memcpy(p + n - 4, s + n - 4, 4);
  } else if (n < 4) {
    for (size_t i = 0; i < n; i++) p[i] = s[i];
  } else {
    std::memcpy(p, s, n);
  }
}
// Decimal text of v at p (at most 20 bytes); returns the end. Four digits per
// step (two pairs from a table), written backwards from the end that the
// digit count gives.
char* put_u64(char* p, uint64_t v);
}  // namespace json_detail

// A count kept as its decimal text and counted up in place (a line number
// written on every line, without formatting it each time).
class DecimalCounter {
 public:
  DecimalCounter() { reset(); }
  void reset() {
    len_ = 1;
    digits_[kMax - 1] = '0';
  }
  std::string_view text() const { return {digits_ + kMax - len_, len_}; }
  void next() {
    for (size_t i = kMax; i-- > kMax - len_;) {
      if (digits_[i] != '9') {
        digits_[i]++;
        return;
      }
      digits_[i] = '0';
    }
    if (len_ < kMax) digits_[kMax - ++len_] = '1';  // 2^64 lines: never
  }

 private:
  static constexpr size_t kMax = 20;
  char digits_[kMax];
  size_t len_;
};

// Builds one JSON object at the end of `out`, keys in insertion order. It
// writes through a cursor into room reserved ahead (one bounds check per
// value); `out` must not be touched until close() or end().
class JsonObject {
 public:
  explicit JsonObject(std::string& out);
  // Writes over buf from its start and leaves its size alone, so the room
  // stays for the next object: the text is buf[0, length()) once closed.
  struct Overwrite {};
  JsonObject(std::string& buf, Overwrite);
  size_t length() const { return length_; }
  ~JsonObject() { finish(); }
  JsonObject(const JsonObject&) = delete;
  JsonObject& operator=(const JsonObject&) = delete;

  // The value methods are inline: with a literal key, the key's text is
  // copied by a few stores rather than a call.
  JsonObject& str(std::string_view key, std::string_view value) {
    size_t plain = json_detail::plain_prefix(value);
    char* p = put_key(room(key.size() + kKeyExtra + json_detail::quoted_max(value, plain)), key);
    p_ = json_detail::put_quoted(p, value, plain);
    return *this;
  }
  // A value of our own making (a time, an address, a name from a fixed
  // set): printable ASCII without '"' or '\\', so written as it is.
  JsonObject& ascii(std::string_view key, std::string_view value) {
    char* p = put_key(room(key.size() + kKeyExtra + value.size() + 2), key);
    *p++ = '"';
    json_detail::copy_small(p, value.data(), value.size());
    p += value.size();
    *p++ = '"';
    p_ = p;
    return *this;
  }
  JsonObject& num(std::string_view key, uint64_t value) {
    p_ = json_detail::put_u64(put_key(room(key.size() + kKeyExtra + 20), key), value);
    return *this;
  }
  JsonObject& snum(std::string_view key, int64_t value) {
    char* p = put_key(room(key.size() + kKeyExtra + 20), key);
    p_ = std::to_chars(p, p + 20, value).ptr;
    return *this;
  }
  // value must already be valid JSON
  JsonObject& raw(std::string_view key, std::string_view json) {
    char* p = put_key(room(key.size() + kKeyExtra + json.size()), key);
    json_detail::copy_small(p, json.data(), json.size());
    p_ = p + json.size();
    return *this;
  }
  // Members rendered before (",\"k\":v,..."), after at least one other.
  JsonObject& members(std::string_view text) {
    char* p = room(text.size());
    json_detail::copy_small(p, text.data(), text.size());
    p_ = p + text.size();
    return *this;
  }
  JsonObject& boolean(std::string_view key, bool value) { return value ? raw(key, "true") : raw(key, "false"); }
  JsonObject& null(std::string_view key) { return raw(key, "null"); }
  JsonObject& opt_str(std::string_view key, const std::optional<std::string_view>& v) {
    return v ? str(key, *v) : null(key);
  }
  JsonObject& opt_num(std::string_view key, const std::optional<uint64_t>& v) { return v ? num(key, *v) : null(key); }
  // Any unsigned width (a pid, a port) without a conversion to optional<uint64_t>.
  template <class T>
  JsonObject& opt_num(std::string_view key, const std::optional<T>& v) {
    return v ? num(key, *v) : null(key);
  }
  void close() { finish("}\n"); }  // a whole line
  void end() { finish("}"); }      // a value inside another

 private:
  char* room(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) grow(n);
    return p_;
  }
  void grow(size_t n);
  // ,"key":   (keys are our own ASCII literals: never escaped)
  char* put_key(char* p, std::string_view k) {
    if (!first_) *p++ = ',';
    first_ = false;
    *p++ = '"';
    std::memcpy(p, k.data(), k.size());
    p += k.size();
    *p++ = '"';
    *p++ = ':';
    return p;
  }
  static constexpr size_t kKeyExtra = 4;  // , " " :
  void finish(std::string_view tail = {});

  std::string& out_;
  char* p_;
  char* end_;
  bool first_ = true;
  bool done_ = false;
  bool overwrite_ = false;
  size_t length_ = 0;
};

// The members that fill(o) writes, as text that goes after another member
// (",\"k\":v,..."; JsonObject::members takes it): rendered once, reused.
template <class Fill>
std::string json_members(Fill&& fill) {
  std::string s;
  {
    JsonObject o(s);
    fill(o);
    o.end();
  }
  if (s.size() <= 2) return "";  // {}: nothing written
  s.front() = ',';               // {"k":v,...}  ->  ,"k":v,...
  s.pop_back();
  return s;
}

}  // namespace portghost
