// The log reader within bounds: a piece at a time, a line at most 16 MiB, a
// .gz no further than a real log could go, and never a FIFO or a link.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "logs/log_reader.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::TempDir;
using pgtest::write_file;

namespace {

constexpr uint64_t kT0 = 1'795'307'725'000'000'000ULL;

std::string start_line(uint64_t ts, const std::string& pad = "") {
  return "{\"type\":\"start\",\"ts_ns\":" + std::to_string(ts) + ",\"host\":\"web-1\",\"pad\":\"" + pad + "\"}\n";
}
std::string assign_line(uint64_t ts, uint16_t port, const std::string& host = "web-1") {
  return "{\"type\":\"assign\",\"ts_ns\":" + std::to_string(ts) +
         ",\"sock\":7,\"proto\":\"udp\",\"lport\":" + std::to_string(port) +
         ",\"pid\":42,\"comm\":\"curl\",\"host\":\"" + host + "\"}\n";
}

struct Read {
  std::vector<LogEvent> events;
  ReadStats stats;
  std::string warn;
};

Read read(const std::string& path, const ReadLimits& limits = {}, std::optional<uint16_t> port = std::nullopt) {
  Read r;
  std::ostringstream warn;
  r.stats = read_log(
      path, port, [&](LogEvent&& e) { r.events.push_back(std::move(e)); }, warn, limits);
  r.warn = warn.str();
  return r;
}

void gzip_file(const std::string& path, const std::string& text, int times = 1) {
  gzFile f = gzopen(path.c_str(), "wb9");
  for (int i = 0; i < times; i++) gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
}

// read_log(path) in a child that SIGALRM ends after 5 s: its error text, or
// "HUNG" if it did not come back, "READ" if it read without an error.
std::string read_in_child(const std::string& path) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    alarm(5);
    std::string out = "READ";
    try {
      std::ostringstream warn;
      read_log(
          path, std::nullopt, [](LogEvent&&) {}, warn);
    } catch (const FatalError& e) {
      out = e.what();
    }
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  return WIFSIGNALED(status) ? "HUNG" : got;
}

}  // namespace

TEST(ReadLogBounds, ALineLongerThanTheCapIsSkippedAndCountedOnce) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  std::string text = start_line(kT0) + std::string(kMaxLogLine + 1, 'x') + "\n" + assign_line(kT0 + 1, 5000) +
                     std::string(kMaxLogLine * 2, '{') + "\n" + assign_line(kT0 + 2, 5000);
  write_file(path, text);
  Read r = read(path);
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[1].type, LogEvent::Type::Assign);
  EXPECT_EQ(r.events[2].ts_ns, kT0 + 2);
  EXPECT_EQ(r.stats.bad_lines, 2u);
  EXPECT_EQ(r.stats.lines, 5u);
  EXPECT_EQ(r.stats.bytes, text.size());
  EXPECT_NE(r.warn.find(path + ":2: longer than 16777216 bytes"), std::string::npos) << r.warn;
  EXPECT_EQ(std::count(r.warn.begin(), r.warn.end(), '\n'), 1) << r.warn;
}

TEST(ReadLogBounds, ALineAtTheCapIsRead) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  std::string at_cap = start_line(kT0, "");
  at_cap = start_line(kT0, std::string(kMaxLogLine - (at_cap.size() - 1), 'p'));
  ASSERT_EQ(at_cap.size(), kMaxLogLine + 1);  // the line and its newline
  write_file(path, at_cap + assign_line(kT0 + 1, 5000));
  Read r = read(path);
  ASSERT_EQ(r.events.size(), 2u) << r.warn;
  EXPECT_EQ(r.events[0].type, LogEvent::Type::Start);
  EXPECT_EQ(r.stats.bad_lines, 0u);
}

TEST(ReadLogBounds, LinesCutByPiecesOfEverySizeReadTheSame) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  std::string text = start_line(kT0) + "\n" + assign_line(kT0 + 1, 5000) + "garbage\n" + assign_line(kT0 + 2, 6000) +
                     std::string(300, 'y') + "\n" + assign_line(kT0 + 3, 5000) + "{\"type\":\"assign\",\"ts_ns\":9";
  write_file(path, text);
  ReadLimits whole;
  Read want = read(path, whole, 5000);
  ASSERT_EQ(want.events.size(), 4u) << want.warn;  // start, assign, a tick for 6000's, assign
  EXPECT_EQ(want.stats.bad_lines, 3u);             // garbage, too long, the cut last line
  for (size_t chunk : {1, 2, 3, 7, 64, 199, 250}) {
    ReadLimits l;
    l.chunk = chunk;
    l.max_line = 250;
    Read got = read(path, l, 5000);
    ASSERT_EQ(got.events.size(), want.events.size()) << chunk;
    for (size_t i = 0; i < got.events.size(); i++) {
      EXPECT_EQ(got.events[i].type, want.events[i].type) << chunk;
      EXPECT_EQ(got.events[i].ts_ns, want.events[i].ts_ns) << chunk;
    }
    EXPECT_EQ(got.stats.lines, want.stats.lines) << chunk;
    EXPECT_EQ(got.stats.bytes, text.size()) << chunk;
    EXPECT_EQ(got.stats.bad_lines, 3u) << chunk;
    EXPECT_NE(got.warn.find(path + ":4: not a JSON object"), std::string::npos) << chunk << got.warn;
  }
}

TEST(ReadLogBounds, AGzipBombIsRefusedQuickly) {
  TempDir dir;
  std::string bomb = dir / "events.jsonl.1.gz";
  gzip_file(bomb, std::string(1u << 20, '\0'), 80);  // 80 MiB of zeros in ~80 KB
  auto t0 = std::chrono::steady_clock::now();
  try {
    read(bomb);
    FAIL() << "a bomb was read";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("decompression bomb"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // a log that compresses as logs do is read whole, past the floor too
  std::string log = dir / "events.jsonl.2.gz";
  std::string text;
  for (int i = 0; i < 2000; i++) text += assign_line(kT0 + static_cast<uint64_t>(i) * 7919, 5000);
  gzip_file(log, text);
  ReadLimits l;
  l.gz_floor = 1000;
  EXPECT_EQ(read(log, l).events.size(), 2000u);
  l.gz_ratio = 2;
  EXPECT_THROW(read(log, l), FatalError);
}

TEST(ReadLogBounds, AFifoIsRefusedAtOnce) {
  TempDir dir;
  std::string fifo = dir / "events.jsonl.1";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got = read_in_child(fifo);
  EXPECT_NE(got.find("is not a regular file (a FIFO)"), std::string::npos) << got;
  std::string gz = dir / "events.jsonl.2.gz";
  ASSERT_EQ(mkfifo(gz.c_str(), 0600), 0);
  got = read_in_child(gz);
  EXPECT_NE(got.find("is not a regular file (a FIFO)"), std::string::npos) << got;
  EXPECT_NE(read_in_child("/dev/null").find("is not a regular file (a device)"), std::string::npos);
}

TEST(ReadLogBounds, ALinkIsNotFollowedAndADirectorysOddEntriesAreSkipped) {
  TempDir dir;
  write_file(dir / "events.jsonl", start_line(kT0));
  write_file(dir / "elsewhere", start_line(kT0 - 1));
  ASSERT_EQ(symlink((dir / "elsewhere").c_str(), (dir / "events.jsonl.1").c_str()), 0);
  ASSERT_EQ(mkfifo((dir / "events.jsonl.2.gz").c_str(), 0600), 0);
  std::string got = read_in_child(dir / "events.jsonl.1");
  EXPECT_NE(got.find("is a symbolic link: not followed"), std::string::npos) << got;
  std::ostringstream warn;
  auto paths = expand_log_paths({dir.path()}, &warn);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0], dir / "events.jsonl");
  EXPECT_NE(warn.str().find(dir / "events.jsonl.1 is not a regular file (a symbolic link): skipped"), std::string::npos)
      << warn.str();
  EXPECT_NE(warn.str().find(dir / "events.jsonl.2.gz is not a regular file (a FIFO): skipped"), std::string::npos)
      << warn.str();
}

TEST(ReadLogBounds, AHostNoShipperSendsIsABadLine) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  write_file(path, start_line(kT0) + assign_line(kT0 + 1, 5000, "web\\t1") + assign_line(kT0 + 2, 5000, "web\\n1") +
                       assign_line(kT0 + 3, 5000, std::string(256, 'h')) + assign_line(kT0 + 4, 5000));
  Read r = read(path);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1].ts_ns, kT0 + 4);
  EXPECT_EQ(r.stats.bad_lines, 3u);
  EXPECT_NE(r.warn.find(":2: a host with a control character"), std::string::npos) << r.warn;
  EXPECT_TRUE(valid_host_name(std::string(255, 'h')));
  EXPECT_TRUE(valid_host_name("web-1.example.org"));
  EXPECT_FALSE(valid_host_name("web\x7f"));
}
