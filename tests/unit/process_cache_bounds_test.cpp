// The process cache's bounds: a /proc command line cut like an exec
// record's, text shared by forked children and bounded in bytes, evictions
// counted, and a pid reused since a record not lending its new name.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "proc_fixtures.hpp"
#include "test_util.hpp"
#include "trace/process_cache.hpp"

using namespace portghost;
using namespace std::string_literals;
using pgtest::exec_ev;
using pgtest::fake_proc;
using pgtest::task;
using pgtest::TempDir;

// A command line read from /proc is cut where an exec record's is: a
// process's argv can weigh megabytes, and the cache holds many processes.
TEST(ProcessCache, AProcCommandLineIsCutLikeAnExecRecords) {
  TempDir root;
  std::string huge(1 << 20, 'a');
  fake_proc(root, 4242, std::string("big\0", 4) + huge + '\0', "big\n", "4242 (big) S 1 4242");
  ProcessCache c(root.path());
  const ProcInfo* p = c.lookup(4242);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->cmdline.size(), static_cast<size_t>(PG_ARGS_LIMIT - 1));
  EXPECT_EQ(p->cmdline.str().rfind("big a", 0), 0u) << p->cmdline.str().substr(0, 16);
}

// A fork shares its parent's text: 5,000 children of a process with a long
// argv hold one copy of it, not 5,000.
TEST(ProcessCache, ForkedChildrenShareTheirParentsText) {
  TempDir root;
  ProcessCache c(root.path());
  std::string argv(PG_ARGS_LIMIT - 1, 'x');
  c.on_event(exec_ev(100, 1, "java", "/usr/bin/java", argv));
  size_t one = c.bytes();
  EXPECT_EQ(one, argv.size() + std::string("/usr/bin/java").size());
  for (uint32_t pid = 1000; pid < 6000; pid++) c.on_event(task(TaskEvent::Kind::Fork, pid, 100, "java"));
  EXPECT_EQ(c.size(), 5001u);
  EXPECT_EQ(c.bytes(), one) << "the children point at the parent's text";
  EXPECT_EQ(c.lookup(5999)->cmdline, argv);
  // a child's exec is its own text; its exit and expiry give it back
  TaskEvent ex = exec_ev(1000, 100, "sh", "/bin/sh", "sh -c x");
  ex.ts_boot_ns = 10;
  c.on_event(ex);
  EXPECT_EQ(c.bytes(), one + std::string("/bin/sh").size() + std::string("sh -c x").size());
  for (uint32_t pid = 100; pid < 6000; pid++) {
    TaskEvent e = task(TaskEvent::Kind::Exit, pid, 0, "");
    e.ts_boot_ns = 20;
    c.on_event(e);
  }
  c.expire(30);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.evicted(), 0u) << "expiry is not eviction";
}

// The text held is bounded in bytes as well as in entries: an exec storm of
// long command lines in many processes evicts, and says how many.
TEST(ProcessCache, TheTextHeldIsBoundedInBytesAndEvictionsAreCounted) {
  TempDir root;
  const size_t budget = 64 * 1024;
  ProcessCache c(root.path(), 1 << 18, budget);
  for (uint32_t pid = 1; pid <= 100; pid++)
    for (int image = 0; image < ProcessCache::kImagesKept; image++) {
      TaskEvent e = exec_ev(pid, 1, "p", "/bin/p" + std::to_string(image), std::string(4000, char('a' + image)));
      e.ts_boot_ns = 1 + image;
      c.on_event(e);
    }
  EXPECT_LE(c.bytes(), budget);
  EXPECT_GT(c.evicted(), 0u);
  EXPECT_EQ(c.size() + c.evicted(), 100u) << "each process kept or counted";
  ASSERT_NE(c.lookup(100), nullptr) << "the latest entry is kept";
  EXPECT_EQ(c.lookup(100)->exe, "/bin/p2");
}

// A pid read from /proc after the record's time may be another process's
// by then (the pid was reused): a record older than that process's start is
// not named by it.
TEST(ProcessCache, AProcessThatStartedAfterTheRecordDoesNotNameIt) {
  TempDir root;
  // started 500 clock ticks after boot
  std::string stat = "700 (curl) S 1 700 700 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 500 1000 100";
  fake_proc(root, 700, "curl\0-s\0"s, "curl\n", stat, "/usr/bin/curl");
  const uint64_t start_ns = 500ULL * (1'000'000'000ULL / static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
  ProcessCache c(root.path());
  const ProcInfo* old = c.lookup(700, {}, start_ns - 1'000'000);
  ASSERT_NE(old, nullptr);
  EXPECT_TRUE(old->unread) << "the pid's earlier holder is not known";
  EXPECT_TRUE(old->exe.empty());
  const ProcInfo* now = c.lookup(700, {}, start_ns + 1'000'000);
  ASSERT_NE(now, nullptr);
  EXPECT_FALSE(now->unread);
  EXPECT_EQ(now->exe, "/usr/bin/curl");
  EXPECT_EQ(now->since_boot_ns, start_ns);
}
