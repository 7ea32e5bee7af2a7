// Root integration tests of who took a port: a thread, a forked child, a
// short-lived exec'd program, a process whose leader thread has exited,
// another network namespace; and the exec records that name them, on a ring
// of their own.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "portghost.h"

using namespace pgtest;

namespace {

// Forks and execs path with argv, waits for it.
int run(const std::vector<std::string>& argv) {
  pid_t p = fork();
  if (p == 0) {
    std::vector<char*> v;
    for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
    v.push_back(nullptr);
    execv(v[0], v.data());
    _exit(127);
  }
  int status = 0;
  waitpid(p, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_F(Trace, FromForkedChildAndReleasedAtExit) {
  auto r = run_child(udp_sendto_socket, false);
  waitpid(r.pid, nullptr, 0);
  ASSERT_NE(r.cookie, 0u);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["pid"], r.pid);
  EXPECT_EQ(a["tid"], r.pid);
  EXPECT_EQ(a["ppid"], getpid());
  EXPECT_EQ(a["lport"], r.port);
  EXPECT_EQ(a["exe"], self_exe());
  Json rel = release_of(r.cookie);
  EXPECT_EQ(rel["pid"], r.pid);
}

TEST_F(Trace, FromAThread) {
  uint64_t c = 0;
  pid_t tid = 0;
  std::thread th([&] {
    pthread_setname_np(pthread_self(), "pg-worker");
    int fd = udp_sendto_socket();
    c = sock_cookie(fd);
    tid = gettid_();
    close(fd);
  });
  th.join();
  Json a = assign_of(c);
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_EQ(a["tid"], tid);
  EXPECT_NE(a["tid"], getpid());
  EXPECT_EQ(a["thread"], "pg-worker");
  EXPECT_EQ(a["comm"], process_comm());
  release_of(c);
}

TEST_F(Trace, FromAShortLivedExecdProgram) {
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_EQ(f.exit_code, 0);
  ASSERT_NE(f.cookie, 0u);
  pid_t child = f.pid;
  uint16_t port = f.port;
  uint64_t cookie = f.cookie;
  Json a = assign_of(cookie);
  char real[PATH_MAX];
  ASSERT_TRUE(realpath(PG_FIRE_BIN, real));
  EXPECT_EQ(a["pid"], child);
  EXPECT_EQ(a["comm"], "pg_fire");
  expect_exe_and_cmdline(t().records().front(), a, real, std::string(PG_FIRE_BIN) + " udp-send 9");
  EXPECT_EQ(a["lport"], port);
  Json r = release_of(cookie);
  EXPECT_EQ(r["comm"], "pg_fire");
}

TEST_F(Trace, FromAFreshNetworkNamespace) {
  auto r = run_child(
      [] {
        enter_fresh_netns();
        return udp_sendto_socket();
      },
      true);
  ASSERT_NE(r.cookie, 0u) << "child could not set up a network namespace";
  uint32_t ns = netns_inode(r.pid);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["netns"], ns);
  EXPECT_NE(a["netns"], netns_inode());
  EXPECT_EQ(a["pid"], r.pid);
  kill(r.pid, SIGKILL);
  waitpid(r.pid, nullptr, 0);
  release_of(r.cookie);
}

// Item 6: the socket's namespace, not the task's: a setns() between socket()
// and bind() must not move the record (nor the range it is checked against).
TEST_F(Holes, TheSocketsNamespaceIsRecordedNotTheTasks) {
  int home = open("/proc/self/ns/net", O_RDONLY);  // the child's namespace before it enters its own
  NetnsChild c([home](uint64_t* out) {
    out[0] = netns_inode(0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (setns(home, CLONE_NEWNET) != 0) _exit(6);
    out[1] = netns_inode(0);
    auto b = loop4(0);
    if (bind(fd, sa(b), sizeof b) != 0) _exit(7);
    out[2] = sock_cookie(fd);
    out[3] = local_port(fd);
  });
  close(home);
  uint64_t out[8];
  ASSERT_TRUE(c.result(out));
  ASSERT_NE(out[0], out[1]);
  auto a = t().wait_for(is("assign", out[2]));
  c.release();
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["netns"], out[0]) << "the task's namespace (" << out[1] << ") was recorded";
  EXPECT_GE(out[3], 40000u);
  EXPECT_LE(out[3], 40003u) << "the socket's namespace chose the port";
  EXPECT_EQ((*a)["pid"], c.pid);
}

// Item 8: exec records have a ring of their own: no exec traffic can make
// a port record be dropped.
TEST_F(Lifecycle, ExecTrafficCannotCrowdOutAPortRecord) {
  Tracer tr({"--no-existing", "--ring-buffer-mb", "1"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(kill(tr.pid(), SIGSTOP), 0);
  // 400 execs: with exec records in the port ring (4.9 KB each) this
  // filled the 1 MiB ring twice over
  std::string arg(2000, 'Q');
  for (int i = 0; i < 400; i++) ASSERT_EQ(run({"/bin/true", arg}), 0);
  uint64_t cookie = 0;
  ASSERT_EQ(udp_send_and_close(&cookie), 1);
  ASSERT_EQ(kill(tr.pid(), SIGCONT), 0);
  auto a = tr.wait_for(is("assign", cookie));
  auto r = tr.wait_for(is("release", cookie));
  EXPECT_EQ(tr.stop(), 0);
  EXPECT_TRUE(a) << "the assign was crowded out by exec records";
  EXPECT_TRUE(r) << "the release was crowded out by exec records";
  for (const auto& l : tr.all([](const Json& j) { return j["type"] == "lost"; }))
    EXPECT_FALSE(l["reasons"].contains("ring_buffer_full")) << l.dump();
}

// Item 8: an exec record carries its own argv only, never bytes an earlier
// exec left in the kernel's per-CPU scratch.
TEST_F(Lifecycle, ExecRecordsEndWithTheirOwnArguments) {
  char tmpl[] = "/tmp/portghost-raw-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dump = std::string(tmpl) + "/raw";
  {
    Tracer tr({"--no-existing", "--raw-dump", dump});
    ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
    const Json start = tr.records().front();
    if (uncaught_mentions(start, "no bpf_loop")) {
      EXPECT_EQ(std::count(start["hooks"].begin(), start["hooks"].end(), "tp_btf/sched_process_exec"), 0);
      GTEST_SKIP() << "no exec records without bpf_loop, as start.uncaught says";
    }
    ASSERT_EQ(run({"/bin/true", std::string(3000, 'Q')}), 0);
    ASSERT_EQ(run({"/bin/true", "short"}), 0);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(tr.stop(), 0);
  }
  std::ifstream f(dump, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(all.compare(0, 7, "PGRAW2\n"), 0);
  size_t execs = 0, shorts = 0;
  for (size_t off = 7; off + 4 <= all.size();) {
    uint32_t len = static_cast<uint8_t>(all[off]) | static_cast<uint8_t>(all[off + 1]) << 8 |
                   static_cast<uint8_t>(all[off + 2]) << 16 |
                   static_cast<uint32_t>(static_cast<uint8_t>(all[off + 3])) << 24;
    off += 4;
    ASSERT_LE(off + len, all.size());
    const char* rec = all.data() + off;
    if (len >= sizeof(pg_exec_event) - PG_ARGS_LIMIT && rec[0] == PG_KIND_EXEC) {
      pg_exec_event head{};
      std::memcpy(&head, rec, sizeof head - PG_ARGS_LIMIT);
      execs++;
      EXPECT_EQ(len, sizeof head - PG_ARGS_LIMIT + head.args_len) << "an exec record goes past its args";
      std::string args(rec + sizeof head - PG_ARGS_LIMIT, len - (sizeof head - PG_ARGS_LIMIT));
      if (args.find("short") != std::string::npos) {
        shorts++;
        EXPECT_EQ(args.find('Q'), std::string::npos) << "another exec's argv leaked into this record";
      }
    }
    off += len;
  }
  EXPECT_GE(execs, 2u);
  EXPECT_EQ(shorts, 1u);
  std::string cmd = std::string("rm -rf '") + tmpl + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

// Item 10: the leader thread exits first; the process goes on and takes a
// port later. Its exe and cmdline must still be known.
TEST_F(Lifecycle, APortTakenAfterTheLeaderThreadExitedKeepsExeAndCmdline) {
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  if (child == 0) {
    dup2(p[1], STDOUT_FILENO);
    execl(PG_FIRE_BIN, PG_FIRE_BIN, "leader-exit", "9", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  char buf[64] = {};
  ASSERT_GT(read(p[0], buf, sizeof buf - 1), 0);
  close(p[0]);
  waitpid(child, nullptr, 0);
  unsigned port = 0;
  unsigned long long cookie = 0;
  ASSERT_EQ(sscanf(buf, "%u %llu", &port, &cookie), 2) << buf;
  auto a = tr.wait_for(is("assign", cookie));
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["pid"], child);
  expect_exe_and_cmdline(tr.records().front(), *a, PG_FIRE_BIN, std::string(PG_FIRE_BIN) + " leader-exit 9");
  EXPECT_EQ(tr.stop(), 0);
}

// A process that takes a port and then at once execs another program, the
// socket inherited: the port is the first program's, though the exec's
// record may be read before the port's. And the reverse order: a program
// exec'd first names the port it takes.
TEST_F(Trace, ThePortIsTheProgramsThatTookItNotTheOneExecdAfter) {
  Listener l;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);  // no CLOEXEC: the next program holds it
    if (do_connect(fd, v4(l.port)) != 0) _exit(1);
    uint64_t c = sock_cookie(fd);
    if (write(p[1], &c, sizeof c) != sizeof c) _exit(2);
    execl("/bin/sleep", "sleep", "0.3", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  uint64_t cookie = 0;
  ASSERT_EQ(read(p[0], &cookie, sizeof cookie), static_cast<ssize_t>(sizeof cookie));
  close(p[0]);
  int status = 0;
  waitpid(child, &status, 0);
  accept_and_close(l);
  Json a = assign_of(cookie);
  EXPECT_EQ(a["pid"], child);
  EXPECT_EQ(a["exe"], self_exe()) << a.dump();
  ASSERT_TRUE(a["cmdline"].is_string()) << a.dump();
  EXPECT_EQ(a["cmdline"].get<std::string>().find("sleep"), std::string::npos) << a.dump();

  auto fired = run_pg_fire("tcp-connect", std::to_string(l.port));
  accept_and_close(l);
  ASSERT_NE(fired.cookie, 0u);
  Json b = assign_of(fired.cookie);
  expect_exe_and_cmdline(t().records().front(), b, PG_FIRE_BIN,
                         std::string(PG_FIRE_BIN) + " tcp-connect " + std::to_string(l.port));
}
