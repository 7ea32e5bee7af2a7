#include <gtest/gtest.h>

#include "sinks/output.hpp"
#include "sinks/top.hpp"

using namespace portghost;

namespace {
constexpr uint64_t kS = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'795'307'725ULL * kS;

PortRecord rec(PortRecord::Type t, uint64_t sock, uint16_t port, uint32_t pid, std::string_view comm, uint64_t ts,
               Proto proto = Proto::Tcp, uint32_t netns = 111) {
  PortRecord r;
  r.type = t;
  r.sock = sock;
  r.lport = port;
  r.pid = pid;
  r.comm = comm;
  r.ts_ns = ts;
  r.proto = proto;
  r.netns = netns;
  return r;
}
}  // namespace

TEST(TopSink, HeldPortsOccupancyRatesAndLongestHolders) {
  StringOutput out;
  int range_calls = 0;
  TopSink top(out, [&](uint32_t netns) {
    range_calls++;
    return netns == 111 ? std::make_pair<uint16_t, uint16_t>(40000, 40009) : std::make_pair<uint16_t, uint16_t>(0, 0);
  });
  top.port(rec(PortRecord::Type::Existing, 1, 22, 10, "sshd", kT0 - 100 * kS));  // not ephemeral
  top.port(rec(PortRecord::Type::Assign, 2, 40001, 20, "curl", kT0 + kS / 2));
  top.port(rec(PortRecord::Type::Assign, 3, 40002, 20, "curl", kT0 + kS / 2));
  top.port(rec(PortRecord::Type::Assign, 4, 40003, 30, "dig", kT0 + kS / 2, Proto::Udp));
  top.port(rec(PortRecord::Type::Assign, 5, 40004, 20, "curl", kT0 + kS / 2));
  top.port(rec(PortRecord::Type::Release, 5, 40004, 20, "curl", kT0 + kS / 2));
  std::string s = top.render(kT0 + kS);
  EXPECT_NE(s.find("held 4"), std::string::npos) << s;
  EXPECT_NE(s.find("assigns/s 4"), std::string::npos) << s;
  // tcp in netns 111: sshd's 22 and curl's two ports held; 2 of 10 ephemeral
  EXPECT_NE(s.find("111          tcp        3  40000-40009     20.0%"), std::string::npos) << s;
  EXPECT_NE(s.find("111          udp        1  40000-40009     10.0%"), std::string::npos) << s;
  EXPECT_NE(s.find("20       curl                  2"), std::string::npos) << s;
  // the oldest holder first, its start unknown (held before the trace)
  auto longest = s.find("LONGEST HOLDERS");
  ASSERT_NE(longest, std::string::npos);
  EXPECT_NE(s.find("sshd", longest), std::string::npos);
  EXPECT_LT(s.find("sshd", longest), s.find("curl", longest)) << s;
  EXPECT_NE(s.find("tcp      22  > 101.0s", longest), std::string::npos) << s;
  EXPECT_EQ(range_calls, 1) << "the range of a namespace is read once";
  // a second later the assignment rate has decayed
  EXPECT_NE(top.render(kT0 + 3 * kS).find("assigns/s 0"), std::string::npos);
}
