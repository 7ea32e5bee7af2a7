// The table sink: columns, alignment and escaping.
#include "sink_fixture.hpp"

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
