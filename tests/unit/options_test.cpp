#include <gtest/gtest.h>

#include <utility>

#include "common/options.hpp"
#include "trace/record_filter.hpp"

using namespace portghost;

namespace {

using Range = std::optional<std::pair<uint16_t, uint16_t>>;

Range range(uint16_t lo, uint16_t hi) { return std::make_pair(lo, hi); }

PortRecord record() {
  PortRecord r;
  r.type = PortRecord::Type::Assign;
  r.proto = Proto::Tcp;
  r.family = Family::Ipv4;
  r.laddr = "127.0.0.1";
  r.lport = 8080;
  r.pid = 42;
  r.comm = std::string_view("nginx");
  r.netns = 4026531840u;
  r.ephemeral = false;
  return r;
}

}  // namespace

TEST(ParsePortRange, ValidRanges) {
  EXPECT_EQ(parse_port_range("80"), range(80, 80));
  EXPECT_EQ(parse_port_range("0"), range(0, 0));
  EXPECT_EQ(parse_port_range("65535"), range(65535, 65535));
  EXPECT_EQ(parse_port_range("1000-2000"), range(1000, 2000));
  EXPECT_EQ(parse_port_range("5-5"), range(5, 5));
  EXPECT_EQ(parse_port_range("0-65535"), range(0, 65535));
  EXPECT_EQ(parse_port_range("49152-65535"), range(49152, 65535));
  EXPECT_EQ(parse_port_range("007-08"), range(7, 8)) << "leading zeros are digits";
}

TEST(ParsePortRange, InvalidRanges) {
  for (const char* bad : {"10-5",   "70000", "65536", "0-65536", "a-b",   "a",          "1-b",
                          "",       "-",     "-5",    "5-",      "1-2-3", " 80",        "80 ",
                          "80-90 ", "+80",   "0x50",  "8o",      "1..2",  "4294967376", "99999999999999999999"}) {
    EXPECT_EQ(parse_port_range(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(Filters, DefaultMatchesEverything) {
  Filters f;
  EXPECT_FALSE(f.any());
  EXPECT_TRUE(matches(f, record()));
  PortRecord bare;  // no owner at all
  EXPECT_TRUE(matches(f, bare));
}

TEST(Filters, AnyNoticesEachFilter) {
  auto set = [](auto mut) {
    Filters f;
    mut(f);
    return f.any();
  };
  EXPECT_TRUE(set([](Filters& f) { f.pid = 1; }));
  EXPECT_TRUE(set([](Filters& f) { f.comm = "x"; }));
  EXPECT_TRUE(set([](Filters& f) { f.port_lo = 1; }));
  EXPECT_TRUE(set([](Filters& f) { f.port_hi = 65534; }));
  EXPECT_TRUE(set([](Filters& f) { f.proto = Proto::Udp; }));
  EXPECT_TRUE(set([](Filters& f) { f.family = Family::Ipv6; }));
  EXPECT_TRUE(set([](Filters& f) { f.netns = 1; }));
  EXPECT_TRUE(set([](Filters& f) { f.cgroup = "/x"; }));
  EXPECT_TRUE(set([](Filters& f) { f.ephemeral_only = true; }));
}

TEST(Filters, Pid) {
  Filters f;
  f.pid = 42;
  EXPECT_TRUE(matches(f, record()));
  f.pid = 43;
  EXPECT_FALSE(matches(f, record()));
  PortRecord unowned = record();
  unowned.pid.reset();
  f.pid = 42;
  EXPECT_FALSE(matches(f, unowned)) << "an unknown owner never matches a pid filter";
}

TEST(Filters, Comm) {
  Filters f;
  f.comm = "nginx";
  EXPECT_TRUE(matches(f, record()));
  f.comm = "ngin";
  EXPECT_FALSE(matches(f, record())) << "exact, not a prefix";
  f.comm = "NGINX";
  EXPECT_FALSE(matches(f, record()));
  PortRecord unnamed = record();
  unnamed.comm.reset();
  f.comm = "nginx";
  EXPECT_FALSE(matches(f, unnamed));
}

TEST(Filters, PortRangeIsInclusive) {
  Filters f;
  f.port_lo = 8080;
  f.port_hi = 8090;
  PortRecord r = record();
  const std::pair<int, bool> cases[] = {{8079, false}, {8080, true}, {8085, true}, {8090, true}, {8091, false}};
  for (auto [port, ok] : cases) {
    r.lport = static_cast<uint16_t>(port);
    EXPECT_EQ(matches(f, r), ok) << port;
  }
}

TEST(Filters, ProtoFamilyNetns) {
  PortRecord r = record();
  Filters f;
  f.proto = Proto::Tcp;
  EXPECT_TRUE(matches(f, r));
  f.proto = Proto::Udp;
  EXPECT_FALSE(matches(f, r));

  Filters g;
  g.family = Family::Ipv4;
  EXPECT_TRUE(matches(g, r));
  g.family = Family::Ipv6;
  EXPECT_FALSE(matches(g, r));

  Filters n;
  n.netns = 4026531840u;
  EXPECT_TRUE(matches(n, r));
  n.netns = 4026532000u;
  EXPECT_FALSE(matches(n, r));
  r.netns.reset();
  n.netns = 4026531840u;
  EXPECT_FALSE(matches(n, r));
}

TEST(Filters, EphemeralOnly) {
  Filters f;
  f.ephemeral_only = true;
  PortRecord r = record();
  r.ephemeral = true;
  EXPECT_TRUE(matches(f, r));
  r.ephemeral = false;
  EXPECT_FALSE(matches(f, r));
  r.ephemeral.reset();
  EXPECT_FALSE(matches(f, r)) << "unknown is not ephemeral";
}

TEST(Filters, CgroupIsLeftToTheCaller) {
  Filters f;
  f.cgroup = "/system.slice/nginx.service";
  EXPECT_TRUE(f.any());
  EXPECT_TRUE(matches(f, record())) << "matches() cannot see cgroups";
}

TEST(Filters, AllFiltersTogether) {
  Filters f;
  f.pid = 42;
  f.comm = "nginx";
  f.port_lo = 8000;
  f.port_hi = 9000;
  f.proto = Proto::Tcp;
  f.family = Family::Ipv4;
  f.netns = 4026531840u;
  PortRecord r = record();
  EXPECT_TRUE(matches(f, r));
  r.proto = Proto::Udp;
  EXPECT_FALSE(matches(f, r)) << "one mismatch is enough";
}
