// portghost and a real ClickHouse server (Debian's 18.16) over HTTPS, with
// certificates the test makes itself: records arrive and answers come back
// through clickhouses:// when the server's certificate verifies, and nothing
// is sent, in one line and at once, when it does not (an unrelated CA, the
// system's CAs, an address the certificate does not name).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "common/clock.hpp"
#include "fleet_harness.hpp"
#include "log_maker.hpp"
#include "test_pki.hpp"

using namespace pgfleet;

namespace {

size_t lines(const std::string& text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class FleetTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(ClickHouseServer::available())
        << "clickhouse-server is not installed (scripts/deps.sh installs it): the TLS tests need a real server";
    ASSERT_TRUE(openssl_available())
        << "openssl is not installed (scripts/deps.sh installs it): the TLS tests make their certificates with it";
    pki_dir_ = new TempDir();
    pki_ = new TestPki(make_test_pki(pki_dir_->path()));
    server_ = new ClickHouseServer("pg", "s3cret", ServerTls{pki_->server_cert, pki_->server_key});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete pki_;
    delete pki_dir_;
    server_ = nullptr;
    pki_ = nullptr;
    pki_dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "no server: see the suite's set-up failure";
    db_ = std::string("t_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    cred_ = credentials_file(*server_, dir_);
    shape_.sessions = 2;
    shape_.records_per_session = 300;
    shape_.ports = 12;
    written_ = make_log(dir_ / "events.jsonl", shape_);
  }
  std::string tls_url(const std::string& host = "127.0.0.1") const { return server_->https_url(host) + db_; }
  // ship the log over TLS once, with `ca` ("" for none: the system's CAs)
  RunResult ship(const std::string& url, const std::string& ca) {
    std::vector<std::string> args = {"ship", dir_.path(), "--to",         url,     "--credentials",
                                     cred_,  "--state",   dir_ / "state", "--once"};
    if (!ca.empty()) args.insert(args.end(), {"--ca-file", ca});
    return run_portghost(args, 30);
  }
  std::vector<std::string> from(const std::string& url, const std::string& ca) {
    std::vector<std::string> a = {"--from", url, "--credentials", cred_};
    if (!ca.empty()) a.insert(a.end(), {"--ca-file", ca});
    return a;
  }
  // A refusal: exit 1 at once, one line naming the TLS failure, and nothing
  // in the table nor in the shipper's state.
  void expect_refused(const RunResult& r, const std::string& why) {
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("portghost: ", 0), 0u) << r.err;
    EXPECT_TRUE(has(r.err, why)) << "expected '" << why << "' in: " << r.err;
    EXPECT_EQ(r.out, "");
  }
  void expect_nothing_sent() {
    EXPECT_EQ(store_rows(*server_, db_), 0u);
    struct stat st {};
    EXPECT_NE(stat((dir_ / "state").c_str(), &st), 0) << "the state says something was sent";
  }

  static TempDir* pki_dir_;
  static TestPki* pki_;
  static ClickHouseServer* server_;
  TempDir dir_;
  std::string db_, cred_;
  LogShape shape_;
  std::map<std::string, uint64_t> written_;
};

TempDir* FleetTls::pki_dir_ = nullptr;
TestPki* FleetTls::pki_ = nullptr;
ClickHouseServer* FleetTls::server_ = nullptr;

}  // namespace

// The table made, the log shipped, and who and stats asked, all through
// clickhouses:// with the CA that signed the server's certificate: every
// record lands once, and the answers are the files'.
TEST_F(FleetTls, ShipsOverTlsAndWhoAndStatsAnswerAsFromTheFiles) {
  RunResult r =
      run_portghost({"schema", "clickhouse", "--apply", tls_url(), "--credentials", cred_, "--ca-file", pki_->ca}, 30);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "created")) << r.out;
  r = ship(tls_url(), pki_->ca);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(has(r.err, "warning")) << r.err;
  uint64_t total = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> want;
  for (const auto& [type, n] : written_) {
    want[{shape_.host, type}] = n;
    total += n;
  }
  EXPECT_TRUE(has(r.err, std::to_string(total) + " records sent")) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), want);  // asked over the plain port: not through the client under test
  EXPECT_EQ(store_rows(*server_, db_), total);
  size_t holders = 0;
  for (uint16_t port : {shape_.first_port, static_cast<uint16_t>(shape_.first_port + 1)}) {
    for (uint64_t t : probe_instants(shape_)) {
      std::vector<std::string> q = {"who", std::to_string(port), "--at", portghost::format_rfc3339(t), "--format",
                                    "json"};
      RunResult a = run_portghost(q + std::vector<std::string>{dir_.path()});
      RunResult b = run_portghost(q + from(tls_url(), pki_->ca));
      RunResult c = run_portghost(q + from(tls_url("localhost"), pki_->ca));  // the name in it, not the address
      ASSERT_EQ(a.rc, 0) << a.err;
      ASSERT_EQ(b.rc, 0) << b.err;
      ASSERT_EQ(c.rc, 0) << c.err;
      EXPECT_EQ(b.out, a.out) << port << " at " << t;
      EXPECT_EQ(c.out, a.out) << port << " at " << t;
      holders += has(a.out, "\"type\":\"holding\"") ? 1 : 0;
    }
  }
  EXPECT_GT(holders, 2u) << "the answers compared were not all empty ones";
  std::vector<std::string> stats = {"stats", "--format", "json"};
  RunResult sf = run_portghost(stats + std::vector<std::string>{dir_.path()});
  RunResult ss = run_portghost(stats + from(tls_url(), pki_->ca));
  ASSERT_EQ(sf.rc, 0) << sf.err;
  ASSERT_EQ(ss.rc, 0) << ss.err;
  EXPECT_EQ(ss.out, sf.out);
}

// A CA that did not sign the server's certificate: refused before a byte of
// the request (credentials, records) is sent, for good: the shipper does
// not retry what no retry can fix.
TEST_F(FleetTls, AnUnrelatedCaIsRefusedInOneLineAndNothingIsSent) {
  create_records_table(*server_, db_);  // over plain HTTP: the table is not what fails
  auto t0 = std::chrono::steady_clock::now();
  RunResult r = ship(tls_url(), pki_->other_ca);
  auto took = std::chrono::steady_clock::now() - t0;
  expect_refused(r, "TLS certificate not trusted by the CAs of " + pki_->other_ca);
  EXPECT_LT(took, std::chrono::seconds(10)) << "a refusal is not retried";
  expect_nothing_sent();
  std::vector<std::string> who = {"who", std::to_string(shape_.first_port), "--at", "-1m"};
  expect_refused(run_portghost(who + from(tls_url(), pki_->other_ca)), "TLS certificate not trusted");
  expect_refused(run_portghost(std::vector<std::string>{"stats"} + from(tls_url(), pki_->other_ca)),
                 "TLS certificate not trusted");
  std::string other_db = db_ + "_2";
  expect_refused(run_portghost({"schema", "clickhouse", "--apply", server_->https_url() + other_db, "--credentials",
                                cred_, "--ca-file", pki_->other_ca}),
                 "TLS certificate not trusted");
  EXPECT_EQ(server_->query("SELECT count() FROM system.databases WHERE name = '" + other_db + "'"), "0\n");
}

// No --ca-file: the system's CAs, which do not know the test's CA.
TEST_F(FleetTls, WithoutACaFileTheSystemsCasDoNotKnowTheTestCa) {
  create_records_table(*server_, db_);
  expect_refused(ship(tls_url(), ""), "TLS certificate not trusted by the system's CAs");
  expect_nothing_sent();
  std::vector<std::string> who = {"who", std::to_string(shape_.first_port), "--at", "-1m"};
  expect_refused(run_portghost(who + from(tls_url(), "")), "TLS certificate not trusted by the system's CAs");
}

// The right CA, but the server reached at an address its certificate does
// not name (127.0.0.2: the same server): the name is verified too.
TEST_F(FleetTls, AnAddressTheCertificateDoesNotNameIsRefused) {
  create_records_table(*server_, db_);
  RunResult r = ship(tls_url("127.0.0.2"), pki_->ca);
  expect_refused(r, "TLS certificate not trusted by the CAs of " + pki_->ca);
  EXPECT_TRUE(has(r.err, "127.0.0.2")) << r.err;
  expect_nothing_sent();
}

// Mix-ups of plain and TLS are told in one line: a CA file with a plain URL
// or a CA file that cannot serve (usage errors, before any connection), and
// TLS spoken to the plain HTTP port.
TEST_F(FleetTls, PlainAndTlsMixUpsAreOneLineErrors) {
  std::string plain = store_url(*server_, db_);
  std::vector<std::string> who = {"who", std::to_string(shape_.first_port), "--at", "-1m"};
  RunResult r = run_portghost(who + from(plain, pki_->ca));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_TRUE(has(r.err, "--ca-file is for a clickhouses:// URL")) << r.err;
  for (const std::string& bad : {dir_ / "missing.pem", pki_->server_key}) {
    r = ship(tls_url(), bad);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_TRUE(has(r.err, "--ca-file: ") && has(r.err, bad)) << r.err;
  }
  std::string tls_to_plain = "clickhouses://127.0.0.1:" + std::to_string(server_->http_port()) + "/" + db_;
  r = run_portghost(who + from(tls_to_plain, pki_->ca));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_TRUE(has(r.err, "TLS handshake failed")) << r.err;
}
