// Helpers shared by the unit tests: a temporary directory, kernel record
// builders and a small strict JSON parser (keys kept in document order).
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernel/events.hpp"

namespace pgtest {

// mkdtemp under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/portghost-unit-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, std::string_view content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    lines.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return lines;
}

// ---- kernel records ---------------------------------------------------------

inline void set_ipv4(__u8 (&dst)[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  std::memset(dst, 0, sizeof dst);
  dst[0] = a;
  dst[1] = b;
  dst[2] = c;
  dst[3] = d;
}

inline void set_cstr(char* dst, size_t cap, std::string_view s) {
  std::memset(dst, 0, cap);
  std::memcpy(dst, s.data(), std::min(cap, s.size()));
}

inline pg_sock_event raw_sock(uint8_t kind) {
  pg_sock_event r{};
  r.kind = kind;
  r.how = PG_HOW_BIND;
  r.proto = 6;
  r.family = 2;
  return r;
}

// A decoded SockEvent, as the RecordBuilder and SocketTable receive them.
inline portghost::SockEvent sock_event(portghost::SockEvent::Kind kind, uint64_t cookie, uint16_t lport,
                                       uint64_t ts_boot_ns, uint32_t pid = 0) {
  portghost::SockEvent e{};
  e.kind = kind;
  e.cookie = cookie;
  e.lport = lport;
  e.ts_boot_ns = ts_boot_ns;
  e.pid = pid;
  e.tid = pid;
  e.proto = portghost::Proto::Tcp;
  e.family = portghost::Family::Ipv4;
  e.laddr = "0.0.0.0";
  return e;
}

// ---- strict JSON ---------------------------------------------------------------

struct JValue {
  enum class Type { Null, Bool, Num, Str, Arr, Obj } type = Type::Null;
  bool b = false;
  std::string text;  // number text or decoded string
  std::vector<JValue> arr;
  // an object's members, in order (two vectors: a pair with the incomplete
  // JValue inside JValue is refused by some compilers)
  std::vector<std::string> obj_keys;
  std::vector<JValue> obj_vals;

  bool is_null() const { return type == Type::Null; }
  const JValue* find(std::string_view key) const {
    for (size_t i = 0; i < obj_keys.size(); i++)
      if (obj_keys[i] == key) return &obj_vals[i];
    return nullptr;
  }
  const JValue& at(std::string_view key) const {
    const JValue* v = find(key);
    if (!v) throw std::out_of_range("no key " + std::string(key));
    return *v;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& key : obj_keys) k.push_back(key);
    return k;
  }
  uint64_t u64() const {
    if (type != Type::Num) throw std::runtime_error("not a number");
    return std::stoull(text);
  }
  const std::string& str() const {
    if (type != Type::Str) throw std::runtime_error("not a string");
    return text;
  }
  bool boolean() const {
    if (type != Type::Bool) throw std::runtime_error("not a boolean");
    return b;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  // The whole text must be one value (surrounding whitespace allowed).
  std::optional<JValue> parse_document() {
    JValue v;
    ws();
    if (!value(v, 0)) return std::nullopt;
    ws();
    if (i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  bool eof() const { return i_ >= s_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(s_[i_]); }
  void ws() {
    while (!eof() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) i_++;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  bool value(JValue& v, int depth) {
    if (depth > 64 || eof()) return false;
    char c = s_[i_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') {
      v.type = JValue::Type::Str;
      return string(v.text);
    }
    if (c == 't') {
      v.type = JValue::Type::Bool;
      v.b = true;
      return lit("true");
    }
    if (c == 'f') {
      v.type = JValue::Type::Bool;
      v.b = false;
      return lit("false");
    }
    if (c == 'n') {
      v.type = JValue::Type::Null;
      return lit("null");
    }
    return number(v);
  }

  bool object(JValue& v, int depth) {
    v.type = JValue::Type::Obj;
    i_++;  // {
    ws();
    if (!eof() && s_[i_] == '}') {
      i_++;
      return true;
    }
    for (;;) {
      ws();
      std::string key;
      if (eof() || s_[i_] != '"' || !string(key)) return false;
      ws();
      if (eof() || s_[i_] != ':') return false;
      i_++;
      ws();
      JValue child;
      if (!value(child, depth + 1)) return false;
      v.obj_keys.push_back(std::move(key));
      v.obj_vals.push_back(std::move(child));
      ws();
      if (eof()) return false;
      if (s_[i_] == ',') {
        i_++;
        continue;
      }
      if (s_[i_] == '}') {
        i_++;
        return true;
      }
      return false;
    }
  }

  bool array(JValue& v, int depth) {
    v.type = JValue::Type::Arr;
    i_++;  // [
    ws();
    if (!eof() && s_[i_] == ']') {
      i_++;
      return true;
    }
    for (;;) {
      ws();
      JValue child;
      if (!value(child, depth + 1)) return false;
      v.arr.push_back(std::move(child));
      ws();
      if (eof()) return false;
      if (s_[i_] == ',') {
        i_++;
        continue;
      }
      if (s_[i_] == ']') {
        i_++;
        return true;
      }
      return false;
    }
  }

  bool number(JValue& v) {
    size_t start = i_;
    auto digit = [&] { return !eof() && s_[i_] >= '0' && s_[i_] <= '9'; };
    if (!eof() && s_[i_] == '-') i_++;
    if (!digit()) return false;
    if (s_[i_] == '0') {
      i_++;
    } else {
      while (digit()) i_++;
    }
    if (!eof() && s_[i_] == '.') {
      i_++;
      if (!digit()) return false;
      while (digit()) i_++;
    }
    if (!eof() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      i_++;
      if (!eof() && (s_[i_] == '+' || s_[i_] == '-')) i_++;
      if (!digit()) return false;
      while (digit()) i_++;
    }
    v.type = JValue::Type::Num;
    v.text = std::string(s_.substr(start, i_ - start));
    return true;
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool hex4(uint32_t& cp) {
    if (i_ + 4 > s_.size()) return false;
    cp = 0;
    for (int k = 0; k < 4; k++) {
      char c = s_[i_++];
      cp <<= 4;
      if (c >= '0' && c <= '9')
        cp |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        cp |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        cp |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return false;
    }
    return true;
  }

  // Strict: raw control characters rejected, raw bytes must be valid UTF-8
  // (no overlong forms, no surrogates, nothing above U+10FFFF).
  bool raw_utf8(std::string& out) {
    unsigned char c = peek();
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      out += static_cast<char>(c);
      i_++;
      return true;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i_ + n > s_.size()) return false;
    for (size_t k = 1; k < n; k++) {
      auto b = static_cast<unsigned char>(s_[i_ + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false;
    out.append(s_.substr(i_, n));
    i_ += n;
    return true;
  }

  bool string(std::string& out) {
    i_++;  // opening quote
    for (;;) {
      if (eof()) return false;
      unsigned char c = peek();
      if (c == '"') {
        i_++;
        return true;
      }
      if (c < 0x20) return false;
      if (c != '\\') {
        if (!raw_utf8(out)) return false;
        continue;
      }
      i_++;
      if (eof()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (!lit("\\u") || !hex4(lo) || lo < 0xdc00 || lo > 0xdfff) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return false;
          }
          put_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

inline std::optional<JValue> parse_json(std::string_view s) { return JsonParser(s).parse_document(); }

}  // namespace pgtest
