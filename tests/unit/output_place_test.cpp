// Where a log may go: what FileOutput refuses to open (a missing directory,
// a directory, a link, a directory others can write, a kernel interface)
// and what it takes (/dev/null). The writing itself: output_test.cpp.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/errors.hpp"
#include "sinks/output.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::exists;
using pgtest::read_file;
using pgtest::TempDir;
using pgtest::write_file;

TEST(FileOutput, MissingDirectoryThrowsFatalError) {
  TempDir d;
  const std::string f = d / "no/such/dir/log";
  try {
    FileOutput o(f, {});
    FAIL() << "opened " << f;
  } catch (const FatalError& e) {
    EXPECT_EQ(e.code(), kExitRuntime);
    EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(d / "no"));
}

TEST(FileOutput, ADirectoryIsNotAnOutput) {
  TempDir d;
  EXPECT_THROW(FileOutput(d.path(), {}), FatalError);
}

TEST(FileOutput, ASymbolicLinkIsNeverFollowed) {
  TempDir dir;
  std::string target = dir / "elsewhere";
  write_file(target, "theirs\n");
  std::string path = dir / "events.jsonl";
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  try {
    FileOutput out(path, {});
    FAIL() << "a link was opened";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(target), "theirs\n");
}

TEST(FileOutput, ADirectoryOthersCanWriteIsRefused) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 01777), 0);  // like /tmp
  try {
    FileOutput out(dir / "events.jsonl", {});
    FAIL() << "opened in a world-writable directory";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("writable by every user"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(dir / "events.jsonl"));
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  FileOutput ok(dir / "events.jsonl", {});  // only its owner writes there: fine
  struct stat st {};
  ASSERT_EQ(stat((dir / "events.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0137, 0u) << "created 0640 or tighter";
}

// /proc/self/comm looks like a regular file and takes writes: each would
// rename the process. A kernel interface is never opened as a log.
TEST(FileOutput, AKernelInterfaceFileIsRefused) {
  std::string before = read_file("/proc/self/comm");
  try {
    FileOutput out("/proc/self/comm", {});
    out.write("{\"type\":\"start\"}\n");
    out.flush();
    FAIL() << "a /proc file was opened as the log";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("kernel interface"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), kExitUsage);
  }
  EXPECT_EQ(read_file("/proc/self/comm"), before);
}

TEST(FileOutput, DevNullIsAPlaceToWrite) {
  FileOutput out("/dev/null", {});
  out.write("x\n");
  out.flush();
  EXPECT_FALSE(out.failing());
}

// A FIFO nobody reads (planted at the log's path, or left behind) fails the
// open at once, with one line: it never blocks the tracer in open().
TEST(FileOutput, AFifoWithoutAReaderFailsAtOnce) {
  TempDir d;
  const std::string f = d / "events.jsonl";
  ASSERT_EQ(mkfifo(f.c_str(), 0600), 0);
  try {
    FileOutput out(f, {});
    FAIL() << "opened a FIFO nobody reads";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("a FIFO that nobody reads"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), kExitUsage);
  }
}

// A directory another user owns can be made writable by that user whenever
// it likes (a FIFO or a link planted for the next rotation): refused, unless
// it is the user the tracer becomes (--user), which rotates there.
TEST(FileOutput, ADirectoryAnotherUserOwnsIsRefusedUnlessItIsTheUsersToBe) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away (CI runs as root)";
  TempDir d;
  ASSERT_EQ(chown(d.path().c_str(), 65534, 65534), 0);
  try {
    FileOutput out(d / "events.jsonl", {});
    FAIL() << "opened in a directory user 65534 owns";
  } catch (const FatalError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to user 65534"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(d / "events.jsonl"));
  RotateConfig as_user;
  as_user.dir_owner = 65534;
  FileOutput ok(d / "events.jsonl", as_user);
  EXPECT_TRUE(exists(d / "events.jsonl"));
}

// A rotation whose new file cannot be opened (here: the directory changed
// hands) loses nothing: the records go on into the old file, now FILE.1,
// and rotation stops, so that nothing is ever renamed over the file being
// written.
TEST(FileOutput, ARotationThatCannotOpenTheNewFileGoesOnInTheOld) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away (CI runs as root)";
  TempDir d;
  const std::string f = d / "ports.jsonl";
  FileOutput o(f, {/*max_bytes=*/20, /*keep=*/2});
  std::string all;
  auto line = [](int i) { return "line-" + std::to_string(10 + i) + "\n"; };  // 8 bytes
  for (int i = 0; i < 2; i++) {
    o.write(line(i));
    all += line(i);
    o.flush();
  }
  ASSERT_EQ(chown(d.path().c_str(), 65534, 65534), 0);
  for (int i = 2; i < 8; i++) {
    o.write(line(i));
    all += line(i);
    ASSERT_NO_THROW(o.flush()) << "line " << i;
  }
  EXPECT_FALSE(o.failing());
  EXPECT_EQ(read_file(f + ".1"), all) << "every line, in the old file";
  EXPECT_FALSE(exists(f)) << "no new file was made in a directory another user owns";
  EXPECT_FALSE(exists(f + ".2"));
}
