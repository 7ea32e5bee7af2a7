// portghost ship into a real ClickHouse server (Debian's 18.16), and who and
// stats asked of it: every record once, the same answers as the files, and
// nothing lost when the server, the shipper or the log misbehave.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/clock.hpp"
#include "fault_proxy.hpp"
#include "fleet_fixture.hpp"
#include "fleet_harness.hpp"
#include "log_maker.hpp"

using namespace pgfleet;

namespace {

TEST_F(Fleet, SchemaIsForTheOldestServerAndOrderedForThePortQuestion) {
  RunResult r = run_portghost({"schema", "clickhouse"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("CREATE TABLE IF NOT EXISTS portghost.records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ORDER BY (host, proto, lport, ts_ns, run, seq)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ReplacingMergeTree"), std::string::npos) << r.out;
  // the table the tests made from it exists with these columns (18.16 took it)
  std::string cols =
      server_->query("SELECT name FROM system.columns WHERE database = '" + db_ + "' AND table = 'records' FORMAT TSV");
  EXPECT_EQ(cols.substr(0, 14), "host\nrun\nseq\nt") << cols;
  EXPECT_NE(cols.find("\nline\n"), std::string::npos) << cols;
  // --apply (README's command) made it over HTTP; again changes nothing, and
  // a server that refuses the user is one line and exit 1
  RunResult again =
      run_portghost({"schema", "clickhouse", "--apply", store_url(*server_, db_), "--credentials", cred_});
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.out.find(db_ + ".records"), std::string::npos) << again.out;
  std::string bad = dir_ / "bad.conf";
  std::ofstream(bad) << "user=" << server_->user() << "\npassword=wrong\n";
  chmod(bad.c_str(), 0600);
  RunResult refused =
      run_portghost({"schema", "clickhouse", "--apply", store_url(*server_, db_), "--credentials", bad});
  EXPECT_EQ(refused.rc, 1) << refused.err;
  EXPECT_EQ(count(refused.err, "\n"), 1u) << refused.err;
}

// One host, three sessions (the last cut short), rotated into several files:
// every record lands once, a second run sends nothing new, and who and stats
// answer from the store what they answer from the files.
TEST_F(Fleet, ShipsEveryRecordOnceAndWhoAndStatsAgreeWithTheFiles) {
  LogShape shape;
  shape.rotate_bytes = 300'000;
  auto written = make_log(dir_ / "events.jsonl", shape);
  struct stat st {};
  ASSERT_EQ(stat((dir_ / "events.jsonl.2").c_str(), &st), 0) << "the log should span rotated files";
  std::string url = store_url(*server_, db_);
  // the state where releases before kept it by default: beside the log
  std::string legacy = dir_ / ".portghost-ship.state";
  RunResult r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--once", "--state", legacy});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), expected_counts(shape.host, written));
  uint64_t rows = store_rows(*server_, db_);
  // again, by default: the old state is taken over, nothing new is sent,
  // and the position is kept outside the log's directory from now
  r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--once"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("0 records sent"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the position is taken from " + legacy), std::string::npos) << r.err;
  r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--once"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("0 records sent"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("taken from"), std::string::npos) << "its own state now: " << r.err;
  size_t states = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "states"))
    states += e.path().filename().string().rfind("events.jsonl-", 0) == 0;
  EXPECT_EQ(states, 1u);
  EXPECT_EQ(store_rows(*server_, db_), rows);
  expect_who_parity({dir_.path()}, shape);
  expect_parity({dir_.path()}, {"stats", "--format", "json"});
  expect_parity({dir_.path()}, {"stats"});
  // a table made without the sessions view: who scans for the sessions' ends
  server_->query("DROP TABLE " + db_ + ".records_sessions");
  expect_parity({dir_.path()}, {"who", std::to_string(shape.first_port + 1), "--since", at(shape.t0_ns), "--until",
                                at(shape.t0_ns + 3'600'000'000'000ULL)});
}

// The columns the server fills from each line hold the line's values (SQL
// users read them), and the session records have no protocol (who's query
// relies on it).
TEST_F(Fleet, ColumnsHoldTheRecordsValues) {
  LogShape shape;
  shape.sessions = 2;
  shape.records_per_session = 300;
  make_log(dir_ / "events.jsonl", shape);
  std::ofstream(dir_ / "events.jsonl", std::ios::app)
      << R"({"type":"assign","ts":"x","ts_ns":1796500000000000001,"sock":9,"proto":"udp","family":"ipv6",)"
      << R"("laddr":"::1","lport":53,"raddr":null,"rport":null,"how":"bind","ephemeral":false,"pid":7,"tid":8,)"
      << R"("ppid":1,"uid":0,"comm":"a"b\c","thread":"t","exe":"/x y","cmdline":"q {"lport":1, "pid":2}",)"
      << R"("netns":4026531840,"cgroup_id":1,"container":"docker://é","kernel":false,"host":"web-1","run":5,"seq":1})"
      << "\n";
  RunResult r = run_portghost(ship_args(dir_.path(), store_url(*server_, db_)));
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string rows = server_->query(
      "SELECT line, sock, proto, family, laddr, lport, raddr, rport, how, pid, tid, uid, comm, exe, cmdline, netns, "
      "container, duration_ns FROM " +
      db_ + ".records FORMAT JSONEachRow");
  size_t n = 0, checked = 0;
  std::istringstream in(rows);
  std::string text;
  while (std::getline(in, text)) {
    auto row = nlohmann::json::parse(text);
    auto rec = nlohmann::json::parse(row["line"].get<std::string>());
    std::string type = rec["type"];
    n++;
    if (type == "start" || type == "stop" || type == "lost") {
      EXPECT_EQ(row["proto"], "") << text;
      EXPECT_EQ(row["lport"], 0) << text;
      EXPECT_TRUE(row["pid"].is_null()) << text;
      continue;
    }
    for (const char* k : {"proto", "family", "laddr", "how", "comm", "exe", "cmdline", "container"}) {
      if (rec.contains(k) && rec[k].is_string())
        EXPECT_EQ(row[k], rec[k]) << k << " " << text;
      else
        EXPECT_EQ(row[k], "") << k << " " << text;
    }
    // 64-bit values come quoted (ClickHouse's JSON output)
    auto same = [](const nlohmann::json& got, const nlohmann::json& want) {
      return got.is_string() && want.is_number() ? got.get<std::string>() == std::to_string(want.get<uint64_t>())
                                                 : got == want;
    };
    EXPECT_TRUE(same(row["sock"], rec.value("sock", 0))) << text;
    EXPECT_EQ(row["lport"], rec.value("lport", 0)) << text;
    for (const char* k : {"raddr", "rport", "pid", "tid", "uid", "netns", "duration_ns"}) {
      if (rec.contains(k) && !rec[k].is_null())
        EXPECT_TRUE(same(row[k], rec[k])) << k << " " << text;
      else
        EXPECT_TRUE(row[k].is_null()) << k << " " << text;
    }
    checked++;
  }
  EXPECT_GT(checked, 600u);
  EXPECT_GT(n, checked);
}

// The firewall question: a peer and a host narrow the answer the same way.
TEST_F(Fleet, TwoHostsInOneTableAndThePeerQuestion) {
  TempDir a, b;
  LogShape sa, sb;
  sa.host = "web-1";
  sb.host = "web-2";
  sb.t0_ns = sa.t0_ns + 500'000'000;  // overlapping in time, the same ports
  auto wa = make_log(a / "events.jsonl", sa);
  auto wb = make_log(b / "events.jsonl", sb);
  std::string url = store_url(*server_, db_);
  ASSERT_EQ(run_portghost(ship_args(a.path(), url)).rc, 0);
  RunResult r = run_portghost(ship_args(b.path(), url));
  ASSERT_EQ(r.rc, 0) << r.err;
  Counts want = expected_counts(sa.host, wa);
  for (auto& [k, v] : expected_counts(sb.host, wb)) want[k] = v;
  EXPECT_EQ(store_counts(*server_, db_), want);
  expect_who_parity({a.path()}, sa, {"--host", "web-1"});
  expect_who_parity({b.path()}, sb, {"--host", "web-2", "--raddr", "10.0.0.10", "--rport", "443"});
  // both hosts at once: the store orders by host, the files are given in that order
  expect_who_parity({a.path(), b.path()}, sa);
  expect_parity({a.path(), b.path()}, {"stats", "--format", "json"});
  expect_parity({b.path()}, {"stats", "--host", "web-2"});
  // the firewall's flow and its Community ID, from both hosts' records
  std::ifstream logb(b / "events.jsonl");
  std::string text;
  int asked = 0;
  while (std::getline(logb, text) && asked < 3) {
    auto r = nlohmann::json::parse(text);
    if (r["type"] != "assign" || !r["community_id"].is_string()) continue;
    std::string laddr = r["laddr"], raddr = r["raddr"];
    std::string flow =
        laddr + ":" + std::to_string(r["lport"].get<int>()) + " " + raddr + ":" + std::to_string(r["rport"].get<int>());
    std::string reverse = raddr + ":" + std::to_string(r["rport"].get<int>()) + " -> " + laddr + ":" +
                          std::to_string(r["lport"].get<int>());
    std::string when = at(r["ts_ns"].get<uint64_t>() + 1000);
    for (const auto& q : std::vector<std::vector<std::string>>{
             {"who", "--flow", flow, "--at", when, "--format", "json"},
             {"who", "--flow", reverse, "--at", when, "--format", "json", "--host", "web-2"},
             {"who", "--community-id", r["community_id"], "--since", at(sb.t0_ns), "--until",
              at(sb.t0_ns + 3'600'000'000'000ULL), "--format", "json"}})
      expect_parity({a.path(), b.path()}, q);
    asked++;
  }
  EXPECT_EQ(asked, 3);
  // the peer narrows the holders: none of web-2's answers names another known peer
  RunResult w = run_portghost({"who", std::to_string(sb.first_port + 1), "--since", at(sb.t0_ns), "--until",
                               at(sb.t0_ns + 3'600'000'000'000ULL), "--host", "web-2", "--raddr", "10.0.0.10",
                               "--format", "json", "--from", url, "--credentials", cred_});
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_NE(w.out.find("\"raddr\":\"10.0.0.10\""), std::string::npos) << w.out;
  EXPECT_EQ(w.out.find("\"raddr\":\"10.0.0.9\""), std::string::npos) << w.out;
  EXPECT_EQ(w.out.find("\"host\":\"web-1\""), std::string::npos) << w.out;
}

// A server answering 500 (a ClickHouse exception worth a retry): the batch is
// sent again until it is taken.
TEST_F(Fleet, ServerAnswering500IsRetried) {
  LogShape shape;
  shape.sessions = 1;
  auto written = make_log(dir_ / "events.jsonl", shape);
  FaultProxy proxy(server_->http_port(), 3);
  RunResult r = run_portghost(ship_args(dir_.path(), proxy.url() + db_));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(proxy.failed(), 3);
  EXPECT_NE(r.err.find("HTTP 500"), std::string::npos) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), expected_counts(shape.host, written));
  expect_who_parity({dir_.path()}, shape);
}

// Answers no retry can fix end the shipper at once, in one line.
TEST_F(Fleet, BadAnswersAreClearErrors) {
  LogShape shape;
  shape.sessions = 1;
  shape.records_per_session = 10;
  make_log(dir_ / "events.jsonl", shape);
  std::string url = store_url(*server_, db_);
  std::string bad = dir_ / "bad.conf";
  std::ofstream(bad) << "user=" << server_->user() << "\npassword=wrong\n";
  chmod(bad.c_str(), 0600);
  RunResult r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", bad, "--once"}, 20);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
  r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--table", "nosuch", "--once"}, 20);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("no such table"), std::string::npos) << r.err;
  server_->query("CREATE TABLE " + db_ + ".other (x UInt8) ENGINE = Memory");
  r = run_portghost({"ship", dir_.path(), "--to", url, "--credentials", cred_, "--table", "other", "--once"}, 20);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("not portghost's"), std::string::npos) << r.err;
  r = run_portghost({"ship", dir_.path(), "--to", "clickhouse://pg:s3cret@127.0.0.1:1/x", "--once"});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("command line"), std::string::npos) << r.err;
  r = run_portghost({"who", "1", "--from", "http://127.0.0.1:1/"});
  EXPECT_EQ(r.rc, 2) << r.err;
  for (const RunResult& x : {r}) EXPECT_EQ(std::count(x.err.begin(), x.err.end(), '\n'), 1) << x.err;
  EXPECT_EQ(store_rows(*server_, db_), 0u);
}

// The shipper killed -9 mid-way and started again: it resumes from its
// state, and the store still counts every record once.
TEST_F(Fleet, ShipperKilledAndRestartedLosesNothingAndDuplicatesNothing) {
  LogShape shape;
  shape.sessions = 2;
  shape.records_per_session = 40'000;
  shape.rotate_bytes = 4'000'000;
  auto written = make_log(dir_ / "events.jsonl", shape);
  std::string url = store_url(*server_, db_);
  std::vector<std::string> args = ship_args(dir_.path(), url);
  args.pop_back();  // killed while following
  args.insert(args.end(), {"--batch", "2000"});
  std::string state = args[7];
  pid_t pid = portghost_bg(args, dir_ / "ship1.err");
  struct stat st {};
  for (int i = 0; i < 200 && stat(state.c_str(), &st) != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  stop_bg(pid, SIGKILL);
  uint64_t before = store_rows(*server_, db_);
  Counts want = expected_counts(shape.host, written);
  EXPECT_NE(store_counts(*server_, db_), want) << "killed too late to test a resume";
  args.push_back("--once");
  RunResult r = run_portghost(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), want);
  EXPECT_GT(before, 0u);
  expect_who_parity({dir_.path()}, shape);
}

// The server killed -9 in the middle of the batches and started again: the
// shipper waits, resends, and the store ends with every record once.
TEST_F(Fleet, ServerKilledMidBatchAndRestarted) {
  ClickHouseServer own;
  create_records_table(own, "fleet");
  std::string cred = credentials_file(own, dir_);
  LogShape shape;
  shape.sessions = 2;
  shape.records_per_session = 60'000;
  auto written = make_log(dir_ / "events.jsonl", shape);
  pid_t pid = portghost_bg(
      {"ship", dir_.path(), "--to", store_url(own, "fleet"), "--credentials", cred, "--batch", "3000", "--once"},
      dir_ / "ship.err");
  for (int i = 0; i < 500 && store_rows(own, "fleet") == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  own.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  own.restart();
  int status = 0;
  for (int i = 0; i < 1200 && waitpid(pid, &status, WNOHANG) == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string err = text_of(dir_ / "ship.err");
  EXPECT_NE(err.find("retrying"), std::string::npos) << err;
  std::string text =
      own.query("SELECT host, type, uniqExact(run, seq) FROM fleet.records GROUP BY host, type FORMAT TSV");
  Counts got;
  std::istringstream in(text);
  std::string h, t;
  uint64_t n;
  while (in >> h >> t >> n) got[{h, t}] = n;
  EXPECT_EQ(got, expected_counts(shape.host, written)) << err;
  expect_who_parity({dir_.path()}, shape, {}, store_url(own, "fleet"), cred);
}

// The tracer's log rotated while the shipper follows it: every record of
// every file lands once.
TEST_F(Fleet, LogRotatedWhileShipping) {
  std::string url = store_url(*server_, db_);
  std::vector<std::string> args = ship_args(dir_.path(), url);
  args.pop_back();  // following, not --once
  args.insert(args.end(), {"--flush-ms", "50"});
  pid_t pid = portghost_bg(args, dir_ / "ship.err");
  // written in pieces while the shipper follows, the file rotating under it
  LogShape shape;
  shape.rotate_bytes = 150'000;
  shape.sessions = 1;
  shape.records_per_session = 1500;
  std::map<std::string, uint64_t> written;
  Counts want;
  for (int round = 0; round < 6; round++) {
    shape.t0_ns += 3'600'000'000'000ULL;
    for (auto& [k, v] : make_log(dir_ / "events.jsonl", shape)) want[{shape.host, k}] += v;
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
  }
  struct stat st {};
  ASSERT_EQ(stat((dir_ / "events.jsonl.5").c_str(), &st), 0) << "the log should have rotated several times";
  bool all = wait_for_counts(want, 60);
  EXPECT_EQ(stop_bg(pid), 0);
  std::string err = text_of(dir_ / "ship.err");
  EXPECT_TRUE(all) << err;
  EXPECT_EQ(store_counts(*server_, db_), want);
  // six sessions of one host, an hour apart: who answers across all of them
  for (uint16_t port : {shape.first_port, static_cast<uint16_t>(shape.first_port + 1)})
    expect_parity({dir_.path()}, {"who", std::to_string(port), "--since", at(shape.t0_ns - 7 * 3'600'000'000'000ULL),
                                  "--until", at(shape.t0_ns + 3'600'000'000'000ULL), "--format", "json"});
}

}  // namespace

namespace {

// The tracer's rotation, by hand: FILE.N -> FILE.N+1 ..., FILE -> FILE.1.
void rotate_by_hand(const std::string& file) {
  int top = 0;
  struct stat st {};
  while (stat((file + "." + std::to_string(top + 1)).c_str(), &st) == 0) top++;
  for (int i = top; i >= 1; i--)
    ASSERT_EQ(rename((file + "." + std::to_string(i)).c_str(), (file + "." + std::to_string(i + 1)).c_str()), 0);
  ASSERT_EQ(rename(file.c_str(), (file + ".1").c_str()), 0);
}

}  // namespace

// Rotated while the shipper is behind (the server hanging): the copies it
// has not read yet move one name up under it; none may be skipped.
TEST_F(Fleet, RotatedWhileBehindSkipsNoFile) {
  LogShape shape;
  shape.sessions = 1;
  shape.records_per_session = 3000;
  shape.rotate_bytes = 400'000;  // several files already
  Counts want;
  for (auto& [k, v] : make_log(dir_ / "events.jsonl", shape)) want[{shape.host, k}] += v;
  std::vector<std::string> args = ship_args(dir_.path(), store_url(*server_, db_));
  args.pop_back();  // following
  args.insert(args.end(), {"--batch", "200"});
  std::string state = args[7];
  pid_t pid = portghost_bg(args, dir_ / "ship.err");
  struct stat st {};
  for (int i = 0; i < 1000 && stat(state.c_str(), &st) != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // the first batch is in: the server hangs now, and the shipper, two
  // batches on, waits inside the oldest file while the log rotates
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  rotate_by_hand(dir_ / "events.jsonl");
  shape.t0_ns += 3'600'000'000'000ULL;
  shape.rotate_bytes = 0;
  for (auto& [k, v] : make_log(dir_ / "events.jsonl", shape)) want[{shape.host, k}] += v;
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  bool all = wait_for_counts(want, 60);
  EXPECT_EQ(stop_bg(pid), 0);
  std::string err = text_of(dir_ / "ship.err");
  EXPECT_TRUE(all) << err;
  EXPECT_EQ(store_counts(*server_, db_), want);
}

// --rotate-keep 0 cuts the file back in place; written again past the old
// position before the shipper looks (a restart here): nothing is skipped.
TEST_F(Fleet, ALogCutBackAndWrittenAgainIsReadFromItsStart) {
  LogShape shape;
  shape.sessions = 1;
  shape.records_per_session = 500;
  Counts want;
  for (auto& [k, v] : make_log(dir_ / "events.jsonl", shape)) want[{shape.host, k}] += v;
  std::vector<std::string> args = ship_args(dir_.path(), store_url(*server_, db_));
  RunResult r = run_portghost(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_EQ(truncate((dir_ / "events.jsonl").c_str(), 0), 0);
  shape.t0_ns += 3'600'000'000'000ULL;
  shape.records_per_session = 1500;  // longer than before: past the old offset
  for (auto& [k, v] : make_log(dir_ / "events.jsonl", shape)) want[{shape.host, k}] += v;
  r = run_portghost(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("no longer in the log"), std::string::npos) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), want);
}

// A log whose writer died mid-line: --once sends the whole lines and ends.
TEST_F(Fleet, OnceEndsOnAnUnfinishedLastLine) {
  LogShape shape;
  shape.sessions = 1;
  shape.records_per_session = 100;
  auto written = make_log(dir_ / "events.jsonl", shape);
  std::ofstream(dir_ / "events.jsonl", std::ios::app) << R"({"type":"assign","ts":"2026-)";
  RunResult r = run_portghost(ship_args(dir_.path(), store_url(*server_, db_)), 20);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("unfinished last line"), std::string::npos) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), expected_counts(shape.host, written));
}

// who through NAT from the store: the translation records come with the
// others, and the answer is the files' (the socket behind a translated
// port, a datagram's socket long closed, the port later another's).
TEST_F(Fleet, WhoThroughNatAgreesWithTheFiles) {
  const uint64_t s = 1'000'000'000ULL, t0 = 1'796'000'000 * s, run = t0;
  uint64_t seq = 0;
  auto line = [&](const std::string& body, uint64_t ts) {
    return "{\"type\":" + body + ",\"ts\":\"" + at(ts) + "\",\"ts_ns\":" + std::to_string(ts) +
           ",\"host\":\"nat-host\",\"run\":" + std::to_string(run) + ",\"seq\":" + std::to_string(seq++) + "}\n";
  };
  auto port = [&](const char* type, uint64_t sock, uint16_t lport, uint32_t pid, uint64_t ts) {
    return line("\"" + std::string(type) + "\",\"sock\":" + std::to_string(sock) +
                    ",\"proto\":\"udp\",\"family\":\"ipv4\",\"laddr\":\"0.0.0.0\",\"lport\":" + std::to_string(lport) +
                    ",\"raddr\":null,\"rport\":null,\"how\":\"sendmsg\",\"pid\":" + std::to_string(pid) +
                    ",\"comm\":\"dig\",\"netns\":4026532174",
                ts);
  };
  auto nat = [&](const char* type, uint64_t sock, uint16_t lport, uint64_t ts) {
    return line(
        "\"" + std::string(type) + "\",\"sock\":" + std::to_string(sock) +
            ",\"proto\":\"udp\",\"family\":\"ipv4\",\"laddr\":\"10.88.0.5\",\"lport\":" + std::to_string(lport) +
            ",\"raddr\":\"203.0.113.7\",\"rport\":53,\"nat_laddr\":\"192.0.2.1\",\"nat_lport\":61234,"
            "\"nat_raddr\":\"203.0.113.7\",\"nat_rport\":53,\"ct_id\":7,\"pid\":1,\"comm\":\"dig\","
            "\"netns\":4026532174",
        ts);
  };
  // one statement per line: seq counts in the file's order
  std::string log = line("\"start\",\"version\":\"0.1.0\"", t0);
  log += port("assign", 1, 40000, 101, t0 + s);
  log += port("release", 1, 40000, 101, t0 + s + 1000);
  log += nat("nat", 1, 40000, t0 + s + 500);
  log += nat("nat_end", 1, 40000, t0 + 31 * s);
  log += port("assign", 2, 40100, 202, t0 + 40 * s);
  log += nat("nat", 2, 40100, t0 + 40 * s + 100);
  log += line("\"stop\",\"reason\":\"signal\"", t0 + 50 * s);
  {
    std::ofstream f(dir_ / "events.jsonl");
    f << log;
  }
  RunResult r = run_portghost(ship_args(dir_.path(), store_url(*server_, db_)));
  ASSERT_EQ(r.rc, 0) << r.err;
  for (uint64_t when : {t0 + 10 * s, t0 + 35 * s, t0 + 45 * s}) {
    // (at 35 s, between the two translations, the JSON answer is empty)
    if (when != t0 + 35 * s)
      expect_parity({dir_.path()},
                    {"who", "--flow", "192.0.2.1:61234 203.0.113.7:53", "--at", at(when), "--format", "json"});
    expect_parity({dir_.path()}, {"who", "61234", "--laddr", "192.0.2.1", "--at", at(when)});
  }
  RunResult w = run_portghost({"who", "--flow", "203.0.113.7:53 192.0.2.1:61234", "--at", at(t0 + 10 * s), "--format",
                               "json", "--from", store_url(*server_, db_), "--credentials", cred_});
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_NE(w.out.find("\"pid\":101"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("\"nat\":{\"laddr\":\"192.0.2.1\",\"lport\":61234"), std::string::npos) << w.out;
  EXPECT_EQ(holdings_, 2u) << "the JSON answers at 10 s and at 45 s, one holder each";
}
