#include <gtest/gtest.h>

#include <sstream>

#include "logs/stats.hpp"

using namespace portghost;

namespace {
LogEvent ev(LogEvent::Type t, uint64_t ts, const std::string& comm, std::optional<uint64_t> dur = std::nullopt) {
  LogEvent e;
  e.type = t;
  e.ts_ns = ts;
  e.comm = comm;
  e.exe = "/usr/bin/" + comm;
  e.duration_ns = dur;
  return e;
}
}  // namespace

TEST(LogStats, CountsRanksAndHistogram) {
  LogStats s;
  s.add(ev(LogEvent::Type::Start, 1, ""));
  for (int i = 0; i < 3; i++) s.add(ev(LogEvent::Type::Assign, 10 + i, "curl"));
  s.add(ev(LogEvent::Type::Assign, 20, "dig"));
  s.add(ev(LogEvent::Type::Release, 30, "curl", 500'000ULL));           // < 1 ms
  s.add(ev(LogEvent::Type::Release, 31, "curl", 2'000'000ULL));         // < 10 ms
  s.add(ev(LogEvent::Type::Release, 32, "dig", 7'200'000'000'000ULL));  // >= 1 h
  s.add(ev(LogEvent::Type::Release, 33, "nginx"));                      // lifetime unknown
  s.add(ev(LogEvent::Type::Exhausted, 35, "loadgen"));
  s.add(ev(LogEvent::Type::Exhausted, 36, "loadgen"));
  LogEvent lost;
  lost.type = LogEvent::Type::Lost;
  lost.ts_ns = 40;
  lost.lost_count = 5;
  s.add(lost);
  EXPECT_EQ(s.assigns(), 4u);
  EXPECT_EQ(s.releases(), 4u);
  EXPECT_EQ(s.sessions(), 1u);
  EXPECT_EQ(s.lost(), 5u);
  EXPECT_EQ(s.exhausted(), 2u);
  ASSERT_EQ(s.histogram().size(), LogStats::buckets().size());
  EXPECT_EQ(s.histogram().front(), 1u);
  EXPECT_EQ(s.histogram()[1], 1u);
  EXPECT_EQ(s.histogram().back(), 1u);
  EXPECT_EQ(s.procs().at("curl (/usr/bin/curl)").assigns, 3u);
  EXPECT_EQ(s.procs().at("dig").held_ns, 7'200'000'000'000ULL);
  std::ostringstream out;
  s.print(out, 1, false);
  std::string text = out.str();
  // --top 1: only the busiest in each ranking
  EXPECT_NE(text.find("3  curl (/usr/bin/curl)"), std::string::npos) << text;
  EXPECT_EQ(text.find("1  dig (/usr/bin/dig)"), std::string::npos) << text;
  EXPECT_NE(text.find("2.0h  dig"), std::string::npos) << text;
  EXPECT_NE(text.find("LOST     5"), std::string::npos) << text;
  EXPECT_NE(text.find("2 x no free port for loadgen (/usr/bin/loadgen)"), std::string::npos) << text;
  std::ostringstream js;
  s.print(js, 10, true);
  std::string json = js.str();
  EXPECT_NE(json.find("\"release_without_lifetime\":1"), std::string::npos) << json;
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 1);
}
