// Root integration tests of what surrounds a port record: the process
// records that name its holder, the start-up of the trace, and container
// names. Each runs a tracer of its own.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "portghost.h"

using namespace pgtest;

namespace {

int udp_send_and_close(uint64_t* cookie = nullptr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = static_cast<int>(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a));
  if (cookie) *cookie = sock_cookie(fd);
  close(fd);
  return rc;
}

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

class Lifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto r = skip_reason()) GTEST_SKIP() << *r;
  }
};

}  // namespace

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
                   static_cast<uint8_t>(all[off + 2]) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(all[off + 3])) << 24;
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
  EXPECT_EQ((*a)["exe"], PG_FIRE_BIN) << a->dump();
  EXPECT_EQ((*a)["cmdline"], std::string(PG_FIRE_BIN) + " leader-exit 9") << a->dump();
  EXPECT_EQ(tr.stop(), 0);
}

// Item 11: every hook is live before any record goes out, so no socket can
// be assigned while its release hook is not attached yet.
TEST_F(Lifecycle, PortsTakenWhileTheTraceStartsAreAllReleased) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ops{0};
  // paced (a short sleep per op): the attach patches the kernel's text while
  // this runs, which a guest under emulation cannot take at full speed
  std::thread churn([&] {
    while (!stop.load()) {
      if (udp_send_and_close() == 1) ops++;
      usleep(20);
    }
  });
  std::this_thread::sleep_for(50ms);
  Tracer tr({"--no-existing", "--comm", process_comm()});
  bool started = tr.wait_started();
  std::this_thread::sleep_for(300ms);
  stop = true;
  churn.join();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(tr.stop(), 0);
  ASSERT_TRUE(started) << tr.stderr_text();
  std::map<uint64_t, int> open;
  uint64_t assigns = 0;
  std::string losses;  // the lost records, which name their reasons
  for (const auto& r : tr.records()) {
    if (r["type"] == "assign") {
      open[r["sock"].get<uint64_t>()]++;
      assigns++;
    }
    if (r["type"] == "release") open.erase(r["sock"].get<uint64_t>());
    if (r["type"] == "lost") losses += r.dump() + "\n";
    if (r["type"] == "stop") {
      EXPECT_EQ(r["lost"], 0) << r.dump() << "\n" << losses;
    }
  }
  EXPECT_GT(assigns, 100u) << "the churn did not overlap the trace: the test did not test";
  EXPECT_TRUE(open.empty()) << open.size() << " of " << assigns << " assigns were never released";
}

// Item 14: a cgroup a user may create (below their delegated user@UID.service,
// or a directory they own) cannot pass for a system container.
TEST_F(Lifecycle, AContainerNameInAUsersSubtreeSaysWhoseItIs) {
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  const std::string id = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
  std::string base = root + "/portghost-forge-" + std::to_string(getpid());
  std::string user = base + "/user@4242.service";
  std::string forged = user + "/docker-" + id + ".scope";
  std::string owned = base + "/docker-" + id + ".scope";  // outside user@, but the user's directory
  for (const auto& d : {base, user, forged, owned}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d << ": " << strerror(errno);
  ASSERT_EQ(chown(owned.c_str(), 4343, 4343), 0);
  uint64_t in_user = udp_send_from_cgroup(forged);
  uint64_t in_owned = udp_send_from_cgroup(owned);
  auto a = tr.wait_for(is("assign", in_user));
  auto b = tr.wait_for(is("assign", in_owned));
  EXPECT_EQ(tr.stop(), 0);
  for (const auto& d : {forged, owned, user, base}) rmdir(d.c_str());
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ((*a)["container"], "user-4242/docker://" + id) << a->dump();
  EXPECT_EQ((*b)["container"], "user-4343/docker://" + id) << b->dump();
}

// Item 7: a recorded socket that is gone without a release the trace saw
// (here: its release was dropped with a full ring) is released by the
// periodic reconciliation, with reason "reconciled".
TEST_F(Lifecycle, ASocketGoneWithoutASeenReleaseIsReconciled) {
  Tracer tr({"--no-existing", "--ring-buffer-mb", "1", "--comm", process_comm(), "--reconcile", "1"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a), 1);
  uint64_t cookie = sock_cookie(fd);
  ASSERT_TRUE(tr.wait_for(is("assign", cookie)));
  ASSERT_EQ(kill(tr.pid(), SIGSTOP), 0);
  for (int i = 0; i < 20000; i++) udp_send_and_close();  // fills the 1 MiB ring
  close(fd);                                              // this release finds no room
  ASSERT_EQ(kill(tr.pid(), SIGCONT), 0);
  auto r = tr.wait_for(is("release", cookie), 10s);
  EXPECT_EQ(tr.stop(), 0);
  auto lost = tr.all([](const Json& j) { return j["type"] == "lost"; });
  ASSERT_FALSE(lost.empty()) << "nothing was dropped: the test did not test";
  ASSERT_TRUE(r) << "a port is held forever in the log";
  EXPECT_EQ((*r)["reason"], "reconciled") << r->dump();
  EXPECT_EQ((*r)["pid"], getpid());
  EXPECT_TRUE((*r)["duration_ns"].is_number());
}

// Item 7: a kernel UDP socket (a vxlan device's) gets no cgroup/sock_release;
// reconciliation releases it once the device is gone.
TEST_F(Lifecycle, AKernelUdpSocketIsReleasedByReconciliation) {
  std::string ip;
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (ip.empty() && access(p, X_OK) == 0) ip = p;
  if (ip.empty()) GTEST_SKIP() << "no ip(8) here to make a vxlan device";
  Tracer tr({"--no-existing", "--reconcile", "1"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int go[2], res[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(res), 0);
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    close(res[0]);
    if (unshare(CLONE_NEWNET) != 0) _exit(3);
    std::string add = ip + " link add pgvx0 type vxlan id 42 dstport 4789 local 127.0.0.1 2>/dev/null && " + ip +
                      " link set lo up && " + ip + " link set pgvx0 up";
    uint64_t ok = std::system(add.c_str()) == 0 ? netns_inode(0) : 0;
    if (write(res[1], &ok, sizeof ok) != sizeof ok) _exit(4);
    char x;
    if (read(go[0], &x, 1) < 0) _exit(5);
    std::string del = ip + " link del pgvx0";
    _exit(std::system(del.c_str()) == 0 ? 0 : 6);
  }
  close(go[0]);
  close(res[1]);
  uint64_t ns = 0;
  ASSERT_EQ(read(res[0], &ns, sizeof ns), static_cast<ssize_t>(sizeof ns));
  close(res[0]);
  if (ns == 0) {
    close(go[1]);
    waitpid(child, nullptr, 0);
    GTEST_SKIP() << "this kernel cannot make a vxlan device (no vxlan module)";
  }
  auto a = tr.wait_for([&](const Json& j) { return j["type"] == "assign" && j["lport"] == 4789 && j["netns"] == ns; });
  close(go[1]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(a) << "the vxlan socket's bind was not recorded";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto r = tr.wait_for(is("release", (*a)["sock"].get<uint64_t>()), 10s);
  EXPECT_EQ(tr.stop(), 0);
  ASSERT_TRUE(r) << "the kernel socket's port is held forever in the log";
  EXPECT_EQ((*r)["reason"], "reconciled");
}

// Item 15: after --user, the tracer holds no writable map descriptor but the
// ring buffers' and no writable mapping but their consumer pages: it can no
// longer stop the kernel side or zero the loss counters.
TEST_F(Lifecycle, AfterUserOnlyTheRingConsumerPagesStayWritable) {
  char tmpl[] = "/tmp/portghost-ro-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  std::string log = dir + "/ro.jsonl";
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    execl(PORTGHOST_BIN, PORTGHOST_BIN, "trace", "--no-existing", "--user", "nobody", "--format", "json", "-o",
          log.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // the drop comes after the start record: wait for its effect
  std::string status;
  for (int i = 0; i < 200; i++) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::stringstream ss;
    ss << f.rdbuf();
    status = ss.str();
    if (status.find("Uid:\t65534") != std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(status.find("Uid:\t65534"), std::string::npos) << "the tracer did not become nobody";
  std::this_thread::sleep_for(200ms);
  std::string proc = "/proc/" + std::to_string(pid);
  size_t maps_seen = 0, rings = 0;
  for (int fd = 0; fd < 1024; fd++) {
    char link[256] = {};
    std::string p = proc + "/fd/" + std::to_string(fd);
    if (readlink(p.c_str(), link, sizeof link - 1) <= 0 || std::string(link) != "anon_inode:bpf-map") continue;
    std::ifstream fi(proc + "/fdinfo/" + std::to_string(fd));
    unsigned flags = 0, type = 0;
    for (std::string line; std::getline(fi, line);) {
      if (line.rfind("flags:", 0) == 0) flags = static_cast<unsigned>(std::stoul(line.substr(6), nullptr, 8));
      if (line.rfind("map_type:", 0) == 0) type = static_cast<unsigned>(std::stoul(line.substr(9)));
    }
    maps_seen++;
    if (type == 27 /* BPF_MAP_TYPE_RINGBUF */) {
      rings++;
      continue;
    }
    EXPECT_EQ(flags & O_ACCMODE, static_cast<unsigned>(O_RDONLY)) << "map fd " << fd << " (type " << type << ") is writable";
    EXPECT_TRUE(flags & O_CLOEXEC) << fd;
  }
  EXPECT_EQ(rings, 2u);
  EXPECT_GT(maps_seen, rings);
  std::ifstream m(proc + "/maps");
  size_t writable = 0;
  for (std::string line; std::getline(m, line);) {
    if (line.find("anon_inode:bpf-map") == std::string::npos || line.find(" rw") == std::string::npos) continue;
    unsigned long lo = 0, hi = 0;
    sscanf(line.c_str(), "%lx-%lx", &lo, &hi);
    EXPECT_EQ(hi - lo, 4096u) << "a writable map mapping other than a consumer page: " << line;
    writable++;
  }
  EXPECT_EQ(writable, 2u) << "one consumer page per ring buffer, nothing else";
  // it still traces, and still counts losses
  uint64_t cookie = 0;
  ASSERT_EQ(udp_send_and_close(&cookie), 1);
  std::this_thread::sleep_for(500ms);
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  std::ifstream f(log);
  bool assign = false, stop = false;
  for (std::string line; std::getline(f, line);) {
    Json j = Json::parse(line);
    if (j["type"] == "assign" && j["sock"] == cookie) assign = true;
    if (j["type"] == "stop") stop = j["lost"] == 0;
  }
  EXPECT_TRUE(assign);
  EXPECT_TRUE(stop);
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

namespace {
// Field 19 of /proc/PID/task/TID/stat: the thread's nice value.
int nice_of(pid_t pid, pid_t tid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return 1000;
  std::istringstream rest(s.substr(close_paren + 2));  // from field 3 (state)
  std::string field;
  for (int i = 3; i <= 19 && rest >> field; i++) {
    if (i == 19) return std::stoi(field);
  }
  return 1000;
}

// Every thread of the tracer.
std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> tids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task"))
    tids.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  return tids;
}
}  // namespace

// The consumer runs above the workload's priority (auditd's priority_boost):
// a flood that keeps every CPU busy must not starve it into losing records.
TEST_F(Lifecycle, TheConsumerRunsAtTheNiceValueAsked) {
  for (auto [args, want] : {std::pair<std::vector<std::string>, int>{{}, -4}, {{"--nice", "3"}, 3}}) {
    Tracer t(args);
    ASSERT_TRUE(t.wait_started()) << t.stderr_text();
    auto tids = threads_of(t.pid());
    ASSERT_FALSE(tids.empty());
    for (pid_t tid : tids) EXPECT_EQ(nice_of(t.pid(), tid), want) << "thread " << tid;
    EXPECT_EQ(t.stop(), 0);
  }
}
