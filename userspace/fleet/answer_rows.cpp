#include "fleet/answer_rows.hpp"

#include <simdjson.h>

#include <utility>

#include "common/errors.hpp"
#include "fleet/clickhouse.hpp"
#include "logs/log_reader.hpp"

namespace portghost {

namespace {

std::string size_text(size_t n) {
  return n >= (2u << 20) ? std::to_string(n >> 20) + " MiB" : std::to_string(n) + " bytes";
}

}  // namespace

AnswerRows::AnswerRows(std::string what, size_t max_row, std::function<void(std::string_view)> each)
    : what_(std::move(what)), max_row_(max_row), each_(std::move(each)) {}

bool AnswerRows::feed(std::string_view piece) {
  if (failed_) return false;
  try {
    while (!piece.empty()) {
      // only the new bytes are looked at: the carry holds no newline
      size_t nl = piece.find('\n');
      size_t n = nl == std::string_view::npos ? piece.size() : nl;
      if (carry_.size() + n > max_row_)
        throw FatalError(what_ + ": the answer holds a row over " + size_text(max_row_) +
                         ": it is malformed (not portghost's records), and was not read further");
      if (nl == std::string_view::npos) {
        carry_.append(piece);
        return true;
      }
      if (carry_.empty()) {
        each_(piece.substr(0, nl));
      } else {
        carry_.append(piece.substr(0, nl));
        each_(carry_);
        carry_.clear();
        if (carry_.capacity() > (1u << 20)) std::string().swap(carry_);
      }
      piece.remove_prefix(nl + 1);
    }
  } catch (...) {
    failed_ = std::current_exception();
    std::string().swap(carry_);
    return false;
  }
  return true;
}

void AnswerRows::finish() {
  if (failed_) std::rethrow_exception(failed_);
  if (!carry_.empty()) throw FatalError(what_ + ": the answer ended inside a row");
}

void query_rows(ClickHouseClient& c, std::string_view sql, size_t max_row,
                const std::function<void(std::string_view)>& each) {
  AnswerRows rows("ClickHouse " + c.endpoint().describe(), max_row, each);
  c.query_stream(sql, [&](std::string_view d) { return rows.feed(d); });
  rows.finish();
}

std::string query_bounded(ClickHouseClient& c, std::string_view sql, size_t max_bytes) {
  std::string out;
  bool over = false;
  c.query_stream(sql, [&](std::string_view d) {
    if (out.size() + d.size() > max_bytes) {
      over = true;
      std::string().swap(out);
      return false;
    }
    out.append(d);
    return true;
  });
  if (over)
    throw ClickHouseError("ClickHouse " + c.endpoint().describe() + ": an answer over " + size_text(max_bytes) +
                              " where a short one was expected: refused",
                          false);
  return out;
}

void append_unescaped(std::string& out, std::string_view field) {
  while (true) {
    size_t b = field.find('\\');
    out.append(field.substr(0, b));
    if (b == std::string_view::npos) return;
    if (b + 1 == field.size()) {
      out += '\\';
      return;
    }
    char c = field[b + 1];
    switch (c) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case '0': out += '\0'; break;
      case 'a': out += '\a'; break;
      case 'v': out += '\v'; break;
      default: out += c;  // \\, \' and the like: the character itself
    }
    field.remove_prefix(b + 2);
  }
}

SessionRows::SessionRows(const std::string& what, Each each)
    : what_(what), each_(std::move(each)), rows_(what, max_answer_row(), [this](std::string_view r) { row(r); }) {}

void SessionRows::row(std::string_view r) {
  size_t t1 = r.find('\t');
  size_t t2 = t1 == std::string_view::npos ? t1 : r.find('\t', t1 + 1);
  if (t2 == std::string_view::npos) throw FatalError(what_ + ": an answer row without its columns");
  host_.clear();
  append_unescaped(host_, r.substr(t1 + 1, t2 - t1 - 1));
  if (!valid_host_name(host_)) {
    bad_hosts_++;
    return;
  }
  std::string_view key = r.substr(0, t2);
  if (key != key_) {
    emit();
    key_.assign(key);
  }
  append_unescaped(text_, r.substr(t2 + 1));
  text_ += '\n';
  if (text_.size() > (8u << 20)) emit();  // a long session, in pieces
}

void SessionRows::emit() {
  if (text_.empty()) return;
  size_t size = text_.size();
  text_.resize(size + simdjson::SIMDJSON_PADDING);
  each_(key_, text_, size);
  text_.clear();
}

void SessionRows::finish() {
  rows_.finish();
  emit();
}

size_t max_answer_row() { return 20 + 1 + 2 * (kMaxHostName + 1) + 1 + 2 * kMaxLogLine; }

std::string selected_host() { return "substring(host, 1, " + std::to_string(kMaxHostName + 1) + ")"; }

}  // namespace portghost
