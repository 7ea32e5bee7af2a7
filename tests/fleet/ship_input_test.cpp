// What `portghost ship` reads from a log directory that another user may
// write (the tracer's --user owns it): files that are not logs are not
// read or waited on, and a line no log of ours has is dropped at a bound,
// in plain and in compressed files alike.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fleet_fixture.hpp"

using namespace pgfleet;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);) out.push_back(l + "\n");
  return out;
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// A FIFO and a link planted at rotated names: neither is read (the FIFO
// would block the shipper for ever, the link could feed it any file's
// lines), each is named once, and the real files are all sent.
TEST_F(Fleet, FilesThatAreNotLogsAmongTheRotatedOnesAreNotRead) {
  LogShape shape;
  shape.sessions = 1;
  shape.records_per_session = 200;
  auto written = make_log(dir_ / "events.jsonl", shape);
  TempDir elsewhere;
  LogShape other = shape;
  other.host = "intruder";
  make_log(elsewhere / "events.jsonl", other);
  ASSERT_EQ(symlink((elsewhere / "events.jsonl").c_str(), (dir_ / "events.jsonl.1").c_str()), 0);
  ASSERT_EQ(mkfifo((dir_ / "events.jsonl.2").c_str(), 0600), 0);
  RunResult r = run_portghost(ship_args(dir_.path(), store_url(*server_, db_)), 20);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(occurrences(r.err, dir_ / "events.jsonl.2 is not a regular file: not read"), 1u) << r.err;
  EXPECT_EQ(occurrences(r.err, dir_ / "events.jsonl.1 is a symbolic link: not read"), 1u) << r.err;
  EXPECT_NE(r.err.find("2 files not read"), std::string::npos) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), expected_counts(shape.host, written)) << "no intruder's record";
}

// A line longer than any record (16 MiB) in a rotated .gz copy and in the
// live file: each is dropped to its end as it is read, not held whole, and
// every record around it is sent.
TEST_F(Fleet, ALineLongerThanTheCapIsDroppedInPlainAndCompressedFiles) {
  LogShape shape;
  shape.sessions = 2;
  shape.records_per_session = 300;
  TempDir made;
  auto written = make_log(made / "events.jsonl", shape);
  std::vector<std::string> lines = lines_of(made / "events.jsonl");
  ASSERT_GT(lines.size(), 100u);
  const std::string huge(20u << 20, 'x');
  size_t half = lines.size() / 2;
  gzFile gz = gzopen((dir_ / "events.jsonl.1.gz").c_str(), "wb1");
  ASSERT_NE(gz, nullptr);
  for (size_t i = 0; i < half; i++) {
    if (i == half / 2) {
      ASSERT_EQ(gzwrite(gz, huge.data(), static_cast<unsigned>(huge.size())), static_cast<int>(huge.size()));
      gzputs(gz, "\n");
    }
    gzputs(gz, lines[i].c_str());
  }
  ASSERT_EQ(gzclose(gz), Z_OK);
  std::ofstream live(dir_ / "events.jsonl");
  for (size_t i = half; i < lines.size(); i++) {
    if (i == half + 10) live << huge << "\n";
    live << lines[i];
  }
  live.close();
  RunResult r = run_portghost(ship_args(dir_.path(), store_url(*server_, db_)), 60);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(occurrences(r.err, "a line longer than 16 MiB, skipped"), 2u) << r.err;
  EXPECT_NE(r.err.find(", 2 unreadable lines skipped"), std::string::npos) << r.err;
  EXPECT_EQ(store_counts(*server_, db_), expected_counts(shape.host, written));
}

}  // namespace
