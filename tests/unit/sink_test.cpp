#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <sstream>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "common/clock.hpp"
#include "sinks/json_sink.hpp"
#include "trace/sink.hpp"
#include "sinks/table_sink.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::JValue;
using pgtest::parse_json;

namespace {

const uint64_t kTs = 1795307725658868961ULL;  // 2026-11-22T00:35:25.658868961Z

PortRecord assign_record() {
  PortRecord r;
  r.type = PortRecord::Type::Assign;
  r.ts_ns = kTs;
  r.sock = 12345;
  r.proto = Proto::Tcp;
  r.family = Family::Ipv4;
  r.laddr = "10.0.0.5";
  r.lport = 49152;
  r.raddr = "93.184.216.34";
  r.rport = 443;
  r.how = How::Connect;
  r.ephemeral = true;
  r.pid = 4242;
  r.tid = 4243;
  r.ppid = 1;
  r.uid = 1000;
  r.comm = "curl";
  r.thread = "curl";
  r.exe = "/usr/bin/curl";
  r.cmdline = "curl -s https://example.com/";
  r.netns = 4026531840u;
  r.cgroup_id = 777;
  r.container = "docker://abc";
  r.kernel = false;
  return r;
}

PortRecord release_record() {
  PortRecord r;
  r.type = PortRecord::Type::Release;
  r.ts_ns = kTs + 1'500'000;
  r.sock = 12345;
  r.proto = Proto::Tcp;
  r.family = Family::Ipv4;
  r.laddr = "10.0.0.5";
  r.lport = 49152;
  r.raddr = "93.184.216.34";
  r.rport = 443;
  r.duration_ns = 1'500'000;
  r.pid = 4242;
  r.comm = "curl";
  r.timewait = true;
  return r;
}

JValue parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n') << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  auto v = parse_json(line);
  if (!v) {
    ADD_FAILURE() << "invalid JSON: " << line;
    return {};
  }
  EXPECT_EQ(v->type, JValue::Type::Obj);
  return *v;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream ss(s);
  std::vector<std::string> w;
  std::string x;
  while (ss >> x) w.push_back(x);
  return w;
}

const std::vector<std::string> kAssignKeys = {
    "type", "ts",  "ts_ns", "sock", "proto", "family",  "laddr", "lport", "raddr",     "rport",     "how",   "ephemeral",
    "pid",  "tid", "ppid",  "uid",  "comm",  "thread", "exe",   "cmdline", "netns", "cgroup_id", "container", "kernel"};
const std::vector<std::string> kReleaseKeys = {"type",       "ts",         "ts_ns",      "sock",   "proto",
                                               "family",     "laddr",      "lport",      "raddr",  "rport",
                                               "duration_ns", "pid",       "comm",       "timewait", "closer_pid",
                                               "closer_tid", "closer_comm"};

}  // namespace

TEST(JsonSink, AssignRecordKeyOrderAndValues) {
  std::string line = JsonSink::render(assign_record());
  JValue v = parse_line(line);
  EXPECT_EQ(v.keys(), kAssignKeys);
  EXPECT_EQ(v.at("type").str(), "assign");
  EXPECT_EQ(v.at("ts").str(), "2026-11-22T00:35:25.658868961Z");
  EXPECT_EQ(v.at("ts_ns").u64(), kTs);
  EXPECT_EQ(v.at("sock").u64(), 12345u);
  EXPECT_EQ(v.at("proto").str(), "tcp");
  EXPECT_EQ(v.at("family").str(), "ipv4");
  EXPECT_EQ(v.at("laddr").str(), "10.0.0.5");
  EXPECT_EQ(v.at("lport").u64(), 49152u);
  EXPECT_EQ(v.at("raddr").str(), "93.184.216.34");
  EXPECT_EQ(v.at("rport").u64(), 443u);
  EXPECT_EQ(v.at("how").str(), "connect");
  EXPECT_TRUE(v.at("ephemeral").boolean());
  EXPECT_EQ(v.at("pid").u64(), 4242u);
  EXPECT_EQ(v.at("tid").u64(), 4243u);
  EXPECT_EQ(v.at("ppid").u64(), 1u);
  EXPECT_EQ(v.at("uid").u64(), 1000u);
  EXPECT_EQ(v.at("comm").str(), "curl");
  EXPECT_EQ(v.at("thread").str(), "curl");
  EXPECT_EQ(v.at("exe").str(), "/usr/bin/curl");
  EXPECT_EQ(v.at("cmdline").str(), "curl -s https://example.com/");
  EXPECT_EQ(v.at("netns").u64(), 4026531840u);
  EXPECT_EQ(v.at("cgroup_id").u64(), 777u);
  EXPECT_EQ(v.at("container").str(), "docker://abc");
  EXPECT_FALSE(v.at("kernel").boolean());
  // exact text of the start of the line
  EXPECT_EQ(line.rfind(R"({"type":"assign","ts":"2026-11-22T00:35:25.658868961Z","ts_ns":1795307725658868961,)", 0),
            0u)
      << line;
}

TEST(JsonSink, ReleaseRecordKeyOrderAndValues) {
  std::string line = JsonSink::render(release_record());
  JValue v = parse_line(line);
  EXPECT_EQ(v.keys(), kReleaseKeys);
  EXPECT_EQ(v.at("type").str(), "release");
  EXPECT_EQ(v.at("ts_ns").u64(), kTs + 1'500'000);
  EXPECT_EQ(v.at("duration_ns").u64(), 1'500'000u);
  EXPECT_EQ(v.at("pid").u64(), 4242u);
  EXPECT_EQ(v.at("comm").str(), "curl");
  EXPECT_TRUE(v.at("timewait").boolean());
  EXPECT_EQ(line,
            R"({"type":"release","ts":"2026-11-22T00:35:25.660368961Z","ts_ns":1795307725660368961,"sock":12345,)"
            R"("proto":"tcp","family":"ipv4","laddr":"10.0.0.5","lport":49152,"raddr":"93.184.216.34","rport":443,)"
            R"("duration_ns":1500000,"pid":4242,"comm":"curl","timewait":true,"closer_pid":null,"closer_tid":null,)"
            R"("closer_comm":null})"
            "\n");
}

TEST(JsonSink, ReleaseNamesTheCloserApartFromTheHolder) {
  PortRecord r = release_record();
  r.closer_pid = 5151;
  r.closer_tid = 5152;
  r.closer_comm = "sshd";
  r.mptcp = true;
  JValue v = parse_line(JsonSink::render(r));
  EXPECT_EQ(v.at("pid").u64(), 4242u) << "the holder stays the holder";
  EXPECT_EQ(v.at("comm").str(), "curl");
  EXPECT_EQ(v.at("closer_pid").u64(), 5151u);
  EXPECT_EQ(v.at("closer_tid").u64(), 5152u);
  EXPECT_EQ(v.at("closer_comm").str(), "sshd");
  EXPECT_TRUE(v.at("mptcp").boolean());
}

TEST(JsonSink, ReleaseWithUnknownHolderHasNulls) {
  PortRecord r = release_record();
  r.duration_ns.reset();
  r.pid.reset();
  r.comm.reset();
  r.raddr.reset();
  r.rport.reset();
  r.timewait = false;
  JValue v = parse_line(JsonSink::render(r));
  EXPECT_EQ(v.keys(), kReleaseKeys);
  for (const char* k : {"raddr", "rport", "duration_ns", "pid", "comm", "closer_pid", "closer_tid", "closer_comm"})
    EXPECT_TRUE(v.at(k).is_null()) << k;
  EXPECT_FALSE(v.at("timewait").boolean());
}

TEST(JsonSink, KernelAssignHasNullOwner) {
  PortRecord r;
  r.type = PortRecord::Type::Assign;
  r.ts_ns = kTs;
  r.sock = 1;
  r.proto = Proto::Udp;
  r.family = Family::Ipv6;
  r.laddr = "::";
  r.lport = 2049;
  r.how = How::Bind;
  r.ephemeral = false;
  r.kernel = true;
  JValue v = parse_line(JsonSink::render(r));
  EXPECT_EQ(v.keys(), kAssignKeys) << "every key present even when null";
  EXPECT_EQ(v.at("proto").str(), "udp");
  EXPECT_EQ(v.at("family").str(), "ipv6");
  EXPECT_EQ(v.at("laddr").str(), "::");
  EXPECT_EQ(v.at("how").str(), "bind");
  EXPECT_FALSE(v.at("ephemeral").boolean());
  EXPECT_TRUE(v.at("kernel").boolean());
  for (const char* k : {"raddr", "rport", "pid", "tid", "ppid", "uid", "comm", "thread", "exe", "cmdline", "netns",
                        "cgroup_id", "container"})
    EXPECT_TRUE(v.at(k).is_null()) << k;
}

TEST(JsonSink, ExistingRecordHasTheAssignKeysThenState) {
  PortRecord r = assign_record();
  r.type = PortRecord::Type::Existing;
  r.how.reset();
  r.ephemeral.reset();
  r.raddr.reset();
  r.rport.reset();
  r.state = "LISTEN";
  JValue v = parse_line(JsonSink::render(r));
  auto keys = kAssignKeys;
  keys.push_back("state");
  EXPECT_EQ(v.keys(), keys);
  EXPECT_EQ(v.at("type").str(), "existing");
  EXPECT_TRUE(v.at("how").is_null());
  EXPECT_TRUE(v.at("ephemeral").is_null());
  EXPECT_EQ(v.at("state").str(), "LISTEN");
}

TEST(JsonSink, HostileStringsStayOneValidLine) {
  PortRecord r = assign_record();
  r.comm = std::string_view("a\x1b[2Jb\n\"x\"\\");
  r.thread = std::string_view("t\xff\xfe");
  r.cmdline = std::string_view("sh -c 'echo \x7f'\r\n{\"type\":\"fake\"}");
  r.exe = std::string_view("/tmp/caf\xc3\xa9");
  std::string line = JsonSink::render(r);
  JValue v = parse_line(line);
  EXPECT_EQ(v.keys(), kAssignKeys);
  EXPECT_EQ(v.at("comm").str(), "a\x1b[2Jb\n\"x\"\\");
  EXPECT_NE(line.find(R"("comm":"a\u001b[2Jb\n\"x\"\\")"), std::string::npos) << line;
  EXPECT_EQ(v.at("thread").str(), R"(t\xff\xfe)");
  EXPECT_EQ(v.at("cmdline").str(), "sh -c 'echo \x7f'\r\n{\"type\":\"fake\"}");
  EXPECT_EQ(v.at("exe").str(), "/tmp/caf\xc3\xa9");
  EXPECT_EQ(v.at("type").str(), "assign");
}

TEST(JsonSink, PortWritesTheRenderedLine) {
  StringOutput out;
  JsonSink sink(out);
  sink.port(assign_record());
  sink.port(release_record());
  sink.flush();
  EXPECT_EQ(out.text(), JsonSink::render(assign_record()) + JsonSink::render(release_record()));
  EXPECT_EQ(pgtest::split_lines(out.text()).size(), 2u);
}

TEST(JsonSink, StartLostStopRecords) {
  StringOutput out;
  JsonSink sink(out);
  StartRecord s;
  s.ts_ns = kTs;
  s.version = "0.1.0";
  s.kernel = "6.1.0-test";
  s.hostname = "host\"1";
  s.world = "socket";
  s.hooks = {"bind", "connect"};
  s.uncaught = {};
  s.paths = {{"bind(): port given or chosen", "cgroup/post_bind4"}, {"udp connect() finding no free port", ""}};
  s.port_lo = 32768;
  s.port_hi = 60999;
  s.ring_buffer_bytes = 8 << 20;
  s.filters = {{"pid", "5"}, {"comm", "curl"}};
  sink.start(s);
  LostRecord l;
  l.ts_ns = kTs;
  l.count = 3;
  l.total = 10;
  l.by_reason = {{"ring_buffer_full", 3}};
  sink.lost(l);
  StopRecord st;
  st.ts_ns = kTs;
  st.reason = "signal";
  st.records = {{"assign", 2}, {"release", 1}};
  st.lost = 10;
  st.table_evicted = 4;
  sink.stop(st);

  auto lines = pgtest::split_lines(out.text());
  ASSERT_EQ(lines.size(), 3u) << out.text();
  JValue start = parse_line(lines[0] + "\n");
  EXPECT_EQ(start.keys(), (std::vector<std::string>{"type", "ts", "ts_ns", "version", "kernel", "host", "machine_id",
                                                    "boot_id", "world", "hooks", "uncaught", "paths", "port_range",
                                                    "ring_buffer_bytes", "filters"}));
  EXPECT_EQ(start.at("type").str(), "start");
  EXPECT_EQ(start.at("host").str(), "host\"1");
  EXPECT_EQ(start.at("world").str(), "socket");
  ASSERT_EQ(start.at("hooks").arr.size(), 2u);
  EXPECT_EQ(start.at("hooks").arr[1].str(), "connect");
  EXPECT_TRUE(start.at("uncaught").arr.empty());
  EXPECT_EQ(start.at("paths").at("bind(): port given or chosen").str(), "cgroup/post_bind4");
  EXPECT_TRUE(start.at("paths").at("udp connect() finding no free port").is_null());
  ASSERT_EQ(start.at("port_range").arr.size(), 2u);
  EXPECT_EQ(start.at("port_range").arr[0].u64(), 32768u);
  EXPECT_EQ(start.at("port_range").arr[1].u64(), 60999u);
  EXPECT_EQ(start.at("filters").at("pid").str(), "5");
  EXPECT_EQ(start.at("filters").at("comm").str(), "curl");

  JValue lost = parse_line(lines[1] + "\n");
  EXPECT_EQ(lost.keys(), (std::vector<std::string>{"type", "ts", "ts_ns", "count", "total", "reasons"}));
  EXPECT_EQ(lost.at("count").u64(), 3u);
  EXPECT_EQ(lost.at("total").u64(), 10u);
  EXPECT_EQ(lost.at("reasons").at("ring_buffer_full").u64(), 3u);

  JValue stop = parse_line(lines[2] + "\n");
  EXPECT_EQ(stop.keys(), (std::vector<std::string>{"type", "ts", "ts_ns", "reason", "records", "lost", "table_evicted"}));
  EXPECT_EQ(stop.at("reason").str(), "signal");
  EXPECT_EQ(stop.at("records").at("assign").u64(), 2u);
  EXPECT_EQ(stop.at("lost").u64(), 10u);
  EXPECT_EQ(stop.at("table_evicted").u64(), 4u);
}

TEST(TableSink, HeaderColumns) {
  std::string h = TableSink::header();
  EXPECT_EQ(words(h),
            (std::vector<std::string>{"TIME", "EVENT", "PID", "COMM", "PROTO", "LOCAL", "REMOTE", "HOW", "LIFETIME"}));
  EXPECT_EQ(h.back(), '\n');
  EXPECT_EQ(h.find('\n'), h.size() - 1);
}

TEST(TableSink, AssignRowIsAlignedWithTheHeader) {
  PortRecord r = assign_record();
  std::string row = TableSink::render(r);
  std::string h = TableSink::header();
  auto w = words(row);
  ASSERT_EQ(w.size(), 9u) << row;
  EXPECT_EQ(w[1], "assign");
  EXPECT_EQ(w[2], "4242");
  EXPECT_EQ(w[3], "curl");
  EXPECT_EQ(w[4], "tcp");
  EXPECT_EQ(w[5], "10.0.0.5:49152");
  EXPECT_EQ(w[6], "93.184.216.34:443");
  EXPECT_EQ(w[7], "connect");
  EXPECT_EQ(w[8], "-");
  EXPECT_EQ(row.find("curl"), h.find("COMM"));
  EXPECT_EQ(row.find("tcp"), h.find("PROTO"));
  EXPECT_EQ(row.find("10.0.0.5:49152"), h.find("LOCAL"));
  EXPECT_EQ(row.find("93.184.216.34:443"), h.find("REMOTE"));
  EXPECT_EQ(row.find("connect"), h.find("HOW"));
  // PID is right-aligned: it ends where the header's PID ends
  EXPECT_EQ(row.find("4242") + 4, h.find("PID") + 3);
}

TEST(TableSink, TimeColumnIsLocalClock) {
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "UTC", 1);
  tzset();
  std::string row = TableSink::render(assign_record());
  if (old)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  EXPECT_EQ(words(row)[0], "00:35:25.658");
}

TEST(TableSink, Ipv6EndpointsInBrackets) {
  PortRecord r = assign_record();
  r.family = Family::Ipv6;
  r.laddr = "::1";
  r.lport = 8080;
  r.raddr = "2001:db8::2";
  r.rport = 443;
  auto w = words(TableSink::render(r));
  ASSERT_EQ(w.size(), 9u);
  EXPECT_EQ(w[5], "[::1]:8080");
  EXPECT_EQ(w[6], "[2001:db8::2]:443");
}

TEST(TableSink, ControlCharactersInCommAreShownEscaped) {
  PortRecord r = assign_record();
  r.comm = std::string_view("ev\x1b[31mil");
  std::string row = TableSink::render(r);
  EXPECT_EQ(row.find('\x1b'), std::string::npos) << "no raw escape reaches the terminal";
  EXPECT_NE(row.find("ev\\x1b[31mil"), std::string::npos) << row;
  r.comm = std::string_view("a\nb\xff");
  row = TableSink::render(r);
  EXPECT_NE(row.find("a\\x0ab\\xff"), std::string::npos) << row;
  EXPECT_EQ(row.find('\n'), row.size() - 1) << "one line";
}

TEST(TableSink, ReleaseRows) {
  PortRecord r = release_record();
  auto w = words(TableSink::render(r));
  ASSERT_EQ(w.size(), 9u);
  EXPECT_EQ(w[1], "release");
  EXPECT_EQ(w[2], "4242");
  EXPECT_EQ(w[7], "timewait");
  EXPECT_EQ(w[8], "1.5ms");

  r.timewait = false;
  r.duration_ns.reset();
  r.pid.reset();
  r.comm.reset();
  r.raddr.reset();
  r.rport.reset();
  w = words(TableSink::render(r));
  ASSERT_EQ(w.size(), 9u);
  EXPECT_EQ(w[2], "-") << "unknown holder";
  EXPECT_EQ(w[3], "-");
  EXPECT_EQ(w[6], "-") << "no peer";
  EXPECT_EQ(w[7], "-");
  EXPECT_EQ(w[8], "?") << "lifetime unknown";
}

TEST(TableSink, KernelAssignShowsKernel) {
  PortRecord r = assign_record();
  r.kernel = true;
  r.pid.reset();
  r.comm.reset();
  auto w = words(TableSink::render(r));
  ASSERT_EQ(w.size(), 9u);
  EXPECT_EQ(w[2], "kernel");
}

TEST(TableSink, StartLostStop) {
  StringOutput out;
  TableSink sink(out);
  StartRecord s;
  s.version = "0.1.0";
  s.kernel = "6.1\x1b";
  s.port_lo = 32768;
  s.port_hi = 60999;
  s.uncaught = {"udp sendmsg: kernel too old"};
  sink.start(s);
  auto lines = pgtest::split_lines(out.text());
  ASSERT_EQ(lines.size(), 3u) << out.text();
  EXPECT_EQ(lines[0], "# portghost 0.1.0 on 6.1\\x1b, ephemeral range 32768-60999");
  EXPECT_EQ(lines[1], "# not caught here: udp sendmsg: kernel too old");
  EXPECT_EQ(lines[2] + "\n", TableSink::header());

  out.clear();
  LostRecord l;
  l.count = 3;
  l.total = 7;
  sink.lost(l);
  EXPECT_EQ(out.text(), "# LOST 3 records (total 7)\n");

  out.clear();
  StopRecord st;
  st.reason = "duration";
  st.records = {{"assign", 2}, {"release", 1}};
  st.lost = 7;
  sink.stop(st);
  EXPECT_EQ(out.text(), "# stopped (duration): assign=2 release=1 lost=7\n");
}

TEST(Sinks, MakeSinkPicksTheFormat) {
  StringOutput out;
  auto json = make_sink(Format::Json, out);
  auto table = make_sink(Format::Table, out);
  EXPECT_NE(dynamic_cast<JsonSink*>(json.get()), nullptr);
  EXPECT_NE(dynamic_cast<TableSink*>(table.get()), nullptr);
  json->port(assign_record());
  EXPECT_EQ(out.text(), JsonSink::render(assign_record()));
}

TEST(Sinks, Printable) {
  EXPECT_EQ(printable("plain text ~"), "plain text ~");
  EXPECT_EQ(printable("\x1b"), "\\x1b");
  EXPECT_EQ(printable("\x7f\x80\xff"), "\\x7f\\x80\\xff");
  EXPECT_EQ(printable(std::string("\0", 1)), "\\x00");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\\xc3\\xa9") << "the table is ASCII only";
}

TEST(JsonSink, WithAHostEveryRecordEndsWithIt) {
  StringOutput out;
  JsonSink sink(out, "web-1");
  PortRecord r;
  r.type = PortRecord::Type::Release;
  r.laddr = "127.0.0.1";
  sink.port(r);
  r.type = PortRecord::Type::Assign;
  sink.port(r);
  LostRecord l;
  sink.lost(l);
  StopRecord st;
  sink.stop(st);
  auto lines = pgtest::split_lines(out.text());
  ASSERT_EQ(lines.size(), 4u);
  for (const auto& line : lines) {
    JValue v = parse_line(line + "\n");
    ASSERT_FALSE(v.keys().empty());
    EXPECT_EQ(v.keys().back(), "host") << line;
    EXPECT_EQ(v.at("host").str(), "web-1");
  }
}
