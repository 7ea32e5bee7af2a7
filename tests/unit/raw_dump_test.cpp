// The raw dump (trace --raw-dump): what goes in comes out, and the file is
// made only where and as a root-written file may be.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/errors.hpp"
#include "kernel/raw_dump.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::TempDir;

namespace {

std::string refusal(const std::string& path) {
  try {
    RawDumpWriter w(path);
  } catch (const FatalError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RawDump, RecordsComeBackAsWritten) {
  TempDir d;
  {
    RawDumpWriter w(d / "dump");
    w.write("abc", 3);
    w.write("", 0);
    w.write("defgh", 5);
  }
  EXPECT_EQ(read_raw_dump(d / "dump"), (std::vector<std::string>{"abc", "", "defgh"}));
  struct stat st {};
  ASSERT_EQ(stat((d / "dump").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "every command line is in it: root's only";
}

// Planted things at the dump's path are refused, and what they point at
// is never cut: a link, a hard link to another file, a FIFO (no wait for a
// reader), a directory others can write.
TEST(RawDump, NeverCutsOrWaitsOnWhatWasPlanted) {
  TempDir d;
  pgtest::write_file(d / "victim", "precious\n");
  ASSERT_EQ(symlink((d / "victim").c_str(), (d / "link").c_str()), 0);
  EXPECT_NE(refusal(d / "link"), "");
  ASSERT_EQ(link((d / "victim").c_str(), (d / "hard").c_str()), 0);
  EXPECT_NE(refusal(d / "hard").find("hard link"), std::string::npos);
  EXPECT_EQ(pgtest::read_file(d / "victim"), "precious\n");
  ASSERT_EQ(mkfifo((d / "fifo").c_str(), 0600), 0);
  EXPECT_NE(refusal(d / "fifo").find("not a regular file"), std::string::npos) << "refused at once, not blocked";
  TempDir open_dir;
  ASSERT_EQ(chmod(open_dir.path().c_str(), 0777), 0);
  EXPECT_NE(refusal(open_dir / "dump").find("writable by every user"), std::string::npos);
  // another user's file is not taken over; a file of its own is made root's
  // only before anything is written into it
  if (geteuid() == 0) {
    pgtest::write_file(d / "theirs", "theirs\n");
    ASSERT_EQ(chown((d / "theirs").c_str(), 4242, 4242), 0);
    EXPECT_NE(refusal(d / "theirs").find("another user's file"), std::string::npos);
    EXPECT_EQ(pgtest::read_file(d / "theirs"), "theirs\n");
  }
  // a dump of its own is replaced, and made 0600
  pgtest::write_file(d / "old", "PGRAW2\nold records");
  ASSERT_EQ(chmod((d / "old").c_str(), 0644), 0);
  RawDumpWriter w(d / "old");
  w.flush();
  EXPECT_EQ(read_raw_dump(d / "old"), std::vector<std::string>{});
  struct stat st {};
  ASSERT_EQ(stat((d / "old").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}
