#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "common/version.hpp"

using namespace portghost;

namespace {

struct Parsed {
  CliResult res;
  std::string out, err;
};

Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "portghost");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  Parsed p;
  p.res = parse_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  p.out = out.str();
  p.err = err.str();
  return p;
}

// A usage error: exit 2, nothing to run, nothing on out, one line on err.
void expect_usage_error(const std::vector<std::string>& args, const std::string& mentions = "") {
  std::string what;
  for (const auto& a : args) what += "'" + a + "' ";
  Parsed p = parse(args);
  EXPECT_FALSE(p.res.run) << what;
  EXPECT_EQ(p.res.exit_code, 2) << what;
  EXPECT_EQ(p.out, "") << what;
  EXPECT_EQ(std::count(p.err.begin(), p.err.end(), '\n'), 1) << what << "\n" << p.err;
  ASSERT_FALSE(p.err.empty()) << what;
  EXPECT_EQ(p.err.back(), '\n') << what;
  EXPECT_EQ(p.err.rfind("portghost:", 0), 0u) << what << "\n" << p.err;
  if (!mentions.empty()) {
    EXPECT_NE(p.err.find(mentions), std::string::npos) << what << "\n" << p.err;
  }
}

}  // namespace

TEST(Cli, NoArgumentsTracesWithDefaults) {
  Parsed p = parse({});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.exit_code, 0);
  EXPECT_EQ(p.res.command, "trace");
  const TraceOptions& o = p.res.trace;
  EXPECT_FALSE(o.format.has_value());
  EXPECT_EQ(o.output, "-");
  EXPECT_EQ(o.rotate_size_mb, 0u);
  EXPECT_EQ(o.rotate_keep, 5u);
  EXPECT_FALSE(o.filters.any());
  EXPECT_FALSE(o.duration_s.has_value());
  EXPECT_EQ(o.verbose, 0);
  EXPECT_EQ(o.ring_buffer_mb, 8u);
  EXPECT_TRUE(o.existing);
  EXPECT_EQ(o.nice, -4);
  EXPECT_EQ(p.out, "");
  EXPECT_EQ(p.err, "");
}

TEST(Cli, TraceIsTheDefaultCommand) {
  Parsed p = parse({"--pid", "5"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.command, "trace");
  EXPECT_EQ(p.res.trace.filters.pid, 5u);

  Parsed q = parse({"trace", "--pid", "5"});
  ASSERT_TRUE(q.res.run) << q.err;
  EXPECT_EQ(q.res.trace.filters.pid, 5u);
}

TEST(Cli, EveryTraceOption) {
  Parsed p = parse({"trace",
                    "--format",
                    "json",
                    "-o",
                    "/var/log/ports.jsonl",
                    "--rotate-size",
                    "100",
                    "--rotate-keep",
                    "10",
                    "--pid",
                    "1234",
                    "--comm",
                    "curl",
                    "--port-range",
                    "49152-65535",
                    "--proto",
                    "udp",
                    "--family",
                    "6",
                    "--netns",
                    "4026531840",
                    "--cgroup",
                    "/system.slice",
                    "--ephemeral-only",
                    "--duration",
                    "1.5",
                    "--ring-buffer-mb",
                    "16",
                    "--no-existing",
                    "--nice",
                    "-10",
                    "-vv"});
  ASSERT_TRUE(p.res.run) << p.err;
  const TraceOptions& o = p.res.trace;
  EXPECT_EQ(o.format, Format::Json);
  EXPECT_EQ(o.output, "/var/log/ports.jsonl");
  EXPECT_EQ(o.rotate_size_mb, 100u);
  EXPECT_EQ(o.rotate_keep, 10u);
  EXPECT_EQ(o.filters.pid, 1234u);
  EXPECT_EQ(o.filters.comm, "curl");
  EXPECT_EQ(o.filters.port_lo, 49152);
  EXPECT_EQ(o.filters.port_hi, 65535);
  EXPECT_EQ(o.filters.proto, Proto::Udp);
  EXPECT_EQ(o.filters.family, Family::Ipv6);
  EXPECT_EQ(o.filters.netns, 4026531840u);
  EXPECT_EQ(o.filters.cgroup, "/system.slice");
  EXPECT_TRUE(o.filters.ephemeral_only);
  ASSERT_TRUE(o.duration_s.has_value());
  EXPECT_DOUBLE_EQ(*o.duration_s, 1.5);
  EXPECT_EQ(o.ring_buffer_mb, 16u);
  EXPECT_FALSE(o.existing);
  EXPECT_EQ(o.nice, -10);
  EXPECT_EQ(o.verbose, 2);
}

TEST(Cli, OtherSpellings) {
  Parsed p = parse({"--format", "table", "--output", "out.jsonl", "--proto", "tcp", "--family", "4", "--verbose"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.trace.format, Format::Table);
  EXPECT_EQ(p.res.trace.output, "out.jsonl");
  EXPECT_EQ(p.res.trace.filters.proto, Proto::Tcp);
  EXPECT_EQ(p.res.trace.filters.family, Family::Ipv4);
  EXPECT_EQ(p.res.trace.verbose, 1);
}

TEST(Cli, SinglePort) {
  Parsed p = parse({"--port", "8080"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.trace.filters.port_lo, 8080);
  EXPECT_EQ(p.res.trace.filters.port_hi, 8080);

  Parsed zero = parse({"--port", "0"});
  ASSERT_TRUE(zero.res.run) << zero.err;
  EXPECT_EQ(zero.res.trace.filters.port_lo, 0);
  EXPECT_EQ(zero.res.trace.filters.port_hi, 0);
  EXPECT_TRUE(zero.res.trace.filters.any());
}

TEST(Cli, FifteenCharacterCommIsAccepted) {
  Parsed p = parse({"--comm", "abcdefghijklmno"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.trace.filters.comm, "abcdefghijklmno");
}

TEST(Cli, BadFormat) { expect_usage_error({"--format", "bogus"}, "--format"); }
TEST(Cli, PortOutOfRange) { expect_usage_error({"--port", "70000"}, "--port"); }
TEST(Cli, ReversedPortRange) { expect_usage_error({"--port-range", "9-1"}, "9-1"); }
TEST(Cli, MalformedPortRange) {
  expect_usage_error({"--port-range", "a-b"}, "--port-range");
  expect_usage_error({"--port-range", "1-70000"}, "--port-range");
}
TEST(Cli, UnknownProto) { expect_usage_error({"--proto", "dccp"}, "--proto"); }
TEST(Cli, LongComm) {
  expect_usage_error({"--comm", "abcdefghijklmnop"}, "--comm");  // 16
  expect_usage_error({"--comm", "a-very-long-process-name"}, "--comm");
  expect_usage_error({"--comm", ""}, "--comm");
}
TEST(Cli, UnknownFlag) {
  expect_usage_error({"--bogus"}, "--bogus");
  expect_usage_error({"trace", "--bogus"}, "--bogus");
}
TEST(Cli, UnknownCommandOrStrayArgument) {
  expect_usage_error({"frobnicate"});
  expect_usage_error({"trace", "extra"});
}
TEST(Cli, OtherBadValues) {
  expect_usage_error({"--family", "5"}, "--family");
  expect_usage_error({"--pid", "0"}, "--pid");
  expect_usage_error({"--pid", "abc"}, "--pid");
  expect_usage_error({"--pid"}, "--pid");
  expect_usage_error({"--duration", "-1"}, "--duration");
  expect_usage_error({"--duration", "0"}, "--duration");
  expect_usage_error({"--ring-buffer-mb", "3"}, "--ring-buffer-mb");
  expect_usage_error({"--ring-buffer-mb", "0"}, "--ring-buffer-mb");
  expect_usage_error({"--rotate-size", "0"}, "--rotate-size");
  expect_usage_error({"--nice", "-21"}, "--nice");
  expect_usage_error({"--nice", "20"}, "--nice");
  expect_usage_error({"--output", ""}, "--output");
  expect_usage_error({"--port", "80", "--port-range", "1-2"}, "exclude");
}

TEST(Cli, HelpListsExamples) {
  for (const char* flag : {"--help", "-h"}) {
    Parsed p = parse({flag});
    EXPECT_FALSE(p.res.run) << flag;
    EXPECT_EQ(p.res.exit_code, 0) << flag;
    EXPECT_NE(p.out.find("Examples"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("trace"), std::string::npos) << p.out;
    EXPECT_EQ(p.err, "") << flag;
  }
}

TEST(Cli, TraceHelpListsEveryOption) {
  Parsed p = parse({"trace", "--help"});
  EXPECT_FALSE(p.res.run);
  EXPECT_EQ(p.res.exit_code, 0);
  EXPECT_EQ(p.err, "");
  for (const char* opt : {"--port-range", "--format", "--output", "--rotate-size", "--rotate-keep", "--pid", "--comm",
                          "--port", "--proto", "--family", "--netns", "--cgroup", "--ephemeral-only", "--duration",
                          "--ring-buffer-mb", "--no-existing", "--nice", "--verbose", "Exit status"}) {
    EXPECT_NE(p.out.find(opt), std::string::npos) << opt << " missing from\n" << p.out;
  }
}

TEST(Cli, HelpAfterTraceOptionsStillHelps) {
  Parsed p = parse({"--pid", "5", "--help"});
  EXPECT_FALSE(p.res.run);
  EXPECT_EQ(p.res.exit_code, 0);
  EXPECT_NE(p.out.find("--port-range"), std::string::npos) << p.out;
  EXPECT_EQ(p.err, "");
}

TEST(Cli, Version) {
  Parsed p = parse({"--version"});
  EXPECT_FALSE(p.res.run);
  EXPECT_EQ(p.res.exit_code, 0);
  EXPECT_EQ(p.out, std::string("portghost ") + kVersion + "\n");
  EXPECT_EQ(p.err, "");
}

TEST(Cli, DurationMustBeFinite) {
  expect_usage_error({"--duration", "nan"}, "--duration");
  expect_usage_error({"--duration", "0"}, "--duration");
}

// Every command that takes a ClickHouse URL takes the CA file to verify its
// server by (the file itself is read when the URL is: fleet/clickhouse_endpoint).
TEST(Cli, CaFileOnEveryCommandThatTakesAStore) {
  const std::string url = "clickhouses://db1/portghost";
  Parsed p = parse({"ship", "/var/log/portghost", "--to", url, "--ca-file", "/etc/ca.pem"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.ship.ca_file, "/etc/ca.pem");
  p = parse({"who", "60302", "--from", url, "--ca-file", "/etc/ca.pem"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.who.store.ca_file, "/etc/ca.pem");
  p = parse({"stats", "--from", url, "--ca-file", "/etc/ca.pem"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.stats.store.ca_file, "/etc/ca.pem");
  p = parse({"schema", "clickhouse", "--apply", url, "--ca-file", "/etc/ca.pem"});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_EQ(p.res.schema.ca_file, "/etc/ca.pem");
  p = parse({"ship", "/var/log/portghost", "--to", url});
  ASSERT_TRUE(p.res.run) << p.err;
  EXPECT_FALSE(p.res.ship.ca_file) << "none given: the system's CAs";
  expect_usage_error({"schema", "clickhouse", "--ca-file", "/etc/ca.pem"}, "--apply");
  expect_usage_error({"ship", "/var/log/portghost", "--to", url, "--ca-file", ""}, "--ca-file");
  for (const char* cmd : {"ship", "who", "stats", "schema"}) {
    Parsed h = parse({cmd, "--help"});
    EXPECT_NE(h.out.find("--ca-file"), std::string::npos) << cmd << " --help:\n" << h.out;
    EXPECT_NE(h.out.find("clickhouses://"), std::string::npos) << cmd << " --help:\n" << h.out;
  }
}
