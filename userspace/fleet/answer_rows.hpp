// ClickHouse's answers read within bounds: a row at a time as the answer
// arrives, each piece scanned once, no row longer than a bound, and rows in
// TabSeparated (escaped) so that no value, whatever it holds, can cut a row.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

namespace portghost {

class ClickHouseClient;

// The answer, as it arrives in pieces, cut into rows (without their
// newline). A row longer than max_row is a malformed answer. feed never
// throws (the pieces come from inside the HTTP client): the first fault, or
// an exception of `each`, is kept and the rest of the answer ignored;
// finish() throws it, as it does an answer that ends inside a row.
class AnswerRows {
 public:
  // what: names the answer in messages ("ClickHouse HOST:PORT/DB.TABLE").
  AnswerRows(std::string what, size_t max_row, std::function<void(std::string_view row)> each);
  // false once the answer is known bad: no more of it is wanted
  bool feed(std::string_view piece);
  void finish();

 private:
  std::string what_;
  size_t max_row_;
  std::function<void(std::string_view)> each_;
  std::string carry_;  // the start of a row cut by a piece's end (no newline in it)
  std::exception_ptr failed_;
};

// c.query(sql) as an AnswerRows: throws what that throws after the query.
void query_rows(ClickHouseClient& c, std::string_view sql, size_t max_row,
                const std::function<void(std::string_view row)>& each);
// The whole answer of a query expected to be short: throws ClickHouseError
// (not transient) past max_bytes instead of holding more.
std::string query_bounded(ClickHouseClient& c, std::string_view sql, size_t max_bytes);

// A TabSeparated value as it was (\t, \n, \\ ... undone), appended to out.
void append_unescaped(std::string& out, std::string_view field);

// Rows "run \t host \t line" (TabSeparated) grouped by session (run and
// host), each session's lines handed over as a log text for read_log_text:
// `size` bytes of `text`, the parser's padding after them. A long session
// comes in pieces of about 8 MiB. A row whose host no portghost ships
// (valid_host_name: a control character, or too long) is skipped and
// counted: one such row, which anyone allowed to insert could write, must
// not take every host's answer down. Throws (finish) on a malformed answer.
class SessionRows {
 public:
  using Each = std::function<void(const std::string& key, const std::string& text, size_t size)>;
  SessionRows(const std::string& what, Each each);
  SessionRows(const SessionRows&) = delete;
  SessionRows& operator=(const SessionRows&) = delete;
  bool feed(std::string_view piece) { return rows_.feed(piece); }
  void finish();
  uint64_t bad_hosts() const { return bad_hosts_; }

 private:
  void row(std::string_view r);
  void emit();
  std::string what_;
  Each each_;
  AnswerRows rows_;
  std::string key_, text_, host_;
  uint64_t bad_hosts_ = 0;
};

// The longest answer row: run, host (cut to kMaxHostName + 1 bytes by the
// query), and a line of kMaxLogLine bytes, each byte escaped at worst.
size_t max_answer_row();
// `host` in a SELECT: cut so that no host can make a row too long (one cut
// is still too long for valid_host_name, and is skipped).
std::string selected_host();

}  // namespace portghost
