// ClickHouse over its HTTP interface (libcurl): where the records of many
// hosts are kept and asked. Only what ClickHouse 18.16 has: HTTP inserts and
// selects, MergeTree tables, UInt64 nanosecond times.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/errors.hpp"
#include "fleet/clickhouse_endpoint.hpp"

typedef void CURL;  // NOLINT(modernize-use-using): libcurl's own spelling

namespace portghost {

// A failed request. transient: worth retrying (the server is down, slow or
// overloaded); otherwise the request itself is wrong (authentication, a
// missing or different table, data it cannot parse) and retrying cannot help.
class ClickHouseError : public FatalError {
 public:
  ClickHouseError(const std::string& msg, bool transient) : FatalError(msg), transient_(transient) {}
  bool transient() const { return transient_; }

 private:
  bool transient_;
};

// Is this ClickHouse answer (HTTP status and body) worth a retry?
bool clickhouse_answer_transient(long http_status, std::string_view body);
// Is an exchange that got no answer (libcurl's CURLcode) worth a retry? A
// server down or slow may be back; a certificate that does not verify, or
// CAs that cannot be loaded, will be the same next time.
bool clickhouse_transfer_transient(int curl_code);

// One connection (kept alive between requests). Not copyable; movable.
class ClickHouseClient {
 public:
  explicit ClickHouseClient(ClickHouseEndpoint ep, long timeout_s = 60);
  ~ClickHouseClient();
  ClickHouseClient(ClickHouseClient&& o) noexcept;
  ClickHouseClient& operator=(ClickHouseClient&& o) noexcept;
  ClickHouseClient(const ClickHouseClient&) = delete;
  ClickHouseClient& operator=(const ClickHouseClient&) = delete;

  const ClickHouseEndpoint& endpoint() const { return ep_; }
  // Runs sql, returns the whole answer.
  std::string query(std::string_view sql);
  // Runs sql, handing the answer over in pieces as it arrives.
  // chunk returns false when it wants no more: the transfer is cut there
  // (a malformed answer is not received to its end).
  void query_stream(std::string_view sql, const std::function<bool(std::string_view)>& chunk);
  // INSERT INTO the table FORMAT JSONEachRow, the rows gzip-compressed.
  void insert_gzip(std::string_view gz_rows);

 private:
  void perform(const std::string& url, std::string_view body, bool gzip_body,
               const std::function<bool(std::string_view)>& chunk);
  void set_transport();
  // connected, but no TLS handshake finished (on a timeout)
  bool handshake_unanswered() const;
  [[noreturn]] void throw_transfer_error(int curl_code, const char* errbuf) const;
  ClickHouseEndpoint ep_;
  long timeout_s_;
  CURL* curl_ = nullptr;
};

// gzip (RFC 1952) of text, at the fastest level: a batch is compressed once.
std::string gzip_compress(std::string_view text);

// A string literal for SQL: 'text' with quotes and backslashes escaped.
std::string sql_quote(std::string_view text);

}  // namespace portghost
