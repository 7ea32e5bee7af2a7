// who and stats asked of a store that holds rows no portghost ships: a host
// with a tab, a newline or too many bytes, a line with a newline. Anyone
// allowed to insert could write them; they are skipped, counted, and the
// other hosts' answers stay the files'.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.hpp"
#include "fleet_fixture.hpp"
#include "fleet_harness.hpp"
#include "log_maker.hpp"

using namespace pgfleet;

namespace {

// The fleet fixture (one server, a database and a directory per test, the
// default ship state in the test's directory), and rows as a shipper sends.
class StoreRead : public Fleet {
 protected:
  // A row as a shipper would send it, with this host and line.
  std::string row(const std::string& host, uint64_t run, const std::string& line, const std::string& type = "assign") {
    nlohmann::json r = {{"host", host}, {"run", run}, {"seq", 0}, {"type", type}, {"ts_ns", ts_}, {"line", line}};
    return r.dump() + "\n";
  }
  // The same question of the files and of the store.
  std::pair<RunResult, RunResult> ask_both(const std::vector<std::string>& q, const std::string& url) {
    std::vector<std::string> files = q, store = q;
    files.push_back(dir_.path());
    store.insert(store.end(), {"--from", url, "--credentials", cred_});
    return {run_portghost(files), run_portghost(store)};
  }
  uint64_t ts_ = 0;
};

TEST_F(StoreRead, RowsWithAHostNoPortghostShipsAreSkippedAndCounted) {
  LogShape shape;
  shape.sessions = 2;
  shape.records_per_session = 300;
  make_log(dir_ / "events.jsonl", shape);
  std::string url = store_url(*server_, db_);
  RunResult r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--once"});
  ASSERT_EQ(r.rc, 0) << r.err;
  // the asked port, at a time inside the log, from hosts no shipper sends
  uint16_t port = shape.first_port + 1;
  ts_ = shape.t0_ns + 5'000'000;
  auto assign = [&](const std::string& host) {
    nlohmann::json l = {{"type", "assign"},   {"ts_ns", ts_}, {"sock", 99},     {"proto", "tcp"}, {"lport", port},
                        {"laddr", "0.0.0.0"}, {"pid", 666},   {"comm", "evil"}, {"host", host}};
    return l.dump();
  };
  std::string rows;
  for (const std::string& host : {std::string("web\t2"), std::string("web\n3"), std::string(300, 'h')})
    rows += row(host, 77, assign(host));
  rows += row("web-1", 78, "{\"type\":\"start\",\n\"ts_ns\":1}", "start");  // a raw newline in a line: bad lines
  server_->query("INSERT INTO " + db_ + ".records (host, run, seq, type, ts_ns, line) FORMAT JSONEachRow\n" + rows);
  std::vector<std::string> who = {"who",      std::to_string(port),
                                  "--since",  portghost::format_rfc3339(shape.t0_ns),
                                  "--until",  portghost::format_rfc3339(shape.t0_ns + 3'600'000'000'000ULL),
                                  "--format", "json"};
  auto [files, store] = ask_both(who, url);
  ASSERT_EQ(files.rc, 0) << files.err;
  ASSERT_EQ(store.rc, 0) << store.err;
  EXPECT_NE(files.out.find("\"type\":\"holding\""), std::string::npos) << files.out;
  EXPECT_EQ(store.out, files.out);
  EXPECT_EQ(store.out.find("evil"), std::string::npos) << store.out;
  EXPECT_NE(store.err.find("3 records skipped: their host has a control character or over 255 bytes"),
            std::string::npos)
      << store.err;
  EXPECT_NE(store.err.find("not a JSON object"), std::string::npos) << store.err;
  RunResult stats = run_portghost({"stats", "--format", "json", "--from", url, "--credentials", cred_});
  RunResult stats_files = run_portghost({"stats", "--format", "json", dir_.path()});
  ASSERT_EQ(stats.rc, 0) << stats.err;
  EXPECT_EQ(stats.out, stats_files.out);
  EXPECT_NE(stats.err.find("3 records skipped"), std::string::npos) << stats.err;
}

// Lines holding what TabSeparated escapes (a quote, backslashes, an escaped
// tab and newline) come back from the store byte for byte: the answer is the
// file's.
TEST_F(StoreRead, EscapedLinesComeBackAsTheyWere) {
  ts_ = 1'796'500'000'000'000'000ULL;
  nlohmann::json start = {{"type", "start"}, {"ts_ns", ts_}, {"host", "web-9"}, {"run", 5}, {"seq", 0}};
  nlohmann::json assign = {{"type", "assign"}, {"ts_ns", ts_ + 1}, {"sock", 7},
                           {"proto", "tcp"},   {"lport", 4242},    {"laddr", "0.0.0.0"},
                           {"pid", 9},         {"comm", "it's"},   {"cmdline", "a'b\"c\\d\te\nf\\\\g"},
                           {"host", "web-9"},  {"run", 5},         {"seq", 1}};
  nlohmann::json stop = {{"type", "stop"}, {"ts_ns", ts_ + 10}, {"host", "web-9"}, {"run", 5}, {"seq", 2}};
  std::string text = start.dump() + "\n" + assign.dump() + "\n" + stop.dump() + "\n";
  {
    std::ofstream f(dir_ / "events.jsonl");
    f << text;
  }
  std::string url = store_url(*server_, db_);
  RunResult r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--once"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<std::string> who = {"who", "4242", "--at", portghost::format_rfc3339(ts_ + 2), "--format", "json"};
  auto [files, store] = ask_both(who, url);
  ASSERT_EQ(files.rc, 0) << files.err;
  ASSERT_EQ(store.rc, 0) << store.err;
  EXPECT_NE(files.out.find(R"(a'b\"c\\d\te\nf\\\\g)"), std::string::npos) << files.out;
  EXPECT_EQ(store.out, files.out);
  EXPECT_EQ(store.err, "");
}

}  // namespace
