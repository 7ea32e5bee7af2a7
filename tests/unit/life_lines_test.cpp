// One line for a short-lived port: the JSON sink holds an assign back, a
// release within the hold shares its line (`life`), and the log reader reads
// that line as the two records it stands for.
#include "logs/log_reader.hpp"
#include "sink_fixture.hpp"

namespace {

uint64_t g_now = 0;
uint64_t test_clock() { return g_now; }

constexpr uint64_t kHold = 100'000'000;

LifeLines life(size_t max_bytes = HeldAssigns::Limits{}.max_bytes) {
  LifeLines l;
  l.hold_ns = kHold;
  l.max_bytes = max_bytes;
  l.clock = &test_clock;
  return l;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l + "\n");
  return out;
}

std::vector<LogEvent> read_back(const std::string& text) {
  std::vector<LogEvent> out;
  std::ostringstream warn;
  read_log_text(
      "log", padded_log_text(text), text.size(), std::nullopt, [&](LogEvent&& e) { out.push_back(std::move(e)); },
      warn);
  EXPECT_EQ(warn.str(), "");
  return out;
}

StartRecord start_record() {
  StartRecord s;
  s.ts_ns = kTs - 1000;
  return s;
}

// The same records written by a sink that holds nothing: the two-line form.
std::string two_lines(const std::vector<PortRecord>& recs) {
  StringOutput out;
  JsonSink sink(out, "web-1");
  sink.start(start_record());
  for (const auto& r : recs) sink.port(r);
  sink.stop(StopRecord{});
  return out.text();
}

void expect_same_events(const std::vector<LogEvent>& a, const std::vector<LogEvent>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].ts_ns, b[i].ts_ns);
    EXPECT_EQ(a[i].sock, b[i].sock);
    EXPECT_EQ(a[i].lport, b[i].lport);
    EXPECT_EQ(a[i].laddr, b[i].laddr);
    EXPECT_EQ(a[i].raddr, b[i].raddr);
    EXPECT_EQ(a[i].rport, b[i].rport);
    EXPECT_EQ(a[i].community_id, b[i].community_id);
    EXPECT_EQ(a[i].pid, b[i].pid);
    EXPECT_EQ(a[i].tid, b[i].tid);
    EXPECT_EQ(a[i].comm, b[i].comm);
    EXPECT_EQ(a[i].exe, b[i].exe);
    EXPECT_EQ(a[i].cmdline, b[i].cmdline);
    EXPECT_EQ(a[i].container, b[i].container);
    EXPECT_EQ(a[i].duration_ns, b[i].duration_ns);
    EXPECT_EQ(a[i].timewait, b[i].timewait);
    EXPECT_EQ(a[i].host, b[i].host);
  }
}

}  // namespace

TEST(LifeLines, AReleaseWithinTheHoldSharesItsAssignsLine) {
  g_now = 1'000'000'000;
  StringOutput out;
  JsonSink sink(out, "web-1", 0, life());
  sink.start(start_record());
  sink.port(assign_record());
  sink.flush();
  EXPECT_EQ(lines_of(out.text()).size(), 1u) << "the assign is held";
  PortRecord rel = release_record();
  rel.closer_pid = 4242;
  rel.closer_tid = 4244;
  rel.closer_comm = "curl";
  sink.port(rel);
  sink.stop(StopRecord{});
  auto lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), 3u) << out.text();
  JValue v = parse_line(lines[1]);
  std::vector<std::string> keys = kAssignKeys;
  for (const char* k : {"duration_ns", "timewait", "closer_pid", "closer_tid", "closer_comm", "host", "run", "seq"})
    keys.push_back(k);
  EXPECT_EQ(v.keys(), keys);
  EXPECT_EQ(v.at("type").str(), "life");
  EXPECT_EQ(v.at("ts_ns").u64(), kTs);
  EXPECT_EQ(v.at("duration_ns").u64(), 1'500'000u);
  EXPECT_TRUE(v.at("timewait").boolean());
  EXPECT_EQ(v.at("closer_tid").u64(), 4244u);
  EXPECT_EQ(v.at("seq").u64(), 1u);
  EXPECT_EQ(parse_line(lines[2]).at("seq").u64(), 2u) << "one line, one number";
  // exactly the assign's text, then what the release adds
  std::string assign = JsonSink::render(assign_record(), "");
  std::string members = assign.substr(std::string(R"({"type":"assign")").size());
  members.resize(members.size() - 2);  // }\n
  EXPECT_EQ(lines[1].rfind(R"({"type":"life")" + members + R"(,"duration_ns":1500000,"timewait":true,)", 0), 0u)
      << lines[1];
  EXPECT_EQ(parse_line(lines[2]).at("life_hold_full").u64(), 0u);

  // read back, it is the two records the two-line form has
  PortRecord rel2 = rel;
  expect_same_events(read_back(out.text()), read_back(two_lines({assign_record(), rel2})));
}

TEST(LifeLines, AnAssignHeldPastTheHoldIsWrittenAsItsOwnLine) {
  g_now = 1'000'000'000;
  StringOutput out;
  JsonSink sink(out, "web-1", 0, life());
  sink.start(start_record());
  sink.port(assign_record());
  g_now += 50'000'000;
  sink.flush();  // its hold is counted from here: it came at most now
  g_now += kHold - 1;
  sink.flush();
  EXPECT_EQ(lines_of(out.text()).size(), 1u);
  g_now += 1;
  sink.flush();
  auto lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], with_identity(JsonSink::render(assign_record(), "web-1"), kTs - 1000, 1));
  PortRecord rel = release_record();
  rel.duration_ns = 900'000'000;
  sink.port(rel);
  lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], with_identity(JsonSink::render(rel, "web-1"), kTs - 1000, 2));
}

TEST(LifeLines, ARecordAboutAHeldSocketFollowsItsAssign) {
  g_now = 1'000'000'000;
  for (int what = 0; what < 4; what++) {
    SCOPED_TRACE(what);
    StringOutput out;
    JsonSink sink(out, "", 0, life());
    sink.start(start_record());
    PortRecord other = assign_record();
    other.sock = 999;
    other.lport = 50000;
    sink.port(other);
    sink.port(assign_record());
    PortRecord rel = release_record();
    if (what == 0) {
      NatRecord n;
      n.sock = 12345;
      sink.nat(n);
    } else if (what == 1) {
      rel.reconciled = true;  // found gone: no line of its own time to share
      sink.port(rel);
    } else if (what == 2) {
      rel.raddr = "10.9.9.9";  // another flow than the assign named
      sink.port(rel);
    } else {
      sink.stop(StopRecord{});
    }
    auto lines = lines_of(out.text());
    ASSERT_GE(lines.size(), 3u) << out.text();
    // the socket's assign first, then the record about it; the other one
    // still held (but at the stop, which writes all in their order)
    JValue a = parse_line(lines[1]);
    EXPECT_EQ(a.at("type").str(), "assign");
    if (what == 3) {
      EXPECT_EQ(a.at("sock").u64(), 999u);
      EXPECT_EQ(parse_line(lines[2]).at("sock").u64(), 12345u);
      EXPECT_EQ(parse_line(lines[3]).at("type").str(), "stop");
      continue;
    }
    EXPECT_EQ(a.at("sock").u64(), 12345u);
    EXPECT_EQ(parse_line(lines[2]).at("type").str(), what == 0 ? "nat" : "release");
    EXPECT_EQ(lines.size(), 3u);
  }
}

TEST(LifeLines, AFullHoldWritesEarlyAndLosesNothing) {
  g_now = 1'000'000'000;
  StringOutput out;
  std::string one = JsonSink::render(assign_record(), "");
  JsonSink sink(out, "", 0, life(10 * one.size()));  // room for about ten
  sink.start(start_record());
  constexpr int kSockets = 1000;
  for (int i = 0; i < kSockets; i++) {
    PortRecord a = assign_record();
    a.sock = 100 + i;
    a.lport = static_cast<uint16_t>(40000 + i);
    sink.port(a);
  }
  for (int i = 0; i < kSockets; i++) {
    PortRecord r = release_record();
    r.sock = 100 + i;
    r.lport = static_cast<uint16_t>(40000 + i);
    sink.port(r);
  }
  sink.stop(StopRecord{});
  std::map<uint64_t, int> assigns, releases;
  uint64_t lives = 0, seq = 0, early = 0;
  for (const auto& l : lines_of(out.text())) {
    JValue v = parse_line(l);
    EXPECT_EQ(v.at("seq").u64(), seq++);
    std::string t = v.at("type").str();
    if (t == "stop") early = v.at("life_hold_full").u64();
    if (t == "start" || t == "stop") continue;
    if (t == "assign" || t == "life") assigns[v.at("sock").u64()]++;
    if (t == "release" || t == "life") releases[v.at("sock").u64()]++;
    if (t == "life") lives++;
  }
  ASSERT_EQ(assigns.size(), size_t{kSockets});
  ASSERT_EQ(releases.size(), size_t{kSockets});
  for (const auto& [sock, n] : assigns) EXPECT_EQ(n, 1) << sock;
  for (const auto& [sock, n] : releases) EXPECT_EQ(n, 1) << sock;
  EXPECT_GT(lives, 0u) << "the last ones held still pair";
  EXPECT_LT(lives, 20u);
  EXPECT_EQ(early + lives, uint64_t{kSockets}) << "each assign written early is counted";
}

TEST(LifeLines, WithoutAHoldEveryRecordIsItsOwnLine) {
  StringOutput out;
  JsonSink sink(out);
  sink.port(assign_record());
  sink.port(release_record());
  auto lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(parse_line(lines[0]).at("type").str(), "assign");
  EXPECT_EQ(parse_line(lines[1]).at("type").str(), "release");
}

TEST(LifeLines, ReaderRefusesALifeWithoutItsDuration) {
  std::string text = JsonSink::render(assign_record(), "");
  text.replace(0, std::string(R"({"type":"assign")").size(), R"({"type":"life")");
  std::vector<LogEvent> got;
  std::ostringstream warn;
  ReadStats st = read_log_text(
      "log", padded_log_text(text), text.size(), std::nullopt, [&](LogEvent&& e) { got.push_back(std::move(e)); },
      warn);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st.bad_lines, 1u);
  EXPECT_NE(warn.str().find("life record without a duration_ns"), std::string::npos) << warn.str();
  // a duration past 2^64 from its time
  std::string wrap = text;
  wrap.insert(wrap.size() - 2, ",\"duration_ns\":18446744073709551615");
  got.clear();
  st = read_log_text(
      "log", padded_log_text(wrap), wrap.size(), std::nullopt, [&](LogEvent&& e) { got.push_back(std::move(e)); },
      warn);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st.bad_lines, 1u);
}

TEST(LifeLines, ReaderNamesALogOfANewerSchema) {
  std::string text = R"({"type":"start","ts":"x","ts_ns":5,"version":"9.0.0","schema":3,"host":"h","run":5,"seq":0})"
                     "\n"
                     R"({"type":"teleport","ts":"x","ts_ns":6,"run":5,"seq":1})"
                     "\n";
  std::vector<LogEvent> got;
  std::ostringstream warn;
  ReadStats st = read_log_text(
      "log", padded_log_text(text), text.size(), std::nullopt, [&](LogEvent&& e) { got.push_back(std::move(e)); },
      warn);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, LogEvent::Type::Start);
  EXPECT_EQ(st.unknown_types, 1u);
  EXPECT_EQ(warn.str(),
            "portghost: log:1: a log of schema 3, newer than this portghost reads (2): its records of types this "
            "version does not know are skipped\n");
}
