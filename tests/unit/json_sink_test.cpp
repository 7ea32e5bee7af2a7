// The JSON Lines sink: key order, values and escaping of every record type.
#include "sink_fixture.hpp"

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
  EXPECT_EQ(line.rfind(R"({"type":"assign","ts":"2026-11-22T00:35:25.658868961Z","ts_ns":1795307725658868961,)", 0), 0u)
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
  // the spec's reference implementation gives this ID for 10.0.0.5:49152 <-> 93.184.216.34:443/tcp
  EXPECT_EQ(v.at("community_id").str(), "1:WFu5YQGJptNO6IrtaHnl24qBbd0=");
  EXPECT_NE(parse_line(JsonSink::render(release_record(), "", 7)).at("community_id").str(),
            "1:WFu5YQGJptNO6IrtaHnl24qBbd0=")
      << "another seed, another ID";
  PortRecord no_peer = release_record();
  no_peer.raddr.reset();
  no_peer.rport.reset();
  EXPECT_TRUE(parse_line(JsonSink::render(no_peer)).at("community_id").is_null());
  EXPECT_EQ(line,
            R"({"type":"release","ts":"2026-11-22T00:35:25.660368961Z","ts_ns":1795307725660368961,"sock":12345,)"
            R"("proto":"tcp","family":"ipv4","laddr":"10.0.0.5","lport":49152,"raddr":"93.184.216.34","rport":443,)"
            R"("community_id":"1:WFu5YQGJptNO6IrtaHnl24qBbd0=",)"
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
  EXPECT_EQ(out.text(), with_identity(JsonSink::render(assign_record()), 0, 0) +
                            with_identity(JsonSink::render(release_record()), 0, 1));
  EXPECT_EQ(pgtest::split_lines(out.text()).size(), 2u);
}

// The attribution is rendered once per task and reused: the lines must be
// exactly the uncached ones, whatever changes between records.
TEST(JsonSink, ReusedAttributionIsExactlyTheRenderedOne) {
  StringOutput out;
  JsonSink sink(out, "h1");
  std::string expected;
  uint64_t seq = 0;
  auto put = [&](const PortRecord& r) {
    sink.port(r);
    expected += with_identity(JsonSink::render(r, "h1"), 0, seq++);
  };
  PortRecord a = assign_record();
  put(a);
  put(a);  // the same task: reused
  std::string long_cmd(5000, 'c');
  PortRecord b = a;
  b.cmdline = long_cmd;  // one field differs: rendered anew
  put(b);
  put(a);
  PortRecord c = a;
  c.tid = 4244;  // another thread, another slot
  c.thread = "worker";
  put(c);
  put(a);
  PortRecord d = a;
  d.container.reset();  // null now
  put(d);
  PortRecord e = a;
  e.kernel = true;
  e.pid.reset();
  e.tid.reset();
  put(e);
  put(release_record());
  put(a);
  PortRecord f = a;
  f.pid = a.pid.value() + 64;  // the same slot, another process
  f.tid = a.tid.value() + 64;
  put(f);
  put(a);
  // text of the same length that differs in one byte, at each place and
  // for each length the comparison treats apart (up to 4, 8, 16, longer)
  size_t lines = 12;
  for (size_t n : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 40}) {
    for (size_t at : {size_t{0}, n / 2, n - 1}) {
      PortRecord g = a;
      std::string one(n, 'x'), other(n, 'x');
      other[at] = 'y';
      g.comm = one;
      put(g);
      g.comm = other;
      put(g);
      lines += 2;
    }
  }
  // a release's holder and closer names, kept while the same one comes
  // again: each line still exactly the uncached one
  PortRecord rel = release_record();
  for (const char* name : {"nginx", "nginx", "ngin\"x", "ngin\xffx", "", "nginy", "nginx"}) {
    rel.comm = name;
    put(rel);
    rel.closer_comm = name;
    put(rel);
    rel.closer_comm.reset();
    put(rel);
    lines += 3;
  }
  rel.comm.reset();
  put(rel);
  lines++;
  sink.flush();
  EXPECT_EQ(out.text(), expected);
  EXPECT_EQ(pgtest::split_lines(out.text()).size(), lines);
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
  s.socket_slots = 65536;
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
  st.socket_slots_full = 7;
  st.socket_slots_freed = 2;
  sink.stop(st);

  auto lines = pgtest::split_lines(out.text());
  ASSERT_EQ(lines.size(), 3u) << out.text();
  JValue start = parse_line(lines[0] + "\n");
  EXPECT_EQ(start.keys(), (std::vector<std::string>{"type",
                                                    "ts",
                                                    "ts_ns",
                                                    "version",
                                                    "schema",
                                                    "kernel",
                                                    "host",
                                                    "machine_id",
                                                    "boot_id",
                                                    "world",
                                                    "hooks",
                                                    "uncaught",
                                                    "paths",
                                                    "port_range",
                                                    "ring_buffer_bytes",
                                                    "kernel_maps_bytes",
                                                    "socket_slots",
                                                    "filters",
                                                    "run",
                                                    "seq"}));
  EXPECT_EQ(start.at("socket_slots").u64(), 65536u);
  EXPECT_EQ(start.at("schema").u64(), 2u) << "the log's contract: life records";
  // the session is named by its start's time; its lines are numbered from 0
  EXPECT_EQ(start.at("run").u64(), kTs);
  EXPECT_EQ(start.at("seq").u64(), 0u);
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
  EXPECT_EQ(lost.keys(), (std::vector<std::string>{"type", "ts", "ts_ns", "count", "total", "reasons", "run", "seq"}));
  EXPECT_EQ(lost.at("run").u64(), kTs);
  EXPECT_EQ(lost.at("seq").u64(), 1u);
  EXPECT_EQ(lost.at("count").u64(), 3u);
  EXPECT_EQ(lost.at("total").u64(), 10u);
  EXPECT_EQ(lost.at("reasons").at("ring_buffer_full").u64(), 3u);

  JValue stop = parse_line(lines[2] + "\n");
  EXPECT_EQ(stop.keys(), (std::vector<std::string>{"type", "ts", "ts_ns", "reason", "records", "lost", "table_evicted",
                                                   "socket_slots_full", "socket_slots_freed", "run", "seq"}));
  EXPECT_EQ(stop.at("socket_slots_full").u64(), 7u);
  EXPECT_EQ(stop.at("socket_slots_freed").u64(), 2u);
  EXPECT_EQ(stop.at("seq").u64(), 2u);
  EXPECT_EQ(stop.at("reason").str(), "signal");
  EXPECT_EQ(stop.at("records").at("assign").u64(), 2u);
  EXPECT_EQ(stop.at("lost").u64(), 10u);
  EXPECT_EQ(stop.at("table_evicted").u64(), 4u);
}

TEST(Sinks, MakeSinkPicksTheFormat) {
  StringOutput out;
  auto json = make_sink(Format::Json, out);
  auto table = make_sink(Format::Table, out);
  EXPECT_NE(dynamic_cast<JsonSink*>(json.get()), nullptr);
  EXPECT_NE(dynamic_cast<TableSink*>(table.get()), nullptr);
  json->port(assign_record());
  EXPECT_EQ(out.text(), with_identity(JsonSink::render(assign_record()), 0, 0));
}

TEST(Sinks, Printable) {
  EXPECT_EQ(printable("plain text ~"), "plain text ~");
  EXPECT_EQ(printable("\x1b"), "\\x1b");
  EXPECT_EQ(printable("\x7f\x80\xff"), "\\x7f\\x80\\xff");
  EXPECT_EQ(printable(std::string("\0", 1)), "\\x00");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\\xc3\\xa9") << "the table is ASCII only";
}

// host, then the session's identity (run, seq): what a store deduplicates on
TEST(JsonSink, WithAHostEveryRecordEndsWithHostRunSeq) {
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
  uint64_t seq = 0;
  for (const auto& line : lines) {
    JValue v = parse_line(line + "\n");
    auto keys = v.keys();
    ASSERT_GE(keys.size(), 3u);
    EXPECT_EQ(std::vector<std::string>(keys.end() - 3, keys.end()), (std::vector<std::string>{"host", "run", "seq"}))
        << line;
    EXPECT_EQ(v.at("host").str(), "web-1");
    EXPECT_EQ(v.at("seq").u64(), seq++);
  }
}

// A second session in the same sink (a restart appending to the file) is a
// new run, numbered from 0 again.
TEST(JsonSink, EachSessionIsARunNumberedFromZero) {
  StringOutput out;
  JsonSink sink(out, "web-1");
  StartRecord s;
  s.ts_ns = kTs;
  sink.start(s);
  sink.port(assign_record());
  sink.stop(StopRecord{});
  s.ts_ns = kTs + 5;
  sink.start(s);
  sink.port(release_record());
  auto lines = pgtest::split_lines(out.text());
  ASSERT_EQ(lines.size(), 5u);
  std::vector<std::pair<uint64_t, uint64_t>> ids;
  for (const auto& line : lines) {
    JValue v = parse_line(line + "\n");
    ids.emplace_back(v.at("run").u64(), v.at("seq").u64());
  }
  EXPECT_EQ(ids,
            (std::vector<std::pair<uint64_t, uint64_t>>{{kTs, 0}, {kTs, 1}, {kTs, 2}, {kTs + 5, 0}, {kTs + 5, 1}}));
}
