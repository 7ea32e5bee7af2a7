// The store over TLS, what needs no server: clickhouses:// URLs, the CA
// file, which failed exchanges are worth a retry, and the warning for a
// password sent in clear. (The handshakes themselves: tests/fleet/tls_test.cpp.)
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <sstream>

#include "common/errors.hpp"
#include "fleet/clickhouse.hpp"
#include "test_util.hpp"

using namespace portghost;

namespace {

constexpr char kPem[] = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2FmZQ==\n-----END CERTIFICATE-----\n";

struct EnvGuard {
  EnvGuard() { clear(); }
  ~EnvGuard() { clear(); }
  static void clear() {
    unsetenv("PORTGHOST_CLICKHOUSE_USER");
    unsetenv("PORTGHOST_CLICKHOUSE_PASSWORD");
  }
};

// The usage error parse_clickhouse_url throws, in one line; "" if none.
std::string usage_error(const std::string& url, const std::optional<std::string>& ca_file = std::nullopt) {
  try {
    parse_clickhouse_url(url, std::nullopt, ca_file);
  } catch (const FatalError& e) {
    std::string what = e.what();
    EXPECT_EQ(e.code(), kExitUsage) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what.empty() ? "(empty message)" : what;
  }
  return "";
}

}  // namespace

TEST(ClickHouseTlsUrl, ClickhousesIsHttpsOnPort8443) {
  EnvGuard env;
  auto ep = parse_clickhouse_url("clickhouses://db1", std::nullopt);
  EXPECT_TRUE(ep.tls);
  EXPECT_EQ(ep.host, "db1");
  EXPECT_EQ(ep.port, 8443);
  EXPECT_EQ(ep.database, "portghost");
  EXPECT_EQ(ep.base_url(), "https://db1:8443/");
  EXPECT_TRUE(ep.ca_pem.empty()) << "no CA file: the system's CAs";
  ep = parse_clickhouse_url("clickhouses://10.1.2.3:9440/fleet_1/", std::nullopt);
  EXPECT_EQ(ep.port, 9440);
  EXPECT_EQ(ep.database, "fleet_1");
  EXPECT_EQ(ep.base_url(), "https://10.1.2.3:9440/");
  ep = parse_clickhouse_url("clickhouses://[::1]/x", std::nullopt);
  EXPECT_EQ(ep.host, "[::1]");
  EXPECT_EQ(ep.port, 8443);
  EXPECT_EQ(ep.base_url(), "https://[::1]:8443/");
  // and clickhouse:// stays plain HTTP on 8123
  ep = parse_clickhouse_url("clickhouse://db1", std::nullopt);
  EXPECT_FALSE(ep.tls);
  EXPECT_EQ(ep.port, 8123);
  EXPECT_EQ(ep.base_url(), "http://db1:8123/");
}

TEST(ClickHouseTlsUrl, OtherSchemesAndBadOnesAreUsageErrorsNamingBothForms) {
  EnvGuard env;
  for (const char* bad : {"https://db1:8443/", "http://db1:8123/", "clickhouses:/db1", "CLICKHOUSES://db1",
                          "clickhousess://db1", "clickhouses://", "clickhouses://db1:0", "clickhouses://db1:65536",
                          "clickhouses://db1/bad-name", "clickhouses://[::1"}) {
    std::string e = usage_error(bad);
    EXPECT_NE(e, "") << bad << " was taken";
    EXPECT_NE(e.find("clickhouses://"), std::string::npos) << e;
  }
  std::string e = usage_error("clickhouses://pg:s3cret@db1:8443/x");
  EXPECT_NE(e.find("command line"), std::string::npos) << e;
  EXPECT_EQ(e.find("s3cret"), std::string::npos) << "the error must not echo the secret: " << e;
}

TEST(ClickHouseTlsUrl, CaFileIsReadOnceAndOnlyForClickhouses) {
  EnvGuard env;
  pgtest::TempDir dir;
  std::string ca = dir / "ca.pem";
  pgtest::write_file(ca, kPem);
  auto ep = parse_clickhouse_url("clickhouses://db1", std::nullopt, ca);
  EXPECT_EQ(ep.ca_pem, kPem);
  EXPECT_EQ(ep.ca_file, ca);
  ep = clickhouse_endpoint("clickhouses://db1/fleet", std::nullopt, "t2", ca);
  EXPECT_EQ(ep.ca_pem, kPem) << "the table's form carries it too";
  EXPECT_EQ(ep.qualified_table(), "fleet.t2");
  // a CA file with plain HTTP: a mistake that would send everything in clear
  std::string e = usage_error("clickhouse://db1", ca);
  EXPECT_NE(e.find("clickhouses://"), std::string::npos) << e;
}

TEST(ClickHouseTlsUrl, ACaFileThatCannotServeIsAUsageError) {
  EnvGuard env;
  pgtest::TempDir dir;
  std::string none = dir / "missing.pem", empty = dir / "empty.pem", key = dir / "key.pem";
  pgtest::write_file(empty, "");
  pgtest::write_file(key, "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n");
  for (const std::string& f : {none, empty, key, dir.path()}) {
    std::string e = usage_error("clickhouses://db1", f);
    EXPECT_NE(e, "") << f << " was taken";
    EXPECT_NE(e.find("--ca-file"), std::string::npos) << e;
    EXPECT_NE(e.find(f), std::string::npos) << "names the file: " << e;
  }
}

// Verification failures end a shipper at once: no retry makes a
// certificate trusted. A server down, slow or cut off may be back.
TEST(ClickHouseTlsAnswers, AnUntrustedCertificateIsNoRetry) {
  for (int code :
       {CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_UNSUPPORTED_PROTOCOL})
    EXPECT_FALSE(clickhouse_transfer_transient(code)) << code;
  for (int code : {CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT, CURLE_RECV_ERROR,
                   CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_SSL_CONNECT_ERROR})
    EXPECT_TRUE(clickhouse_transfer_transient(code)) << code;
}

TEST(ClickHouseTlsWarning, APasswordInClearToAnotherHostIsToldOnce) {
  EnvGuard env;
  setenv("PORTGHOST_CLICKHOUSE_PASSWORD", "s3cret", 1);
  auto warned = [](const std::string& url) {
    std::ostringstream err;
    warn_if_cleartext(parse_clickhouse_url(url, std::nullopt), err);
    return err.str();
  };
  for (const char* url : {"clickhouse://db1", "clickhouse://10.0.0.9:8123/x", "clickhouse://[2001:db8::1]"}) {
    std::string w = warned(url);
    EXPECT_EQ(std::count(w.begin(), w.end(), '\n'), 1) << url << ": " << w;
    EXPECT_NE(w.find("clickhouses://"), std::string::npos) << w;
    EXPECT_EQ(w.find("s3cret"), std::string::npos) << w;
  }
  for (const char* url : {"clickhouses://db1", "clickhouse://127.0.0.1:8123", "clickhouse://127.3.2.1",
                          "clickhouse://localhost/x", "clickhouse://[::1]:8123"})
    EXPECT_EQ(warned(url), "") << url;
  EnvGuard::clear();
  EXPECT_EQ(warned("clickhouse://db1"), "") << "no password, nothing to lose";
}
