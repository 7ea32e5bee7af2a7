// Bad input, table-driven: every case ends in one clear line on stderr
// (starting "portghost:") and a non-zero exit, never a crash or raw bytes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "common/errors.hpp"
#include "common/text.hpp"
#include "logs/stats.hpp"
#include "logs/who.hpp"
#include "test_util.hpp"
#include "trace/sink.hpp"

using namespace portghost;
using pgtest::TempDir;
using pgtest::write_file;

namespace {

struct Outcome {
  int code = 0;
  std::string err;
};

// What main() does for the commands that need no root.
Outcome run(std::vector<std::string> args) {
  args.insert(args.begin(), "portghost");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  CliResult cli = parse_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  Outcome o;
  try {
    if (!cli.run)
      o.code = cli.exit_code;
    else if (cli.command == "who")
      o.code = run_who(cli.who, out, err);
    else if (cli.command == "stats")
      o.code = run_stats(cli.stats, out, err);
    else
      o.code = -1;                 // trace/top would start tracing: not a bad-input case
  } catch (const FatalError& e) {  // as main() reports it
    err << "portghost: " << e.what() << "\n";
    o.code = e.code();
  }
  o.err = err.str();
  return o;
}

struct Case {
  std::vector<std::string> args;
  int code;
  std::string mentions;
};

void check(const Case& c) {
  std::string what;
  for (const auto& a : c.args) what += "'" + portghost::printable(a) + "' ";
  Outcome o = run(c.args);
  EXPECT_EQ(o.code, c.code) << what << "\n" << o.err;
  ASSERT_FALSE(o.err.empty()) << what;
  // the last line is the error; earlier ones may warn about single bad lines
  std::string last = o.err.substr(
      o.err.rfind('\n', o.err.size() - 2) == std::string::npos ? 0 : o.err.rfind('\n', o.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("portghost:", 0), 0u) << what << "\n" << o.err;
  EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 1) << what << "\n" << o.err;
  EXPECT_NE(last.find(c.mentions), std::string::npos) << what << "\n" << o.err;
  for (unsigned char ch : o.err)
    EXPECT_TRUE(ch == '\n' || (ch >= 0x20 && ch < 0x7f)) << what << ": raw byte " << int(ch);
}

}  // namespace

TEST(BadInput, CommandLines) {
  const std::vector<Case> cases = {
      {{"--no-such-flag"}, 2, "--no-such-flag"},
      {{"who"}, 2, "PORT"},
      {{"who", "-1"}, 2, "PORT"},
      {{"who", "65536"}, 2, "PORT"},
      {{"who", "99999999999999999999"}, 2, "PORT"},
      {{"who", ""}, 2, "PORT"},
      {{"who", "\xff\xfe\x1b[2J"}, 2, "\\xff\\xfe\\x1b[2J"},
      {{"who", "443", "--at", "yesterday-ish"}, 2, "--at"},
      {{"who", "443", "--at", ""}, 2, "--at"},
      {{"who", "443", "--at", "\xc3\x28"}, 2, "--at"},
      {{"who", "443", "--since", "10:00", "--until", "09:00"}, 2, "--until"},
      {{"who", "443", "--format", "xml"}, 2, "--format"},
      {{"stats", "--top", "0"}, 2, "--top"},
      {{"trace", "--port", "-5"}, 2, "--port"},
      {{"trace", "--port", "65536"}, 2, "--port"},
      {{"trace", "--port-range", "60000-1024"}, 2, "60000-1024"},
      {{"trace", "--port-range", ""}, 2, "--port-range"},
      {{"trace", "--comm", "\xff"}, -1, ""},  // a name is any bytes (<= 15): accepted
      {{"trace", "--pid", "4294967296"}, 2, "--pid"},
      {{"trace", "--rotate-keep", "-1"}, 2, "--rotate-keep"},
      {{"trace", "--warn-occupancy", "101"}, 2, "--warn-occupancy"},
  };
  for (const auto& c : cases) {
    if (c.code == -1) {
      EXPECT_EQ(run(c.args).code, -1);
      continue;
    }
    check(c);
  }
}

TEST(BadInput, Logs) {
  TempDir dir;
  write_file(dir / "empty.jsonl", "");
  std::string binary;
  for (int i = 0; i < 4096; i++) binary += static_cast<char>((i * 131 + 7) & 0xff);
  write_file(dir / "binary.jsonl", binary);
  write_file(dir / "future.jsonl", "{\"type\":\"teleport\",\"ts_ns\":5,\"schema\":99}\n");
  write_file(dir / "unreadable.jsonl", "{}\n");
  chmod((dir / "unreadable.jsonl").c_str(), 0);
  const std::vector<Case> cases = {
      {{"who", "443", dir / "empty.jsonl"}, 1, "empty"},
      {{"who", "443", dir / "binary.jsonl"}, 1, "not a portghost log"},
      {{"who", "443", dir / "future.jsonl"}, 1, "newer portghost"},
      {{"who", "443", dir / "missing.jsonl"}, 1, "missing.jsonl"},
      {{"stats", dir / "empty.jsonl"}, 1, "empty"},
      {{"stats", dir / "binary.jsonl"}, 1, "not a portghost log"},
      {{"stats", dir / "future.jsonl"}, 1, "newer portghost"},
  };
  for (const auto& c : cases) check(c);
  if (geteuid() != 0) check({{"who", "443", dir / "unreadable.jsonl"}, 1, "Permission denied"});
}
