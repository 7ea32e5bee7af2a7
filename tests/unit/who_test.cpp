#include <gtest/gtest.h>
#include <time.h>
#include <zlib.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/errors.hpp"
#include "common/options.hpp"
#include "logs/log_reader.hpp"
#include "logs/who.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::TempDir;
using pgtest::write_file;

namespace {

constexpr uint64_t kS = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'795'307'725ULL * kS;  // 2026-11-22T00:35:25Z

std::string start_line(uint64_t ts) {
  return "{\"type\":\"start\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) + ",\"version\":\"0.1.0\"}\n";
}
std::string stop_line(uint64_t ts) {
  return "{\"type\":\"stop\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) + ",\"reason\":\"signal\"}\n";
}
std::string lost_line(uint64_t ts, uint64_t n) {
  return "{\"type\":\"lost\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) + ",\"count\":" + std::to_string(n) + "}\n";
}
std::string port_line(const std::string& type, uint64_t ts, uint64_t sock, uint16_t port, uint32_t pid,
                      const std::string& comm, const std::string& extra = "") {
  return "{\"type\":\"" + type + "\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) +
         ",\"sock\":" + std::to_string(sock) +
         ",\"proto\":\"udp\",\"family\":\"ipv4\",\"laddr\":\"0.0.0.0\",\"lport\":" + std::to_string(port) +
         ",\"raddr\":null,\"rport\":null,\"how\":\"sendmsg\",\"pid\":" + std::to_string(pid) + ",\"comm\":\"" + comm +
         "\",\"exe\":\"/usr/bin/" + comm + "\",\"cmdline\":\"" + comm + " -x\",\"netns\":4026531833" + extra + "}\n";
}

std::vector<LogEvent> read_all(const std::string& path, std::optional<uint16_t> port, std::string* warnings = nullptr) {
  std::vector<LogEvent> out;
  std::ostringstream warn;
  read_log(
      path, port, [&](LogEvent&& e) { out.push_back(std::move(e)); }, warn);
  if (warnings) *warnings = warn.str();
  return out;
}

WhoQuery at(uint16_t port, uint64_t t) {
  WhoQuery q;
  q.port = port;
  q.since_ns = q.until_ns = t;
  return q;
}

}  // namespace

TEST(ParseTime, Rfc3339WithZoneAndFraction) {
  EXPECT_EQ(parse_time("2026-11-22T00:35:25Z", 0), kT0);
  EXPECT_EQ(parse_time("2026-11-22T00:35:25.5Z", 0), kT0 + kS / 2);
  EXPECT_EQ(parse_time("2026-11-22 00:35:25.000000001Z", 0), kT0 + 1);
  EXPECT_EQ(parse_time("2026-11-22T02:35:25+02:00", 0), kT0);
  EXPECT_EQ(parse_time("2026-11-21T23:35:25-01:00", 0), kT0);
}

TEST(ParseTime, UnixSecondsAndRelative) {
  EXPECT_EQ(parse_time("1795307725", 0), kT0);
  EXPECT_EQ(parse_time("1795307725.25", 0), kT0 + kS / 4);
  EXPECT_EQ(parse_time("-5m", kT0), kT0 - 300 * kS);
  EXPECT_EQ(parse_time("-30s", kT0), kT0 - 30 * kS);
  EXPECT_EQ(parse_time("-2h", kT0), kT0 - 7200 * kS);
  EXPECT_EQ(parse_time("-1d", kT0), kT0 - 86400 * kS);
}

TEST(ParseTime, LocalClockTimeIsToday) {
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(parse_time("10:03:12", kT0), 1'795'341'792ULL * kS);  // 2026-11-22T10:03:12Z
  EXPECT_EQ(parse_time("00:35", kT0), kT0 - 25 * kS);
  EXPECT_EQ(parse_time("00:35:25.5", kT0), kT0 + kS / 2);
}

TEST(ParseTime, GarbageIsRejected) {
  for (const char* bad : {"", "bogus", "25:00:00", "10:61", "2026-13-01T00:00:00Z", "2026-11-22T00:35:25",
                          "2026-11-22T00:35:25+2", "-5x", "-m", "12ab", "1.2.3"})
    EXPECT_FALSE(parse_time(bad, kT0)) << bad;
}

TEST(ReadLog, CorruptLinesAreSkippedAndReportedOncePerFile) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  write_file(path, start_line(kT0) + "garbage\n" + "\x01\x02\xff\n" +
                       port_line("assign", kT0 + 1, 7, 5000, 42, "curl") + "{\"type\":\"future\",\"ts_ns\":5}\n" +
                       "{\"type\":\"assign\",\"ts\":\"x\",\"ts_ns\":9,\"sock\":1");
  std::string warn;
  auto evs = read_all(path, std::nullopt, &warn);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, LogEvent::Type::Start);
  EXPECT_EQ(evs[1].type, LogEvent::Type::Assign);
  EXPECT_EQ(evs[1].comm, "curl");
  EXPECT_EQ(evs[1].pid, 42u);
  // one warning for the file, naming the first bad line
  EXPECT_NE(warn.find(path + ":2:"), std::string::npos) << warn;
  EXPECT_EQ(std::count(warn.begin(), warn.end(), '\n'), 1) << warn;
}

TEST(ReadLog, GzipRotatedFilesAreRead) {
  TempDir dir;
  std::string text = start_line(kT0) + port_line("assign", kT0 + 1, 7, 5000, 42, "curl") + stop_line(kT0 + 2);
  std::string gz = dir / "events.jsonl.1.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  write_file(dir / "events.jsonl", start_line(kT0 + 10 * kS));
  write_file(dir / "events.jsonl.2", start_line(kT0 - 10 * kS));
  write_file(dir / "other.txt", "x");
  auto paths = expand_log_paths({dir.path()});
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0], dir / "events.jsonl.2");  // oldest first
  EXPECT_EQ(paths[1], gz);
  EXPECT_EQ(paths[2], dir / "events.jsonl");
  auto evs = read_all(gz, 5000);
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[1].sock, 7u);
}

TEST(ReadLog, OtherPortsAreSkipped) {
  TempDir dir;
  std::string path = dir / "e.jsonl";
  write_file(path, start_line(kT0) + port_line("assign", kT0 + 1, 7, 5000, 42, "a") +
                       port_line("assign", kT0 + 2, 8, 6000, 43, "b"));
  auto evs = read_all(path, 6000);
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[1].type, LogEvent::Type::Tick);  // port 5000's record, as a time only
  EXPECT_EQ(evs[1].ts_ns, kT0 + 1);
  EXPECT_EQ(evs[2].sock, 8u);
}

TEST(Who, RecordsOfOtherPortsStillExtendCoverage) {
  TempDir dir;
  std::string path = dir / "e.jsonl";
  // the run died after a record of another port at +9 s
  write_file(path, start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "a") +
                       port_line("assign", kT0 + 9 * kS, 8, 6000, 43, "b") + start_line(kT0 + 20 * kS));
  auto evs = read_all(path, 5000);
  WhoQuery q;
  q.port = 5000;
  q.since_ns = kT0;
  q.until_ns = kT0 + 20 * kS;
  WhoAnswer a = answer_who(evs, q);
  ASSERT_EQ(a.gaps.size(), 1u);
  EXPECT_EQ(a.gaps[0].from_ns, kT0 + 9 * kS + 1);
  EXPECT_EQ(a.gaps[0].to_ns, kT0 + 20 * kS - 1);
}

namespace {
std::vector<LogEvent> log_of(const std::string& text) {
  TempDir dir;
  write_file(dir / "e.jsonl", text);
  return read_all(dir / "e.jsonl", std::nullopt);
}
}  // namespace

TEST(Who, HolderAtAnInstantWithItsProcess) {
  auto evs = log_of(start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "curl") +
                    port_line("release", kT0 + 3 * kS, 7, 5000, 42, "curl", ",\"duration_ns\":2000000000") +
                    port_line("assign", kT0 + 4 * kS, 9, 5000, 77, "dig") + stop_line(kT0 + 10 * kS));
  WhoAnswer a = answer_who(evs, at(5000, kT0 + 2 * kS));
  ASSERT_EQ(a.holdings.size(), 1u);
  EXPECT_EQ(a.holdings[0].first.pid, 42u);
  EXPECT_EQ(a.holdings[0].end, Holding::End::Released);
  EXPECT_EQ(a.holdings[0].end_ns, kT0 + 3 * kS);
  EXPECT_TRUE(a.gaps.empty());
  // the second holder is still held when portghost stopped
  WhoAnswer b = answer_who(evs, at(5000, kT0 + 5 * kS));
  ASSERT_EQ(b.holdings.size(), 1u);
  EXPECT_EQ(b.holdings[0].first.pid, 77u);
  EXPECT_EQ(b.holdings[0].end, Holding::End::StillHeldAtStop);
  // nobody between them
  EXPECT_TRUE(answer_who(evs, at(5000, kT0 + 3 * kS + 1)).holdings.empty());
}

// One socket, two ports one after the other (a UDP disconnect between):
// each port's holder is that socket only while it held that port, and a
// release seen only at the socket's next use says "at or before".
TEST(Who, ASocketThatChangedItsPortHeldEachForItsOwnTime) {
  auto evs = log_of(start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "dig") +
                    port_line("release", kT0 + 3 * kS, 7, 5000, 42, "dig", ",\"reason\":\"disconnect\",\"late\":true") +
                    port_line("assign", kT0 + 3 * kS, 7, 6000, 42, "dig") +
                    port_line("release", kT0 + 4 * kS, 7, 6000, 42, "dig") + stop_line(kT0 + 9 * kS));
  WhoAnswer first = answer_who(evs, at(5000, kT0 + 2 * kS));
  ASSERT_EQ(first.holdings.size(), 1u);
  EXPECT_EQ(first.holdings[0].end_ns, kT0 + 3 * kS);
  std::ostringstream text;
  print_who(first, at(5000, kT0 + 2 * kS), text);
  EXPECT_NE(text.str().find("released  at or before "), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("after at most 2.0s"), std::string::npos) << text.str();
  EXPECT_TRUE(answer_who(evs, at(6000, kT0 + 2 * kS)).holdings.empty()) << "the second port did not exist yet";
  WhoAnswer second = answer_who(evs, at(6000, kT0 + 3 * kS + 1));
  ASSERT_EQ(second.holdings.size(), 1u);
  EXPECT_EQ(second.holdings[0].first.ts_ns, kT0 + 3 * kS);
  EXPECT_EQ(second.holdings[0].end_ns, kT0 + 4 * kS);
  EXPECT_TRUE(answer_who(evs, at(5000, kT0 + 3 * kS + 1)).holdings.empty()) << "the first port was given up";
}

TEST(Who, TimeOutsideAnyRunIsNotCovered) {
  auto evs = log_of(start_line(kT0) + stop_line(kT0 + 10 * kS) + start_line(kT0 + 20 * kS) + stop_line(kT0 + 30 * kS));
  WhoAnswer between = answer_who(evs, at(5000, kT0 + 15 * kS));
  ASSERT_EQ(between.gaps.size(), 1u);
  EXPECT_NE(between.gaps[0].why.find("between two portghost runs"), std::string::npos);
  WhoAnswer before = answer_who(evs, at(5000, kT0 - kS));
  ASSERT_EQ(before.gaps.size(), 1u);
  EXPECT_NE(before.gaps[0].why.find("before the first record"), std::string::npos);
  WhoAnswer after = answer_who(evs, at(5000, kT0 + 40 * kS));
  ASSERT_EQ(after.gaps.size(), 1u);
  EXPECT_NE(after.gaps[0].why.find("after the last record"), std::string::npos);
  EXPECT_TRUE(answer_who(evs, at(5000, kT0 + 5 * kS)).gaps.empty());
  // a window across the stop: only the stopped part is a gap
  WhoQuery q;
  q.port = 5000;
  q.since_ns = kT0 + 5 * kS;
  q.until_ns = kT0 + 25 * kS;
  WhoAnswer w = answer_who(evs, q);
  ASSERT_EQ(w.gaps.size(), 1u);
  EXPECT_EQ(w.gaps[0].from_ns, kT0 + 10 * kS + 1);
  EXPECT_EQ(w.gaps[0].to_ns, kT0 + 20 * kS - 1);
}

TEST(Who, ACrashEndsCoverageAtTheLastRecord) {
  // no stop: the next start means the first run died after its last record
  auto evs = log_of(start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "curl") +
                    start_line(kT0 + 20 * kS) + stop_line(kT0 + 30 * kS));
  WhoQuery q;
  q.port = 5000;
  q.since_ns = kT0;
  q.until_ns = kT0 + 25 * kS;
  WhoAnswer a = answer_who(evs, q);
  ASSERT_EQ(a.gaps.size(), 1u);
  EXPECT_EQ(a.gaps[0].from_ns, kT0 + 1 * kS + 1);  // the dead run's last record
  EXPECT_EQ(a.gaps[0].to_ns, kT0 + 20 * kS - 1);   // the next start
  EXPECT_EQ(answer_who(evs, at(5000, kT0 + 10 * kS)).gaps.size(), 1u);
  WhoAnswer held = answer_who(evs, at(5000, kT0 + 1 * kS));
  ASSERT_EQ(held.holdings.size(), 1u);
  EXPECT_EQ(held.holdings[0].end, Holding::End::UnknownAfterCrash);
}

TEST(Who, ExistingHoldersAndLossesAreCalledOut) {
  auto evs = log_of(start_line(kT0) + port_line("existing", kT0 + 1, 7, 5000, 42, "nginx") +
                    lost_line(kT0 + 2 * kS, 17) + port_line("release", kT0 + 3 * kS, 7, 5000, 42, "nginx"));
  WhoAnswer a = answer_who(evs, at(5000, kT0 + 2 * kS));
  ASSERT_EQ(a.holdings.size(), 1u);
  EXPECT_TRUE(a.holdings[0].from_existing);
  EXPECT_EQ(a.lost_in_window, 17u);
  std::ostringstream out;
  print_who(a, at(5000, kT0 + 2 * kS), out);
  EXPECT_NE(out.str().find("the true start is unknown"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("INCOMPLETE: 17 records were lost"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("pid 42 nginx"), std::string::npos) << out.str();
}

TEST(Who, FiltersAndOpenAtEndOfLog) {
  auto evs = log_of(start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "curl"));
  WhoQuery q = at(5000, kT0 + 1 * kS);
  WhoAnswer a = answer_who(evs, q);
  ASSERT_EQ(a.holdings.size(), 1u);
  EXPECT_EQ(a.holdings[0].end, Holding::End::OpenAtEndOfLog);
  q.proto = "tcp";
  EXPECT_TRUE(answer_who(evs, q).holdings.empty());
  q.proto = "udp";
  q.netns = 1;
  EXPECT_TRUE(answer_who(evs, q).holdings.empty());
}

TEST(Who, JsonOutputIsOneObjectPerLine) {
  auto evs =
      log_of(start_line(kT0) + port_line("assign", kT0 + 1 * kS, 7, 5000, 42, "cu\\u001bl") + stop_line(kT0 + 2 * kS));
  WhoQuery q = at(5000, kT0 + 1 * kS);
  q.json = true;
  std::ostringstream out;
  print_who(answer_who(evs, q), q, out);
  std::string s = out.str();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1) << s;
  EXPECT_NE(s.find("\"comm\":\"cu\\u001bl\""), std::string::npos) << s;
  EXPECT_NE(s.find("\"end\":\"still held when portghost stopped\""), std::string::npos) << s;
}

// ---- the firewall's flow, and its Community ID ----------------------------------

TEST(WhoFlow, EndpointsAsFirewallsPrintThem) {
  auto e = parse_endpoint("10.0.0.5:60302");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->addr, "10.0.0.5");
  EXPECT_EQ(e->port, 60302);
  e = parse_endpoint("[2001:DB8::0:1]:443");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->addr, "2001:db8::1") << "one spelling";
  e = parse_endpoint("[::ffff:10.0.0.5]:1");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->addr, "10.0.0.5") << "an IPv4-mapped address is the IPv4 one";
  for (const char* bad : {"", "10.0.0.5", "10.0.0.5:", "10.0.0.5:65536", "10.0.0.5:x", "2001:db8::1:443",
                          "[2001:db8::1]443", "[2001:db8::1", "host:80", ":80"})
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  for (const char* flow : {"10.0.0.5:60302 10.0.0.9:443", "10.0.0.5:60302 -> 10.0.0.9:443",
                           "10.0.0.5:60302,10.0.0.9:443", "  10.0.0.5:60302\t10.0.0.9:443 "}) {
    auto f = parse_flow(flow);
    ASSERT_TRUE(f) << flow;
    EXPECT_EQ(f->first.port, 60302);
    EXPECT_EQ(f->second.addr, "10.0.0.9");
  }
  EXPECT_FALSE(parse_flow("10.0.0.5:60302"));
  EXPECT_FALSE(parse_flow("10.0.0.5:60302 10.0.0.9:443 10.0.0.1:1"));
}

namespace {

std::string flow_line(const std::string& type, uint64_t ts, uint64_t sock, const std::string& laddr, uint16_t lport,
                      const std::string& raddr, uint16_t rport, uint32_t pid, const std::string& cid = "") {
  std::string peer = raddr.empty() ? "\"raddr\":null,\"rport\":null"
                                   : "\"raddr\":\"" + raddr + "\",\"rport\":" + std::to_string(rport);
  return "{\"type\":\"" + type + "\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) +
         ",\"sock\":" + std::to_string(sock) + ",\"proto\":\"tcp\",\"family\":\"ipv4\",\"laddr\":\"" + laddr +
         "\",\"lport\":" + std::to_string(lport) + "," + peer +
         (cid.empty() ? "" : ",\"community_id\":\"" + cid + "\"") + ",\"pid\":" + std::to_string(pid) +
         ",\"comm\":\"p" + std::to_string(pid) + "\"}\n";
}

// The holders a flow question finds, by pid.
std::vector<uint64_t> holders(const std::vector<LogEvent>& events, const std::vector<WhoQuery>& qs) {
  std::vector<WhoAnswer> parts;
  for (const auto& q : qs) parts.push_back(answer_who(events, q));
  std::vector<uint64_t> pids;
  for (const auto& h : merge_answers(std::move(parts)).holdings) pids.push_back(h.first.pid.value_or(0));
  return pids;
}

}  // namespace

TEST(WhoFlow, EitherEndIsTheLocalOneAndOnlyThatPeerHoldsIt) {
  TempDir d;
  std::string log = start_line(kT0) +
                    // the flow the firewall saw, from the client's side
                    flow_line("assign", kT0 + 1 * kS, 1, "10.0.0.5", 60302, "10.0.0.9", 443, 101) +
                    // the same local port to another peer at the same time (another socket)
                    flow_line("assign", kT0 + 1 * kS, 2, "10.0.0.5", 60302, "10.0.0.7", 443, 102) +
                    // a server's side of another flow: local 10.0.0.9:443, peer 10.0.0.5:60302
                    flow_line("assign", kT0 + 1 * kS, 3, "10.0.0.9", 443, "10.0.0.5", 60302, 103) +
                    // a socket bound to every address with no peer holds the port too
                    flow_line("assign", kT0 + 1 * kS, 4, "0.0.0.0", 60302, "", 0, 104) +
                    // another local address: not this flow's end
                    flow_line("assign", kT0 + 1 * kS, 5, "10.0.0.6", 60302, "10.0.0.9", 443, 105) +
                    stop_line(kT0 + 10 * kS);
  write_file(d.path() + "/e.jsonl", log);
  auto events = read_all(d.path() + "/e.jsonl", std::nullopt);
  WhoQuery base = at(0, kT0 + 2 * kS);
  auto flow = parse_flow("10.0.0.9:443 10.0.0.5:60302");  // as the server side logged it
  ASSERT_TRUE(flow);
  auto pids = holders(events, flow_queries(base, *flow));
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(pids, (std::vector<uint64_t>{101, 103, 104}));
}

TEST(WhoFlow, ByCommunityIdAndEndToEnd) {
  TempDir d;
  std::string cid = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=";
  std::string log =
      start_line(kT0) + flow_line("assign", kT0 + 1 * kS, 1, "10.0.0.5", 60302, "10.0.0.9", 443, 101, cid) +
      flow_line("assign", kT0 + 1 * kS, 2, "10.0.0.5", 60303, "10.0.0.9", 443, 102, "1:other") +
      flow_line("release", kT0 + 3 * kS, 1, "10.0.0.5", 60302, "10.0.0.9", 443, 101, cid) + stop_line(kT0 + 10 * kS);
  write_file(d.path() + "/events.jsonl", log);
  WhoOptions o;
  o.community_id = cid;
  o.since = std::to_string(kT0 / kS);
  o.until = std::to_string(kT0 / kS + 20);
  o.json = true;
  o.logs = {d.path()};
  std::ostringstream out, err;
  ASSERT_EQ(run_who(o, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("\"pid\":101"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("\"pid\":102"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("\"community_id\":\"" + cid + "\""), std::string::npos) << out.str();
  // a flow nobody held: said so, with what the logs cover
  o.community_id = "1:nobody";
  o.json = false;
  std::ostringstream out2;
  ASSERT_EQ(run_who(o, out2, err), 0) << err.str();
  EXPECT_NE(out2.str().find("No socket held the flow 1:nobody"), std::string::npos) << out2.str();
  // the same question as a flow, and a malformed one
  o.community_id.reset();
  o.flow = "10.0.0.9:443 -> 10.0.0.5:60302";
  o.json = true;
  std::ostringstream out3;
  ASSERT_EQ(run_who(o, out3, err), 0) << err.str();
  EXPECT_NE(out3.str().find("\"pid\":101"), std::string::npos) << out3.str();
  o.flow = "10.0.0.9:443";
  std::ostringstream out4, err4;
  EXPECT_EQ(run_who(o, out4, err4), kExitUsage);
  EXPECT_NE(err4.str().find("--flow"), std::string::npos) << err4.str();
}

// Logs of two hosts read together (the store returns them host by host): a
// session still running on one is not taken for a crash when the other's
// start comes next.
TEST(Who, SessionsOfManyHostsAreEachTheirOwn) {
  TempDir d;
  auto with_host = [](std::string line, const std::string& host) {
    return line.substr(0, line.size() - 2) + ",\"host\":\"" + host + "\"}\n";
  };
  std::string a =
      with_host(start_line(kT0), "web-a") + with_host(port_line("assign", kT0 + 1 * kS, 1, 5000, 11, "curl"), "web-a");
  std::string b = with_host(start_line(kT0), "web-b") +
                  with_host(port_line("assign", kT0 + 2 * kS, 2, 5000, 22, "dig"), "web-b") +
                  with_host(stop_line(kT0 + 9 * kS), "web-b");
  write_file(d.path() + "/a.jsonl", a);
  write_file(d.path() + "/b.jsonl", b);
  std::vector<LogEvent> events = read_all(d.path() + "/a.jsonl", 5000);
  for (auto& e : read_all(d.path() + "/b.jsonl", 5000)) events.push_back(std::move(e));
  WhoQuery q = at(5000, kT0);
  q.until_ns = kT0 + 10 * kS;
  WhoAnswer ans = answer_who(events, q);
  ASSERT_EQ(ans.holdings.size(), 2u);
  EXPECT_TRUE(ans.hosts_mixed);
  EXPECT_EQ(ans.holdings[0].first.host, "web-a");
  EXPECT_EQ(ans.holdings[0].end, Holding::End::OpenAtEndOfLog) << "web-a's session is running, not crashed";
  EXPECT_EQ(ans.holdings[1].end, Holding::End::StillHeldAtStop);
}

namespace {
std::string nat_line(const std::string& type, uint64_t ts, uint64_t sock, uint16_t lport, uint16_t nat_lport,
                     const std::string& extra = "") {
  return "{\"type\":\"" + type + "\",\"ts\":\"x\",\"ts_ns\":" + std::to_string(ts) +
         ",\"sock\":" + std::to_string(sock) +
         ",\"proto\":\"udp\",\"family\":\"ipv4\",\"laddr\":\"10.88.0.5\",\"lport\":" + std::to_string(lport) +
         ",\"raddr\":\"203.0.113.7\",\"rport\":53,\"nat_laddr\":\"192.0.2.1\",\"nat_lport\":" +
         std::to_string(nat_lport) +
         ",\"nat_raddr\":\"203.0.113.7\",\"nat_rport\":53,\"ct_id\":9,\"pid\":101,\"comm\":\"dig\",\"netns\":"
         "4026531833" +
         extra + "}\n";
}
}  // namespace

// Asked with what the world saw (the host's address and the translated
// port), who names the socket behind the NAT: a datagram socket closed at
// once, whose translation lived on; the same outside port later used for
// another socket's flow; and a time when no translation held it.
TEST(WhoNat, TheOutsideTupleNamesTheSocketBehindTheTranslation) {
  TempDir d;
  std::string log = start_line(kT0) +
                    // socket 1 sends once and closes; its translation lasts 30 s
                    port_line("assign", kT0 + 1 * kS, 1, 40000, 101, "dig") +
                    port_line("release", kT0 + 1 * kS + 1000, 1, 40000, 101, "dig") +
                    nat_line("nat", kT0 + 1 * kS + 500, 1, 40000, 61234) +
                    nat_line("nat_end", kT0 + 31 * kS, 1, 40000, 61234, ",\"duration_ns\":30000000000") +
                    // socket 2 (another process) gets the same outside port after
                    port_line("assign", kT0 + 40 * kS, 2, 40100, 202, "curl") +
                    nat_line("nat", kT0 + 40 * kS, 2, 40100, 61234) + stop_line(kT0 + 50 * kS);
  write_file(d.path() + "/events.jsonl", log);
  auto ask = [&](const std::string& flow, uint64_t at_s, uint16_t port = 0) {
    WhoOptions o;
    if (flow.empty())
      o.port = port;
    else
      o.flow = flow;
    if (port) o.laddr = "192.0.2.1";
    o.at = std::to_string(kT0 / kS + at_s);
    o.json = true;
    o.logs = {d.path()};
    std::ostringstream out, err;
    EXPECT_EQ(run_who(o, out, err), 0) << err.str();
    return out.str();
  };
  std::string a = ask("192.0.2.1:61234 203.0.113.7:53", 10);
  EXPECT_NE(a.find("\"pid\":101"), std::string::npos) << a;
  EXPECT_NE(a.find("\"nat\":{\"laddr\":\"192.0.2.1\",\"lport\":61234"), std::string::npos) << a;
  EXPECT_NE(a.find("\"end\":\"released\""), std::string::npos) << "its own release, long before" << a;
  EXPECT_EQ(a.find("\"pid\":202"), std::string::npos) << a;
  std::string b = ask("", 45, 61234);
  EXPECT_NE(b.find("\"pid\":202"), std::string::npos) << b;
  EXPECT_EQ(b.find("\"pid\":101"), std::string::npos) << "its translation ended at 31 s" << b;
  std::string c = ask("203.0.113.7:53 192.0.2.1:61234", 35);
  EXPECT_EQ(c.find("\"type\":\"holding\""), std::string::npos) << "no translation held it then" << c;
}
