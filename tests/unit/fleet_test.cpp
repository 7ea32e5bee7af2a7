// The fleet's pieces that need no server: URLs and credentials, which
// ClickHouse answers are worth a retry, a log line as a table row, the
// shipper's state file, gzip.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>

#include "common/errors.hpp"
#include "fleet/clickhouse.hpp"
#include "fleet/records_table.hpp"
#include "fleet/shipper.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::parse_json;

namespace {

struct EnvGuard {
  EnvGuard() {
    unsetenv("PORTGHOST_CLICKHOUSE_USER");
    unsetenv("PORTGHOST_CLICKHOUSE_PASSWORD");
  }
  ~EnvGuard() {
    unsetenv("PORTGHOST_CLICKHOUSE_USER");
    unsetenv("PORTGHOST_CLICKHOUSE_PASSWORD");
  }
};

std::string temp_file(const std::string& text) {
  char name[] = "/tmp/pg-unit-XXXXXX";
  int fd = mkstemp(name);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return name;
}

}  // namespace

TEST(ClickHouseUrl, DefaultsAndParts) {
  EnvGuard env;
  auto ep = parse_clickhouse_url("clickhouse://db1", std::nullopt);
  EXPECT_EQ(ep.host, "db1");
  EXPECT_EQ(ep.port, 8123);
  EXPECT_EQ(ep.database, "portghost");
  EXPECT_EQ(ep.user, "default");
  EXPECT_EQ(ep.base_url(), "http://db1:8123/");
  ep = parse_clickhouse_url("clickhouse://10.1.2.3:18123/fleet_1/", std::nullopt);
  EXPECT_EQ(ep.host, "10.1.2.3");
  EXPECT_EQ(ep.port, 18123);
  EXPECT_EQ(ep.database, "fleet_1");
  EXPECT_EQ(ep.describe(), "10.1.2.3:18123/fleet_1.records");
  ep = parse_clickhouse_url("clickhouse://[::1]:9/x", std::nullopt);
  EXPECT_EQ(ep.host, "[::1]");
  EXPECT_EQ(ep.port, 9);
  EXPECT_EQ(ep.base_url(), "http://[::1]:9/");
  ep = parse_clickhouse_url("clickhouse://[::1]", std::nullopt);
  EXPECT_EQ(ep.port, 8123);
}

TEST(ClickHouseUrl, BadOnesAreUsageErrors) {
  EnvGuard env;
  for (const char* bad : {"http://db1:8123/", "clickhouse://", "clickhouse://db1:0", "clickhouse://db1:65536",
                          "clickhouse://db1:http", "clickhouse://db1/bad-name", "clickhouse://db1/a;drop",
                          "clickhouse://[::1", "clickhouse://[::1]x", "clickhouse://:8123/x"}) {
    try {
      parse_clickhouse_url(bad, std::nullopt);
      ADD_FAILURE() << bad;
    } catch (const FatalError& e) {
      EXPECT_EQ(e.code(), kExitUsage) << bad;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << bad;
    }
  }
}

TEST(ClickHouseUrl, SecretsNeverOnTheCommandLine) {
  EnvGuard env;
  try {
    parse_clickhouse_url("clickhouse://pg:s3cret@db1:8123/x", std::nullopt);
    FAIL();
  } catch (const FatalError& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << "the error must not echo the secret";
  }
  for (const char* url : {"clickhouse://admin:s3cr/et@db1/portghost", "clickhouse://a:b:s3cret@db1"}) {
    try {
      parse_clickhouse_url(url, std::nullopt);
      ADD_FAILURE() << url;
    } catch (const FatalError& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cr"), std::string::npos) << e.what();
    }
  }
}

TEST(ClickHouseUrl, CredentialsFromTheEnvironmentThenTheFile) {
  EnvGuard env;
  setenv("PORTGHOST_CLICKHOUSE_USER", "envuser", 1);
  setenv("PORTGHOST_CLICKHOUSE_PASSWORD", "envpw", 1);
  auto ep = parse_clickhouse_url("clickhouse://db1", std::nullopt);
  EXPECT_EQ(ep.user, "envuser");
  EXPECT_EQ(ep.password, "envpw");
  std::string f = temp_file("# shipper\n user = pg \npassword=p=w d\n\n");
  ep = parse_clickhouse_url("clickhouse://db1", f);
  EXPECT_EQ(ep.user, "pg");
  EXPECT_EQ(ep.password, "p=w d");
  unlink(f.c_str());
  // a secret every user may read, or others may rewrite, is refused; its
  // group may read it
  f = temp_file("user=pg\npassword=x\n");
  for (mode_t m : {0644, 0604, 0620}) {
    chmod(f.c_str(), m);
    try {
      parse_clickhouse_url("clickhouse://db1", f);
      ADD_FAILURE() << "mode " << std::oct << m;
    } catch (const FatalError& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_NE(std::string(e.what()).find("refusing the credentials file"), std::string::npos) << e.what();
    }
  }
  chmod(f.c_str(), 0640);
  EXPECT_EQ(parse_clickhouse_url("clickhouse://db1", f).user, "pg");
  unlink(f.c_str());
  f = temp_file("pg:secret\n");
  EXPECT_THROW(parse_clickhouse_url("clickhouse://db1", f), FatalError);
  unlink(f.c_str());
  EXPECT_THROW(parse_clickhouse_url("clickhouse://db1", std::string("/nonexistent/creds")), FatalError);
  EXPECT_THROW(clickhouse_endpoint("clickhouse://db1", std::nullopt, "bad.table", std::nullopt), FatalError);
  EXPECT_EQ(clickhouse_endpoint("clickhouse://db1", std::nullopt, "t2", std::nullopt).qualified_table(),
            "portghost.t2");
}

TEST(ClickHouseAnswers, WhatIsWorthARetry) {
  EXPECT_TRUE(clickhouse_answer_transient(500, "Code: 241, e.displayText() = DB::Exception: Memory limit"));
  EXPECT_TRUE(clickhouse_answer_transient(503, "Service Unavailable"));
  EXPECT_TRUE(clickhouse_answer_transient(429, ""));
  EXPECT_FALSE(clickhouse_answer_transient(500, "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist."));
  EXPECT_FALSE(clickhouse_answer_transient(500, "Code: 117, e.displayText() = DB::Exception: Unknown field"));
  EXPECT_FALSE(clickhouse_answer_transient(500, "Code: 193, e.displayText() = DB::Exception: Wrong password"));
  EXPECT_FALSE(clickhouse_answer_transient(401, ""));
  EXPECT_FALSE(clickhouse_answer_transient(404, "Code: 999"));
  // a number no int holds is no code (it overflowed before: UBSan's finding);
  // an answer without a known code is the server's trouble
  EXPECT_TRUE(clickhouse_answer_transient(500, "Code: 99999999999999999999999999, e.displayText() = x"));
  EXPECT_TRUE(clickhouse_answer_transient(500, "Code: 1000060, e.displayText() = x")) << "not 60 in disguise";
  EXPECT_TRUE(clickhouse_answer_transient(500, "Code: 252, e.displayText() = DB::Exception: Too many parts (300)"));
  EXPECT_FALSE(clickhouse_answer_transient(
      500, "Code: 252, e.displayText() = DB::Exception: Too many partitions for single INSERT block (more than 100)"));
}

TEST(RecordsTable, ALineBecomesARow) {
  LegacySession session;
  std::string rows;
  std::string start = R"({"type":"start","ts":"x","ts_ns":100,"host":"web-1","boot_id":"b","run":100,"seq":0})";
  std::string assign =
      R"({"type":"assign","ts":"x","ts_ns":150,"sock":7,"proto":"udp","family":"ipv4","laddr":"10.0.0.5","lport":60302,)"
      R"("raddr":null,"rport":null,"how":"sendmsg","ephemeral":true,"pid":42,"tid":43,"ppid":1,"uid":0,"comm":"dig\"x",)"
      R"("thread":"dig","exe":"/usr/bin/dig","cmdline":"dig a","netns":4026531840,"cgroup_id":1,"container":null,)"
      R"("kernel":false,"host":"web-1","run":100,"seq":1})";
  auto id = append_record_row(rows, start, session);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->run, 100u);
  EXPECT_EQ(id->seq, 0u);
  id = append_record_row(rows, assign, session);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->seq, 1u);
  auto lines = pgtest::split_lines(rows);
  ASSERT_EQ(lines.size(), 2u);
  auto parsed = parse_json(lines[1]);
  ASSERT_TRUE(parsed) << lines[1];
  const auto& row = *parsed;
  EXPECT_EQ(row.at("host").str(), "web-1");
  EXPECT_EQ(row.at("type").str(), "assign");
  EXPECT_EQ(row.at("ts_ns").u64(), 150u);
  EXPECT_EQ(row.at("run").u64(), 100u);
  EXPECT_EQ(row.at("seq").u64(), 1u);
  EXPECT_EQ(row.at("line").str(), assign) << "the line is kept as written";
  // the identity and the line: every other column the server fills from it
  EXPECT_EQ(row.keys(), (std::vector<std::string>{"host", "run", "seq", "type", "ts_ns", "line"}));
  for (const auto& c : records_columns()) {
    bool sent = std::find(row.obj_keys.begin(), row.obj_keys.end(), c.name) != row.obj_keys.end();
    EXPECT_EQ(sent, c.materialized.empty()) << c.name;
  }
}

// The host keys every question to the store: a tab or newline in it (a
// forged or broken line) would break the store's tab-separated answers, so
// such a line is not shipped (the shipper counts it as a bad line).
TEST(RecordsTable, AHostWithAControlCharacterOrTooLongIsNoRow) {
  LegacySession session;
  std::string rows;
  for (const char* host : {"web\\t7", "web\\n7", "we\\u0001b"}) {
    std::string line = std::string(R"({"type":"start","ts":"x","ts_ns":100,"run":100,"seq":0,"host":")") + host + "\"}";
    EXPECT_FALSE(append_record_row(rows, line, session)) << line;
  }
  std::string long_host(kMaxHostName + 1, 'a');
  EXPECT_FALSE(append_record_row(
      rows, R"({"type":"start","ts":"x","ts_ns":100,"run":100,"seq":0,"host":")" + long_host + "\"}", session));
  EXPECT_TRUE(rows.empty()) << rows;
  EXPECT_TRUE(
      append_record_row(rows, R"({"type":"start","ts":"x","ts_ns":100,"run":100,"seq":0,"host":"web-7"})", session));
}

TEST(RecordsTable, OlderLogsWithoutRunAndSeqAreNumberedFromTheirStart) {
  LegacySession session;
  std::string rows;
  EXPECT_FALSE(append_record_row(rows, R"({"type":"lost","ts":"x","ts_ns":90,"count":1,"total":1})", session))
      << "no start seen yet: nothing to name it by";
  auto id = append_record_row(rows, R"({"type":"start","ts":"x","ts_ns":100,"host":"h"})", session);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->run, 100u);
  EXPECT_EQ(id->seq, 0u);
  id = append_record_row(rows, R"({"type":"lost","ts":"x","ts_ns":110,"count":1,"total":1,"host":"h"})", session);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->run, 100u);
  EXPECT_EQ(id->seq, 1u);
  EXPECT_EQ(pgtest::split_lines(rows).size(), 2u);
}

TEST(RecordsTable, WhatIsNotARecordAddsNoRow) {
  LegacySession session;
  std::string rows;
  for (const char* bad :
       {"", "garbage", "[1,2]", R"({"type":"assign"})", R"({"type":"future","ts_ns":1,"run":1,"seq":1})",
        R"({"type":"assign","ts_ns":"1","run":1,"seq":1})", "{\"type\":\"assign\",\"ts_ns\":1"})
    EXPECT_FALSE(append_record_row(rows, bad, session)) << bad;
  EXPECT_TRUE(rows.empty());
  // a record of a known type is a row, whatever else it holds
  auto id = append_record_row(rows, R"({"type":"release","ts_ns":5,"sock":1,"lport":70000,"run":1,"seq":3})", session);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->seq, 3u);
}

TEST(RecordsTable, SchemaNamesEveryColumn) {
  std::string s = records_schema("db", "t");
  EXPECT_EQ(s.rfind("CREATE DATABASE IF NOT EXISTS db;\nCREATE TABLE IF NOT EXISTS db.t\n", 0), 0u) << s;
  for (const auto& c : records_columns())
    EXPECT_NE(s.find("    " + c.name + " " + c.type + (c.materialized.empty() ? "" : " MATERIALIZED ")),
              std::string::npos)
        << c.name;
}

TEST(ShipState, RoundTripAndDamage) {
  pgtest::TempDir dir;
  std::string path = dir / "state";
  ShipPosition p;
  p.ino = 12;
  p.offset = 3456;
  p.last = {1796549956046236213ULL, 163};
  p.has_last = true;
  p.shipped = 99;
  save_ship_state(path, p);
  auto q = load_ship_state(path);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->ino, 12u);
  EXPECT_EQ(q->offset, 3456u);
  EXPECT_TRUE(q->has_last);
  EXPECT_EQ(q->last.run, 1796549956046236213ULL);
  EXPECT_EQ(q->last.seq, 163u);
  EXPECT_EQ(q->shipped, 99u);
  std::ofstream(path) << "{\"ino\":";
  EXPECT_THROW(load_ship_state(path), FatalError);
  unlink(path.c_str());
  EXPECT_FALSE(load_ship_state(path));
}

// The state's directory may be another user's (the log's, after --user):
// links planted at the state's name or its temporary name are replaced,
// never followed, and a state that is a link is not read.
TEST(ShipState, PlantedLinksAreNeverFollowed) {
  pgtest::TempDir dir;
  std::string victim = dir / "victim", state = dir / "state";
  pgtest::write_file(victim, "precious\n");
  ASSERT_EQ(symlink(victim.c_str(), (state + ".tmp").c_str()), 0);
  ASSERT_EQ(symlink(victim.c_str(), state.c_str()), 0);
  EXPECT_THROW(load_ship_state(state), FatalError) << "a state that is a link is not read";
  ShipPosition p;
  p.ino = 7;
  p.offset = 8;
  save_ship_state(state, p);
  EXPECT_EQ(pgtest::read_file(victim), "precious\n");
  struct stat st {};
  ASSERT_EQ(lstat(state.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "the link at the state's name was replaced";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto q = load_ship_state(state);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->offset, 8u);
  EXPECT_NE(lstat((state + ".tmp").c_str(), &st), 0) << "no temporary file is left";
}

// The state's directory and file must be root's or the shipper's, and the
// directory writable by nobody else: another user could otherwise plant a
// state whose position skips records, never to be sent.
TEST(ShipState, AStateAnotherUserCouldWriteIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give files away";
  pgtest::TempDir dir;
  std::string state = dir / "state";
  ShipPosition p;
  p.offset = 5;
  save_ship_state(state, p);
  ASSERT_EQ(chown(state.c_str(), 4242, 4242), 0);
  EXPECT_THROW(load_ship_state(state), FatalError) << "a state of another user's";
  ASSERT_EQ(chown(state.c_str(), 0, 0), 0);
  ASSERT_EQ(load_ship_state(state)->offset, 5u);
  ASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  EXPECT_THROW(load_ship_state(state), FatalError) << "a directory others can write";
  EXPECT_THROW(save_ship_state(state, p), FatalError);
  ASSERT_EQ(chmod(dir.path().c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.path().c_str(), 4242, 4242), 0);
  try {
    load_ship_state(state);
    ADD_FAILURE() << "a directory of another user's";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("owned by uid 4242"), std::string::npos) << e.what();
  }
  ASSERT_EQ(chown(dir.path().c_str(), 0, 0), 0);
  save_ship_state(state, p);
  EXPECT_EQ(load_ship_state(state)->offset, 5u);
}

// By default the state is kept outside the log's directory (another user's
// after the tracer's --user), one per log.
TEST(ShipState, TheDefaultIsOutsideTheLogsDirectory) {
  pgtest::TempDir logs, states;
  const char* before = getenv("STATE_DIRECTORY");
  std::string saved = before ? before : "";
  setenv("STATE_DIRECTORY", states.path().c_str(), 1);
  ASSERT_EQ(mkdir((logs / "sub").c_str(), 0700), 0);
  std::string a = default_ship_state(logs / "events.jsonl"), b = default_ship_state(logs / "other.jsonl");
  EXPECT_EQ(a.rfind(states.path() + "/events.jsonl-", 0), 0u) << a;
  EXPECT_NE(a, b);
  EXPECT_EQ(a, default_ship_state(logs / "sub/../events.jsonl")) << "the same log, however named";
  EXPECT_EQ(legacy_ship_state(logs / "events.jsonl"), logs / ".portghost-ship.state");
  if (before)
    setenv("STATE_DIRECTORY", saved.c_str(), 1);
  else
    unsetenv("STATE_DIRECTORY");
}

TEST(Gzip, WhatGoesInComesOut) {
  std::string text;
  for (int i = 0; i < 10000; i++) text += "{\"type\":\"assign\",\"seq\":" + std::to_string(i) + "}\n";
  std::string gz = gzip_compress(text);
  EXPECT_LT(gz.size(), text.size() / 5);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(text.size() + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(gz.data());
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  EXPECT_EQ(out, text);
  EXPECT_EQ(sql_quote("it's a \\ test"), "'it\\'s a \\\\ test'");
}
