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
using pgtest::write_file;

TEST(ProcessCache, ExecIsRemembered) {
  TempDir root;
  ProcessCache c(root.path());
  c.on_event(exec_ev(100, 1, "curl", "/usr/bin/curl", "curl -s http://x/"));
  const ProcInfo* p = c.lookup(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exe, "/usr/bin/curl");
  EXPECT_EQ(p->cmdline, "curl -s http://x/");
  EXPECT_EQ(p->comm, "curl");
  EXPECT_EQ(p->ppid, 1u);
}

TEST(ProcessCache, ForkCopiesExeAndCmdlineToTheChild) {
  TempDir root;
  ProcessCache c(root.path());
  c.on_event(exec_ev(100, 1, "nginx", "/usr/sbin/nginx", "nginx -g daemon off;"));
  c.on_event(task(TaskEvent::Kind::Fork, 101, 100, "nginx-worker"));
  const ProcInfo* child = c.lookup(101);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->exe, "/usr/sbin/nginx");
  EXPECT_EQ(child->cmdline, "nginx -g daemon off;");
  EXPECT_EQ(child->comm, "nginx-worker") << "comm from the fork record";
  EXPECT_EQ(child->ppid, 100u);
  // the parent is untouched
  EXPECT_EQ(c.lookup(100)->comm, "nginx");
  EXPECT_EQ(c.lookup(100)->ppid, 1u);

  // the child then execs something else
  c.on_event(exec_ev(101, 100, "sh", "/bin/sh", "sh -c true"));
  EXPECT_EQ(c.lookup(101)->exe, "/bin/sh");
  EXPECT_EQ(c.lookup(100)->exe, "/usr/sbin/nginx");
}

TEST(ProcessCache, ForkOfAnUnknownParentKeepsTheChildsComm) {
  TempDir root;  // empty /proc: the parent is nowhere
  ProcessCache c(root.path());
  c.on_event(task(TaskEvent::Kind::Fork, 201, 200, "orphan"));
  const ProcInfo* p = c.lookup(201);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exe, "");
  EXPECT_EQ(p->cmdline, "");
  EXPECT_EQ(p->comm, "orphan");
  EXPECT_EQ(p->ppid, 200u);
}

TEST(ProcessCache, ForkOfAParentOnlyInProc) {
  TempDir root;
  fake_proc(root, 300, "python3\0app.py\0"s, "python3\n", "300 (python3) S 1 300 300 0 -1", "/usr/bin/python3.11");
  ProcessCache c(root.path());
  c.on_event(task(TaskEvent::Kind::Fork, 301, 300, "python3"));
  const ProcInfo* p = c.lookup(301);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exe, "/usr/bin/python3.11");
  EXPECT_EQ(p->cmdline, "python3 app.py");
  EXPECT_EQ(p->ppid, 300u);
}

TEST(ProcessCache, ExitErases) {
  TempDir root;
  ProcessCache c(root.path());
  c.on_event(exec_ev(400, 1, "a", "/bin/a", "a"));
  c.on_event(exec_ev(401, 1, "b", "/bin/b", "b"));
  EXPECT_EQ(c.size(), 2u);
  TaskEvent exit = task(TaskEvent::Kind::Exit, 400, 1, "a");
  exit.ts_boot_ns = 5000;
  c.on_event(exit);
  // port records it made before exiting may still be on their way
  ASSERT_NE(c.lookup(400), nullptr);
  EXPECT_EQ(c.lookup(400)->exe, "/bin/a");
  c.expire(5000);
  EXPECT_EQ(c.size(), 2u) << "exited at 5000, not before";
  c.expire(5001);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.lookup(400), nullptr) << "gone, and not in /proc either";
  ASSERT_NE(c.lookup(401), nullptr);
  EXPECT_EQ(c.lookup(401)->exe, "/bin/b");
  // exit of a pid never seen is harmless
  c.on_event(task(TaskEvent::Kind::Exit, 999, 1, "x"));
  EXPECT_NE(c.lookup(401), nullptr);
}

TEST(ProcessCache, AReusedPidIsNotForgottenWithTheProcessThatExited) {
  TempDir root;
  ProcessCache c(root.path());
  c.on_event(exec_ev(400, 1, "a", "/bin/a", "a"));
  TaskEvent exit = task(TaskEvent::Kind::Exit, 400, 1, "a");
  exit.ts_boot_ns = 100;
  c.on_event(exit);
  c.on_event(exec_ev(400, 1, "b", "/bin/b", "b"));  // the pid comes back
  c.expire(1000);
  ASSERT_NE(c.lookup(400), nullptr);
  EXPECT_EQ(c.lookup(400)->exe, "/bin/b");
}

TEST(ProcessCache, UnknownPidFallsBackToProc) {
  TempDir root;
  // a comm with spaces and parentheses, an exe replaced on disk
  fake_proc(root, 4242, "nc\0-l\0-p\0008080\0"s, "my (odd) nc\n", "4242 (my (odd) nc) S 17 4242 4242 0 -1 4194560",
            "/usr/bin/nc (deleted)");
  ProcessCache c(root.path());
  const ProcInfo* p = c.lookup(4242);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exe, "/usr/bin/nc");
  EXPECT_EQ(p->cmdline, "nc -l -p 8080");
  EXPECT_EQ(p->comm, "my (odd) nc");
  EXPECT_EQ(p->ppid, 17u);
}

TEST(ProcessCache, ReadProcWithoutExeOrStat) {
  TempDir root;
  // a kernel thread: empty cmdline, exe unreadable
  pgtest::write_file(root / "2/cmdline", "");
  pgtest::write_file(root / "2/comm", "kthreadd\n");
  ProcessCache c(root.path());
  auto p = c.read_proc(2);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->exe, "");
  EXPECT_EQ(p->cmdline, "");
  EXPECT_TRUE(p->unread) << "no executable to name: unknown, written null";
  EXPECT_EQ(p->comm, "kthreadd");
  EXPECT_EQ(p->ppid, 0u);
  EXPECT_FALSE(c.read_proc(3).has_value()) << "no such process";
}

TEST(ProcessCache, NegativeLookupsAreCached) {
  TempDir root;
  ProcessCache c(root.path());
  EXPECT_EQ(c.lookup(555), nullptr);
  EXPECT_EQ(c.size(), 1u) << "the miss is remembered";
  // the process appears in /proc later: the cache does not read it again
  fake_proc(root, 555, "late\0"s, "late\n", "555 (late) S 1");
  EXPECT_EQ(c.lookup(555), nullptr);
  EXPECT_EQ(c.size(), 1u);
  // but a kernel record about it is taken
  c.on_event(exec_ev(555, 1, "late", "/bin/late", "late"));
  ASSERT_NE(c.lookup(555), nullptr);
  EXPECT_EQ(c.lookup(555)->exe, "/bin/late");
}

TEST(ProcessCache, PositiveLookupsAreCached) {
  TempDir root;
  fake_proc(root, 600, "first\0"s, "first\n", "600 (first) S 1");
  ProcessCache c(root.path());
  ASSERT_NE(c.lookup(600), nullptr);
  fake_proc(root, 600, "second\0"s, "second\n", "600 (second) S 1");
  ASSERT_NE(c.lookup(600), nullptr);
  EXPECT_EQ(c.lookup(600)->cmdline, "first") << "no /proc read on the hot path";
}

TEST(ProcessCache, ExecWithUnreadableArgsTakesThemFromProc) {
  TempDir root;
  fake_proc(root, 700, "java\0-jar\0app.jar\0"s, "java\n", "700 (java) S 1");
  ProcessCache c(root.path());
  TaskEvent t = exec_ev(700, 1, "java", "/usr/bin/java", "");
  t.args_unreadable = true;
  c.on_event(t);
  const ProcInfo* p = c.lookup(700);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->cmdline, "java -jar app.jar");
  EXPECT_EQ(p->exe, "/usr/bin/java") << "the exe still comes from the kernel";

  // unreadable and already gone: the empty cmdline stays
  TaskEvent gone = exec_ev(701, 1, "x", "/bin/x", "");
  gone.args_unreadable = true;
  c.on_event(gone);
  ASSERT_NE(c.lookup(701), nullptr);
  EXPECT_EQ(c.lookup(701)->cmdline, "");
}

TEST(ProcessCache, SeedReadsEveryProcessWithoutOverwritingKernelRecords) {
  TempDir root;
  fake_proc(root, 10, "a\0"s, "a\n", "10 (a) S 1", "/bin/a");
  fake_proc(root, 11, "b\0x\0"s, "b\n", "11 (b) S 10", "/bin/b");
  pgtest::write_file(root / "self/cmdline", "not a pid");
  pgtest::write_file(root / "sys/x", "");
  pgtest::write_file(root / "12abc/cmdline", "bogus");
  ProcessCache c(root.path());
  c.on_event(exec_ev(11, 10, "newer", "/bin/newer", "newer"));
  EXPECT_EQ(c.seed(), 2u);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.lookup(10)->exe, "/bin/a");
  EXPECT_EQ(c.lookup(11)->exe, "/bin/newer") << "the kernel's record is newer than /proc";
}

TEST(ProcessCache, SeedOfAMissingRootReadsNothing) {
  ProcessCache c("/nonexistent-portghost-proc");
  EXPECT_EQ(c.seed(), 0u);
  EXPECT_EQ(c.size(), 0u);
}

TEST(ProcessCache, StaysWithinItsBound) {
  TempDir root;
  ProcessCache c(root.path(), 3);
  for (uint32_t pid = 1; pid <= 10; pid++) c.on_event(exec_ev(pid, 0, "p", "/bin/p", "p"));
  EXPECT_LE(c.size(), 3u);
  ASSERT_NE(c.lookup(10), nullptr) << "the latest entry is kept";
  for (uint32_t pid = 100; pid < 110; pid++) c.lookup(pid);  // misses, cached
  EXPECT_LE(c.size(), 3u);
}

// Without exec records (no bpf_loop), a child's copy of its parent holds
// until a record names it otherwise: then /proc is read again, and a process
// gone by then is unknown rather than its parent.
TEST(ProcessCache, WithoutExecRecordsARenamedChildIsReadAgainOrUnknown) {
  TempDir root;
  ProcessCache c(root.path());
  c.set_exec_records(false);
  fake_proc(root, 200, "bash\0-c\0x\0"s, "bash\n", "200 (bash) S 1 200", "/usr/bin/bash");
  ASSERT_NE(c.lookup(200, "bash"), nullptr);
  c.on_event(task(TaskEvent::Kind::Fork, 201, 200, "bash"));
  c.on_event(task(TaskEvent::Kind::Fork, 202, 200, "bash"));
  // 201 still bash: the copy stands
  EXPECT_EQ(c.lookup(201, "bash")->exe, "/usr/bin/bash");
  // 202 exec'd curl, still in /proc: read again
  fake_proc(root, 202, "curl\0-s\0"s, "curl\n", "202 (curl) S 200 202", "/usr/bin/curl");
  const ProcInfo* p = c.lookup(202, "curl");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exe, "/usr/bin/curl");
  EXPECT_EQ(p->cmdline, "curl -s");
  // 201 exec'd a program and is gone: unknown, not bash
  p = c.lookup(201, "pg_fire");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->unread) << "written null, not as empty strings";
  EXPECT_EQ(p->exe, "");
  EXPECT_EQ(p->comm, "pg_fire");
  EXPECT_EQ(p->ppid, 200u);
  // with exec records, the name alone changes nothing (prctl renames)
  ProcessCache d(root.path());
  d.on_event(exec_ev(300, 1, "nginx", "/usr/sbin/nginx", "nginx"));
  EXPECT_EQ(d.lookup(300, "nginx: worker")->exe, "/usr/sbin/nginx");
}

// A port record is read after every process record already in the kernel:
// an exec that came after the port is known by then. The record is named by
// the image its process ran at the record's time.
TEST(ProcessCache, TheImageAtTheRecordsTimeNamesIt) {
  TempDir root;
  ProcessCache c(root.path());
  TaskEvent first = exec_ev(100, 1, "curl", "/usr/bin/curl", "curl -s http://x/");
  first.ts_boot_ns = 1000;
  TaskEvent second = exec_ev(100, 1, "sleep", "/usr/bin/sleep", "sleep 1");
  second.ts_boot_ns = 2000;
  c.on_event(first);
  c.on_event(second);
  EXPECT_EQ(c.lookup(100, {}, 1500)->exe, "/usr/bin/curl") << "the exec came after the record";
  EXPECT_EQ(c.lookup(100, {}, 2500)->exe, "/usr/bin/sleep");
  EXPECT_EQ(c.lookup(100)->exe, "/usr/bin/sleep") << "no time: the latest";
  // before any image known: unknown, never another program's
  const ProcInfo* before = c.lookup(100, {}, 500);
  ASSERT_NE(before, nullptr);
  EXPECT_TRUE(before->unread);
  EXPECT_TRUE(before->exe.empty());
  // a child forked before the second exec runs the first image
  TaskEvent fork = task(TaskEvent::Kind::Fork, 101, 100, "curl");
  fork.ts_boot_ns = 1700;
  c.on_event(fork);
  EXPECT_EQ(c.lookup(101, {}, 1800)->exe, "/usr/bin/curl");
}

TEST(ProcessCache, AnExecStormKeepsAFewImagesPerProcess) {
  TempDir root;
  ProcessCache c(root.path());
  for (uint64_t i = 1; i <= 50; i++) {
    TaskEvent e = exec_ev(100, 1, "p", "/bin/p" + std::to_string(i), "p");
    e.ts_boot_ns = i * 1000;
    c.on_event(e);
  }
  EXPECT_EQ(c.lookup(100, {}, 50'500)->exe, "/bin/p50");
  EXPECT_EQ(c.lookup(100, {}, 49'500)->exe, "/bin/p49");
  EXPECT_EQ(c.lookup(100, {}, 48'500)->exe, "/bin/p48");
  EXPECT_TRUE(c.lookup(100, {}, 47'500)->unread) << "older images are forgotten, and say so";
  int depth = 0;
  for (const ProcInfo* p = c.lookup(100); p; p = p->before.get()) depth++;
  EXPECT_EQ(depth, ProcessCache::kImagesKept);
}
