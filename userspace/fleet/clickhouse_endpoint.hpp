// Where the ClickHouse store is and who portghost is to it: the URL the
// command line names and the credentials kept out of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace portghost {

// Where: clickhouse://HOST[:PORT][/DATABASE]. Who: from a credentials file
// (lines user=NAME and password=SECRET) or the environment
// (PORTGHOST_CLICKHOUSE_USER, PORTGHOST_CLICKHOUSE_PASSWORD); never from the
// command line, where every user of the host can read it.
struct ClickHouseEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 8123;
  std::string database = "portghost";
  std::string table = "records";
  std::string user = "default";
  std::string password;

  std::string base_url() const;
  std::string describe() const;  // host:port/database.table, for messages
  std::string qualified_table() const;
};

// Throws FatalError (usage) for a malformed URL, one with a secret in it, or
// an unreadable credentials file.
ClickHouseEndpoint parse_clickhouse_url(const std::string& url, const std::optional<std::string>& credentials_file);
// The same, for the named table (letters, digits and _, else a usage error).
ClickHouseEndpoint clickhouse_endpoint(const std::string& url, const std::optional<std::string>& credentials_file,
                                       const std::string& table);

}  // namespace portghost
