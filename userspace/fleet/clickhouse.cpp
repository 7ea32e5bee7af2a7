#include "fleet/clickhouse.hpp"

#include <curl/curl.h>
#include <libdeflate.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "common/text.hpp"

namespace portghost {

namespace {

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// ClickHouse's exception code in an answer ("Code: 60, e.displayText() ...").
// Its codes have a few digits: a longer number (whoever sent it) is no code.
std::optional<int> exception_code(std::string_view body) {
  constexpr int kMaxCode = 999'999;
  size_t at = body.find("Code: ");
  if (at == std::string_view::npos) return std::nullopt;
  int code = 0;
  size_t i = at + 6;
  if (i >= body.size() || body[i] < '0' || body[i] > '9') return std::nullopt;
  for (; i < body.size() && body[i] >= '0' && body[i] <= '9'; i++) {
    code = code * 10 + (body[i] - '0');
    if (code > kMaxCode) return std::nullopt;
  }
  return code;
}

std::string first_line(std::string_view body) {
  std::string s(body.substr(0, body.find('\n')));
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return printable(s);
}

// Returning less than was handed over makes libcurl end the transfer.
size_t on_data(char* p, size_t size, size_t n, void* user) {
  auto* sink = static_cast<std::function<bool(std::string_view)>*>(user);
  return (*sink)(std::string_view(p, size * n)) ? size * n : 0;
}

}  // namespace

bool clickhouse_answer_transient(long http_status, std::string_view body) {
  if (http_status == 401 || http_status == 403) return false;
  if (http_status >= 400 && http_status < 500) return http_status == 408 || http_status == 429;
  // 18.16 answers every exception with 500: its code tells a wrong request
  // (no retry can help) from a server in trouble
  if (auto code = exception_code(body)) {
    // TOO_MANY_PARTS (252) is a busy server, but the same code refuses a
    // batch spanning more partitions than newer servers allow: that one
    // fails again however often it is sent
    if (*code == 252 && body.find("partitions") != std::string_view::npos) return false;
    switch (*code) {
      case 16:   // NO_SUCH_COLUMN_IN_TABLE
      case 26:   // CANNOT_PARSE_QUOTED_STRING
      case 27:   // CANNOT_PARSE_INPUT_ASSERTION_FAILED
      case 47:   // UNKNOWN_IDENTIFIER
      case 53:   // TYPE_MISMATCH
      case 60:   // UNKNOWN_TABLE
      case 62:   // SYNTAX_ERROR
      case 81:   // UNKNOWN_DATABASE
      case 117:  // INCORRECT_DATA
      case 164:  // READONLY
      case 192:  // UNKNOWN_USER
      case 193:  // WRONG_PASSWORD
      case 194:  // REQUIRED_PASSWORD
      case 195:  // IP_ADDRESS_NOT_ALLOWED
      case 497:  // ACCESS_DENIED
      case 516:  // AUTHENTICATION_FAILED
        return false;
      default: return true;
    }
  }
  return true;
}

bool clickhouse_transfer_transient(int curl_code) {
  switch (curl_code) {
    case CURLE_PEER_FAILED_VERIFICATION:  // the certificate, or the name in it, does not verify
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CACERT_BADFILE:    // the CAs to verify it by cannot be loaded
    case CURLE_UNSUPPORTED_PROTOCOL:  // a libcurl without https
    case CURLE_NOT_BUILT_IN: return false;
    default: return true;
  }
}

ClickHouseClient::ClickHouseClient(ClickHouseEndpoint ep, long timeout_s) : ep_(std::move(ep)), timeout_s_(timeout_s) {
  curl_global();
  curl_ = curl_easy_init();
  if (!curl_) throw FatalError("cannot start libcurl");
}

ClickHouseClient::~ClickHouseClient() {
  if (curl_) curl_easy_cleanup(curl_);
}

ClickHouseClient::ClickHouseClient(ClickHouseClient&& o) noexcept
    : ep_(std::move(o.ep_)), timeout_s_(o.timeout_s_), curl_(std::exchange(o.curl_, nullptr)) {}

ClickHouseClient& ClickHouseClient::operator=(ClickHouseClient&& o) noexcept {
  if (this != &o) {
    if (curl_) curl_easy_cleanup(curl_);
    ep_ = std::move(o.ep_);
    timeout_s_ = o.timeout_s_;
    curl_ = std::exchange(o.curl_, nullptr);
  }
  return *this;
}

void ClickHouseClient::perform(const std::string& url, std::string_view body, bool gzip_body,
                               const std::function<bool(std::string_view)>& chunk) {
  std::string err_body;
  long status = 0;
  bool ok_status = true, cut = false;
  std::function<bool(std::string_view)> sink = [&](std::string_view d) {
    if (status == 0) curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    ok_status = status == 200;
    if (ok_status) return !(cut = !chunk(d));
    // an error's first lines say what it is: no more is received
    err_body.append(d.substr(0, 4096 - std::min<size_t>(err_body.size(), 4096)));
    return err_body.size() < 4096;
  };
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_reset(curl_);
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl_, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(curl_, CURLOPT_USERNAME, ep_.user.c_str());
  curl_easy_setopt(curl_, CURLOPT_PASSWORD, ep_.password.c_str());
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT, timeout_s_);
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
  set_transport();
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (gzip_body) headers = curl_slist_append(headers, "Content-Encoding: gzip");
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(curl_);
  curl_slist_free_all(headers);
  if (cut) return;  // the reader has what it needs, or its reason to refuse
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && status != 200)) throw_transfer_error(rc, errbuf);
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200) return;
  bool transient = clickhouse_answer_transient(status, err_body);
  std::string why = status == 401 || status == 403 ? "authentication failed for user '" + printable(ep_.user) + "'"
                                                   : first_line(err_body);
  throw ClickHouseError("ClickHouse " + ep_.describe() + ": HTTP " + std::to_string(status) + ": " + why, transient);
}

// The URL's scheme and nothing else (no redirect follows, but should one,
// it could not step down to plain HTTP). Over TLS, the server's certificate
// and the host name in it are verified, always: libcurl's default, said
// here so that no change of default can turn it off.
void ClickHouseClient::set_transport() {
  curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, ep_.tls ? "https" : "http");
  if (!ep_.tls) return;
  curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(curl_, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (ep_.ca_pem.empty()) return;  // the system's CAs
  // the file's CAs alone: not the system's beside them, which would let any
  // public CA vouch for a private server
  curl_blob ca{ep_.ca_pem.data(), ep_.ca_pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &ca);
  curl_easy_setopt(curl_, CURLOPT_CAINFO, nullptr);
  curl_easy_setopt(curl_, CURLOPT_CAPATH, nullptr);
}

bool ClickHouseClient::handshake_unanswered() const {
  if (!ep_.tls) return false;
  // libcurl leaves the phase times at 0 on a failure: a local port says the
  // TCP connection stood, no request bytes that TLS never carried one
  long local_port = 0, request_bytes = 0;
  curl_easy_getinfo(curl_, CURLINFO_LOCAL_PORT, &local_port);
  curl_easy_getinfo(curl_, CURLINFO_REQUEST_SIZE, &request_bytes);
  return local_port > 0 && request_bytes == 0;
}

void ClickHouseClient::throw_transfer_error(int curl_code, const char* errbuf) const {
  std::string why = errbuf[0] ? errbuf : curl_easy_strerror(static_cast<CURLcode>(curl_code));
  std::string cas = ep_.ca_file.empty() ? "the system's CAs" : "the CAs of " + ep_.ca_file;
  if (curl_code == CURLE_PEER_FAILED_VERIFICATION || curl_code == CURLE_SSL_ISSUER_ERROR)
    why = "TLS certificate not trusted by " + cas + ": " + why;
  else if (curl_code == CURLE_SSL_CACERT_BADFILE)
    why = "cannot load " + cas + ": " + why;
  else if (curl_code == CURLE_SSL_CONNECT_ERROR)
    why = "TLS handshake failed: " + why;
  else if (curl_code == CURLE_OPERATION_TIMEDOUT && handshake_unanswered())
    // a plain HTTP port waits for a line end that a ClientHello holds only
    // by chance: the server's silence is the answer of a port without TLS
    why = "TLS handshake failed: no TLS answer (is the port serving plain HTTP?): " + why;
  throw ClickHouseError("ClickHouse " + ep_.describe() + ": " + printable(why),
                        clickhouse_transfer_transient(curl_code));
}

std::string ClickHouseClient::query(std::string_view sql) {
  std::string out;
  perform(ep_.base_url() + "?wait_end_of_query=1", sql, false, [&](std::string_view d) {
    out.append(d);
    return true;
  });
  return out;
}

void ClickHouseClient::query_stream(std::string_view sql, const std::function<bool(std::string_view)>& chunk) {
  // the whole answer before the status: an error half-way cannot pass for
  // the end of the rows
  perform(ep_.base_url() + "?wait_end_of_query=1", sql, false, chunk);
}

void ClickHouseClient::insert_gzip(std::string_view gz_rows) {
  char* q = curl_easy_escape(curl_, ("INSERT INTO " + ep_.qualified_table() + " FORMAT JSONEachRow").c_str(), 0);
  std::string url = ep_.base_url() + "?query=" + q;
  curl_free(q);
  perform(url, gz_rows, true, [](std::string_view) { return true; });
}

std::string gzip_compress(std::string_view text) {
  // libdeflate: whole-buffer, three to four times zlib's speed at level 1
  struct Compressor {
    libdeflate_compressor* c = libdeflate_alloc_compressor(1);
    ~Compressor() {
      if (c) libdeflate_free_compressor(c);
    }
  };
  thread_local Compressor z;
  if (!z.c) throw FatalError("libdeflate: cannot allocate a compressor");
  std::string out;
  out.resize(libdeflate_gzip_compress_bound(z.c, text.size()));
  size_t n = libdeflate_gzip_compress(z.c, text.data(), text.size(), out.data(), out.size());
  if (n == 0) throw FatalError("libdeflate: gzip failed");
  out.resize(n);
  return out;
}

std::string sql_quote(std::string_view text) {
  std::string s = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') s += '\\';
    s += c;
  }
  return s + "'";
}

}  // namespace portghost
