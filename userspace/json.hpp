// Minimal JSON text building: escaping that never lets a byte through raw.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portghost {

// Appends s as a JSON string literal (with quotes). Control characters and
// DEL are \u escapes; bytes that are not valid UTF-8 become the visible text
// \xNN (written as "\\xNN"), so the result is always valid JSON and one line.
void json_append_string(std::string& out, std::string_view s);
std::string json_quote(std::string_view s);

// Builds one JSON object, keys in insertion order.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  JsonObject& str(std::string_view key, std::string_view value);
  JsonObject& num(std::string_view key, uint64_t value);
  JsonObject& snum(std::string_view key, int64_t value);
  JsonObject& boolean(std::string_view key, bool value);
  JsonObject& null(std::string_view key);
  JsonObject& opt_str(std::string_view key, const std::optional<std::string>& v) {
    return v ? str(key, *v) : null(key);
  }
  JsonObject& opt_num(std::string_view key, const std::optional<uint64_t>& v) {
    return v ? num(key, *v) : null(key);
  }
  // value must already be valid JSON
  JsonObject& raw(std::string_view key, std::string_view json);
  void close() { out_ += "}\n"; }

 private:
  void key(std::string_view k);
  std::string& out_;
  bool first_ = true;
};

}  // namespace portghost
