// Helpers shared by the unit tests: a temporary directory, kernel record
// builders and a strict JSON reader (keys kept in document order).
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

#include <nlohmann/json.hpp>

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

// The tree of a parsed document, members in document order.
inline JValue to_jvalue(const nlohmann::ordered_json& j) {
  JValue v;
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: break;
    case nlohmann::ordered_json::value_t::boolean:
      v.type = JValue::Type::Bool;
      v.b = j.get<bool>();
      break;
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
    case nlohmann::ordered_json::value_t::number_float:
      v.type = JValue::Type::Num;
      v.text = j.dump();
      break;
    case nlohmann::ordered_json::value_t::string:
      v.type = JValue::Type::Str;
      v.text = j.get<std::string>();
      break;
    case nlohmann::ordered_json::value_t::array:
      v.type = JValue::Type::Arr;
      for (const auto& e : j) v.arr.push_back(to_jvalue(e));
      break;
    case nlohmann::ordered_json::value_t::object:
      v.type = JValue::Type::Obj;
      for (const auto& [k, e] : j.items()) {
        v.obj_keys.push_back(k);
        v.obj_vals.push_back(to_jvalue(e));
      }
      break;
    default: break;
  }
  return v;
}

// Strict (RFC 8259, valid UTF-8, one value with surrounding whitespace only):
// nlohmann/json, the integration tests' reader too.
inline std::optional<JValue> parse_json(std::string_view s) {
  try {
    return to_jvalue(nlohmann::ordered_json::parse(s));
  } catch (const nlohmann::ordered_json::exception&) {
    return std::nullopt;
  }
}

}  // namespace pgtest
