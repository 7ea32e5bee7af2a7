// Where the ClickHouse store is and who portghost is to it: the URL the
// command line names and the credentials kept out of it.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace portghost {

// Where: clickhouse://HOST[:PORT][/DATABASE] (plain HTTP, port 8123), or
// clickhouses://HOST[:PORT][/DATABASE] (HTTPS, port 8443: ClickHouse's
// https_port), whose server must show a certificate for HOST that the
// system's CAs, or those of a CA file, vouch for. Who: from a credentials
// file (lines user=NAME and password=SECRET) or the environment
// (PORTGHOST_CLICKHOUSE_USER, PORTGHOST_CLICKHOUSE_PASSWORD); never from the
// command line, where every user of the host can read it.
struct ClickHouseEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 8123;
  bool tls = false;  // clickhouses://
  std::string database = "portghost";
  std::string table = "records";
  std::string user = "default";
  std::string password;
  // With tls: the CAs the server's certificate is verified by (PEM), read
  // once from ca_file; empty: the system's.
  std::string ca_pem, ca_file;

  std::string base_url() const;
  std::string describe() const;  // host:port/database.table, for messages
  std::string qualified_table() const;
};

// Throws FatalError (usage) for a malformed URL, one with a secret in it, an
// unreadable credentials file, or a CA file that is unreadable, holds no
// certificate or comes with a plain clickhouse:// URL.
ClickHouseEndpoint parse_clickhouse_url(const std::string& url, const std::optional<std::string>& credentials_file,
                                        const std::optional<std::string>& ca_file = std::nullopt);
// The same, for the named table (letters, digits and _, else a usage error).
ClickHouseEndpoint clickhouse_endpoint(const std::string& url, const std::optional<std::string>& credentials_file,
                                       const std::string& table, const std::optional<std::string>& ca_file);

// One line on err when the password would cross the network in clear: plain
// HTTP to a host that is not this one.
void warn_if_cleartext(const ClickHouseEndpoint& ep, std::ostream& err);

}  // namespace portghost
