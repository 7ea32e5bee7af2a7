#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "sinks/output.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::exists;
using pgtest::read_file;
using pgtest::TempDir;
using pgtest::write_file;

namespace {

std::string numbered_line(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "line-%02d\n", i);  // 8 bytes
  return buf;
}

}  // namespace

TEST(StringOutput, CollectsText) {
  StringOutput o;
  o.write("a");
  o.write("bc\n");
  o.flush();
  EXPECT_EQ(o.text(), "abc\n");
  EXPECT_FALSE(o.is_terminal());
  o.clear();
  EXPECT_EQ(o.text(), "");
}

TEST(FileOutput, CreatesAMissingFile) {
  TempDir d;
  {
    FileOutput o(d / "new.jsonl", {});
    EXPECT_EQ(o.path(), d / "new.jsonl");
    EXPECT_TRUE(exists(d / "new.jsonl")) << "opened at construction, before any write";
    EXPECT_FALSE(o.is_terminal());
    o.write("{}\n");
    o.flush();
  }
  EXPECT_EQ(read_file(d / "new.jsonl"), "{}\n");
  struct stat st {};
  ASSERT_EQ(stat((d / "new.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0007, 0u) << "not world-readable";
}

TEST(FileOutput, AppendsToAnExistingFileWithoutTruncating) {
  TempDir d;
  write_file(d / "log", "old 1\nold 2\n");
  {
    FileOutput o(d / "log", {});
    o.write("new 1\n");
    o.flush();
    o.write("new 2\n");
    o.flush();
  }
  EXPECT_EQ(read_file(d / "log"), "old 1\nold 2\nnew 1\nnew 2\n");
  {
    FileOutput again(d / "log", {});
    again.write("new 3\n");
  }  // the destructor flushes
  EXPECT_EQ(read_file(d / "log"), "old 1\nold 2\nnew 1\nnew 2\nnew 3\n");
}

TEST(FileOutput, WritesAreBufferedUntilFlush) {
  TempDir d;
  FileOutput o(d / "log", {});
  o.write("pending\n");
  EXPECT_EQ(read_file(d / "log"), "") << "nothing written before the flush";
  o.flush();
  EXPECT_EQ(read_file(d / "log"), "pending\n");
  o.flush();  // an empty flush writes nothing more
  EXPECT_EQ(read_file(d / "log"), "pending\n");
}

TEST(FileOutput, RotationKeepsWholeLinesAndShiftsFiles) {
  TempDir d;
  const std::string f = d / "ports.jsonl";
  std::string all;
  {
    FileOutput o(f, {/*max_bytes=*/20, /*keep=*/2});
    for (int i = 0; i < 10; i++) {
      o.write(numbered_line(i));
      all += numbered_line(i);
      o.flush();
      // never more than max_bytes: two 8-byte lines fit, a third rotates
      EXPECT_LE(read_file(f).size(), 20u) << "after line " << i;
    }
  }
  std::string cur = read_file(f), r1 = read_file(f + ".1"), r2 = read_file(f + ".2");
  EXPECT_FALSE(exists(f + ".3")) << "keep=2: nothing beyond FILE.2";
  EXPECT_EQ(cur, numbered_line(8) + numbered_line(9));
  EXPECT_EQ(r1, numbered_line(6) + numbered_line(7));
  EXPECT_EQ(r2, numbered_line(4) + numbered_line(5));
  for (const std::string* s : {&cur, &r1, &r2}) {
    ASSERT_FALSE(s->empty());
    EXPECT_EQ(s->back(), '\n') << "every file ends with a whole line";
  }
  // oldest to newest, the kept files are the tail of what was written, in order
  std::string kept = r2 + r1 + cur;
  EXPECT_EQ(all.substr(all.size() - kept.size()), kept);
}

TEST(FileOutput, RotationNeverSplitsOneFlushAcrossFiles) {
  TempDir d;
  const std::string f = d / "log";
  FileOutput o(f, {/*max_bytes=*/20, /*keep=*/3});
  o.write(numbered_line(0));
  o.flush();
  // three lines in one batch: they go together into the new file
  o.write(numbered_line(1) + numbered_line(2) + numbered_line(3));
  o.flush();
  EXPECT_EQ(read_file(f + ".1"), numbered_line(0));
  EXPECT_EQ(read_file(f), numbered_line(1) + numbered_line(2) + numbered_line(3));
  EXPECT_FALSE(exists(f + ".2"));
}

TEST(FileOutput, RotationCountsWhatTheFileAlreadyHeld) {
  TempDir d;
  const std::string f = d / "log";
  write_file(f, std::string(15, 'x') + "\n");  // 16 bytes from an earlier run
  {
    FileOutput o(f, {/*max_bytes=*/20, /*keep=*/1});
    o.write(numbered_line(1));  // 16 + 8 > 20
    o.flush();
  }
  EXPECT_EQ(read_file(f + ".1"), std::string(15, 'x') + "\n");
  EXPECT_EQ(read_file(f), numbered_line(1));
}

TEST(FileOutput, KeepOneReplacesTheRotatedFile) {
  TempDir d;
  const std::string f = d / "log";
  {
    FileOutput o(f, {/*max_bytes=*/10, /*keep=*/1});
    for (int i = 0; i < 4; i++) {
      o.write(numbered_line(i));
      o.flush();
    }
  }
  EXPECT_EQ(read_file(f), numbered_line(3));
  EXPECT_EQ(read_file(f + ".1"), numbered_line(2));
  EXPECT_FALSE(exists(f + ".2"));
}

TEST(FileOutput, KeepZeroTruncatesInPlace) {
  TempDir d;
  const std::string f = d / "log";
  {
    FileOutput o(f, {/*max_bytes=*/10, /*keep=*/0});
    for (int i = 0; i < 3; i++) {
      o.write(numbered_line(i));
      o.flush();
    }
  }
  EXPECT_EQ(read_file(f), numbered_line(2));
  EXPECT_FALSE(exists(f + ".1"));
}

TEST(FileOutput, NoRotationWithoutALimit) {
  TempDir d;
  const std::string f = d / "log";
  std::string all;
  {
    FileOutput o(f, {/*max_bytes=*/0, /*keep=*/5});
    for (int i = 0; i < 50; i++) {
      o.write(numbered_line(i));
      all += numbered_line(i);
      o.flush();
    }
  }
  EXPECT_EQ(read_file(f), all);
  EXPECT_FALSE(exists(f + ".1"));
}

namespace {

// Everything readable now from a non-blocking fd.
std::string drain(int fd) {
  std::string s;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

// A FIFO at the log's path is refused even with a reader: a pipe is asked
// for with -o - (the shell's pipe), and a FIFO at a path may be a reader
// that someone planted. Nothing is written into it.
TEST(FileOutput, AFifoAtAPathIsRefusedEvenWithAReader) {
  TempDir d;
  const std::string f = d / "pipe";
  ASSERT_EQ(mkfifo(f.c_str(), 0600), 0);
  int reader = open(f.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  try {
    FileOutput o(f, {/*max_bytes=*/10, 2});
    FAIL() << "opened a FIFO at a path";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("a FIFO (to write into a pipe, use -o - and redirect)"), std::string::npos)
        << e.what();
    EXPECT_EQ(e.code(), kExitUsage);
  }
  EXPECT_EQ(drain(reader), "");
  close(reader);
}

// /dev/null (a device a log may go to) has nothing to rotate: renaming or
// truncating it would break every other user of that path.
TEST(FileOutput, DevNullIsNeverRotated) {
  struct stat before {};
  ASSERT_EQ(stat("/dev/null", &before), 0);
  {
    FileOutput o("/dev/null", {/*max_bytes=*/10, 2});
    for (int i = 0; i < 3; i++) {
      o.write(numbered_line(i));
      ASSERT_NO_THROW(o.flush());
    }
  }
  struct stat after {};
  ASSERT_EQ(stat("/dev/null", &after), 0);
  EXPECT_TRUE(S_ISCHR(after.st_mode));
  EXPECT_EQ(after.st_rdev, before.st_rdev);
  EXPECT_FALSE(exists("/dev/null.1"));
}

TEST(ErrnoText, PositiveAndNegativeErrno) {
  EXPECT_EQ(errno_text("open x", ENOENT), "open x: No such file or directory");
  EXPECT_EQ(errno_text("open x", -ENOENT), "open x: No such file or directory");
}

TEST(FileOutput, ACutOffLastLineIsEndedBeforeNewRecords) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  write_file(path, "{\"type\":\"start\"}\n{\"type\":\"assi");  // a writer killed mid-line
  {
    FileOutput out(path, {});
    out.write("{\"type\":\"start\"}\n");
    out.flush();
  }
  EXPECT_EQ(read_file(path), "{\"type\":\"start\"}\n{\"type\":\"assi\n{\"type\":\"start\"}\n");
}

// In a child: the file may not grow past 100 bytes until the soft limit is
// raised again (the hard limit stays unlimited), as a full disk would be.
namespace {
void limit_file_size(rlim_t soft) {
  signal(SIGXFSZ, SIG_IGN);
  rlimit lim{soft, RLIM_INFINITY};
  setrlimit(RLIMIT_FSIZE, &lim);
}
}  // namespace

TEST(FileOutput, AFailedWriteLeavesNoHalfLineAndIsRetried) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  pid_t child = fork();
  if (child == 0) {
    limit_file_size(100);
    FileOutput out(path, {});
    out.write(std::string(59, 'a') + "\n");
    out.flush();
    out.write(std::string(59, 'b') + "\n");
    out.flush();  // fails: not fatal, kept
    if (!out.failing() || out.unwritten() != 0) _exit(1);
    if (read_file(path) != std::string(59, 'a') + "\n") _exit(2);  // no half line
    limit_file_size(RLIM_INFINITY);
    out.write(std::string(59, 'c') + "\n");
    out.flush();  // the retry writes both
    _exit(out.failing() ? 3 : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: not failing, 2: half a line left, 3: the retry failed";
  EXPECT_EQ(read_file(path), std::string(59, 'a') + "\n" + std::string(59, 'b') + "\n" + std::string(59, 'c') + "\n");
}

TEST(FileOutput, WhatCannotBeKeptIsCountedAndTheRestWrittenWhole) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  std::string count_file = dir / "unwritten";
  const size_t lines = FileOutput::kMaxPending / 60 + 100000;  // more than can be kept
  pid_t child = fork();
  if (child == 0) {
    limit_file_size(1);
    FileOutput out(path, {});
    char line[61];
    for (size_t i = 0; i < lines; i++) {
      std::snprintf(line, sizeof line, "%059zu\n", i);
      out.write(line);
    }
    out.flush();
    limit_file_size(RLIM_INFINITY);
    out.flush();
    FILE* f = std::fopen(count_file.c_str(), "w");
    std::fprintf(f, "%llu", static_cast<unsigned long long>(out.unwritten()));
    std::fclose(f);
    _exit(out.failing() ? 1 : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  uint64_t unwritten = std::stoull(read_file(count_file));
  EXPECT_GT(unwritten, 0u);
  std::string text = read_file(path);
  auto written = pgtest::split_lines(text);
  EXPECT_EQ(written.size() + unwritten, lines) << "every line is either written or counted";
  // the newest survive, whole and in order
  for (size_t i = 0; i < written.size(); i++) {
    ASSERT_EQ(written[i].size(), 59u);
    ASSERT_EQ(std::stoull(written[i]), unwritten + i);
  }
}

TEST(FileOutput, ReopenWritesToThePathAnew) {
  TempDir dir;
  std::string path = dir / "events.jsonl";
  FileOutput out(path, {});
  out.write("one\n");
  out.flush();
  ASSERT_EQ(rename(path.c_str(), (dir / "moved.jsonl").c_str()), 0);
  out.write("two\n");
  out.reopen();  // flushes to the moved file first
  out.write("three\n");
  out.flush();
  EXPECT_EQ(read_file(dir / "moved.jsonl"), "one\ntwo\n");
  EXPECT_EQ(read_file(path), "three\n");
}
