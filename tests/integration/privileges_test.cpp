// Root integration tests of privileges: not root, the service's five
// capabilities, and --user, which drops every privilege after the attach yet
// still traces, names programs, reopens its log and counts losses.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

TEST_F(TraceOwn, NotRootIsExit1NamingTheCapabilities) {
  auto [code, err] = run_cli({"trace", "-o", "-"}, true);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("CAP_BPF"), std::string::npos) << err;
}

namespace {
// setpriv's --bounding-set argument for the unit's set ("bpf,perfmon,...").
std::string bounding_set(const std::string& caps) {
  std::string out = "-all";
  std::istringstream in(caps);
  for (std::string c; std::getline(in, c, ',');)
    if (!c.empty()) out += ",+" + c;
  return out;
}

// The container named in the assign of socket `sock` in the log (waits).
std::optional<Json> assign_in(const std::string& log, uint64_t sock) {
  for (int i = 0; i < 100; i++) {
    for (const auto& r : read_jsonl(log))
      if (r["type"] == "assign" && r["sock"] == sock) return r;
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}
}  // namespace

// The tracer as its unit runs it: Nice=-4, the unit's LimitMEMLOCK and
// exactly the unit's capability set, both read from dist/portghost.service
// at build time. It traces, and it names a container made after the
// tracer's last walk of the cgroup tree and gone a moment later: a lookup
// by id (open_by_handle_at) needs CAP_DAC_READ_SEARCH, and the walk runs at
// most once a second.
TEST_F(TraceOwn, RunsWithTheUnitsCapabilitiesAndNamesAShortLivedContainer) {
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  ASSERT_STRNE(PG_UNIT_CAPS, "") << "no CapabilityBoundingSet= in the unit";
  ASSERT_STREQ(PG_UNIT_MEMLOCK, "infinity") << "the unit's LimitMEMLOCK";
  char dir[] = "/tmp/portghost-caps-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  std::string log = std::string(dir) + "/events.jsonl", caps = bounding_set(PG_UNIT_CAPS);
  pid_t pid = fork();
  if (pid == 0) {
    int err = open((std::string(dir) + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(err, STDERR_FILENO);
    // as systemd starts it: limits and Nice=-4 first, then the bounding
    // set. Raising the memlock limit needs CAP_SYS_RESOURCE, which a test
    // run may lack: the limit then stays as given (kernels from 5.11 on
    // charge BPF memory to the cgroup, not to this limit)
    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &unlimited) != 0 && errno != EPERM) _exit(125);
    if (setpriority(PRIO_PROCESS, 0, -4) != 0) _exit(126);
    execl("/usr/bin/setpriv", "setpriv", "--bounding-set", caps.c_str(), "--inh-caps", "-all", PORTGHOST_BIN, "trace",
          "-o", log.c_str(), "--no-existing", static_cast<char*>(nullptr));
    _exit(127);
  }
  bool started = false;
  for (int i = 0; i < 200 && !started; i++) {
    auto recs = read_jsonl(log);
    started = !recs.empty() && recs.front()["type"] == "start";
    if (!started) std::this_thread::sleep_for(50ms);
  }
  const std::string id_a(64, 'a'), id_b(64, 'b');
  std::string base = root + "/portghost-unit-" + std::to_string(getpid());
  std::string a = base + "/docker-" + id_a + ".scope", b = base + "/docker-" + id_b + ".scope";
  std::optional<Json> in_a, in_b;
  if (started) {
    EXPECT_EQ(mkdir(base.c_str(), 0755), 0);
    EXPECT_EQ(mkdir(a.c_str(), 0755), 0);
    in_a = assign_in(log, udp_send_from_cgroup(a));  // its lookup may walk the tree
    // made just after: no walk names it within the next second
    EXPECT_EQ(mkdir(b.c_str(), 0755), 0);
    in_b = assign_in(log, udp_send_from_cgroup(b));
  }
  for (const auto& d : {b, a, base}) rmdir(d.c_str());
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream ef(std::string(dir) + "/err");
  std::string err_text((std::istreambuf_iterator<char>(ef)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(started) << "exit status " << status << ": " << err_text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err_text;
  ASSERT_TRUE(in_a) << "no assign recorded under the unit's capability set";
  ASSERT_TRUE(in_b);
  EXPECT_EQ((*in_a)["container"], "docker://" + id_a) << in_a->dump();
  EXPECT_EQ((*in_b)["container"], "docker://" + id_b) << in_b->dump();
  EXPECT_EQ(err_text.find("cannot set nice"), std::string::npos) << err_text;
  EXPECT_EQ(err_text.find("CAP_DAC_READ_SEARCH"), std::string::npos) << err_text;
  for (const char* f : {"/err", "/events.jsonl"}) unlink((std::string(dir) + f).c_str());
  rmdir(dir);
}

// ---- --user: everything after the attach works with no privilege ----

namespace {
// The value of one /proc/PID/status line ("Uid", "CapEff", ...).
std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      return v;
    }
  return "";
}
}  // namespace

TEST_F(TraceOwn, UserDropsEveryPrivilegeYetTracesAttributesAndReopens) {
  if (user_refused_here()) GTEST_SKIP() << "this kernel refuses bpf() to unprivileged processes: --user is refused";
  Tracer tr({"--user", "nobody"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  // the drop follows the start record and the existing sockets
  for (int i = 0; i < 100 && status_field(tr.pid(), "Uid").rfind("65534", 0) != 0; i++)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(status_field(tr.pid(), "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(tr.pid(), "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(tr.pid(), "Groups"), "65534");
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(status_field(tr.pid(), cap), "0000000000000000") << cap;
  EXPECT_EQ(status_field(tr.pid(), "NoNewPrivs"), "1");

  // a program started after the drop is traced and named (from the kernel's
  // exec record: nobody may not read another user's /proc/PID/exe)
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_EQ(f.exit_code, 0);
  auto a = tr.wait_for(is("assign", f.cookie));
  ASSERT_TRUE(a) << tr.stderr_text();
  EXPECT_EQ((*a)["pid"], f.pid);
  char real[PATH_MAX];
  ASSERT_TRUE(realpath(PG_FIRE_BIN, real));
  EXPECT_EQ((*a)["exe"], real);
  EXPECT_EQ((*a)["cmdline"], std::string(PG_FIRE_BIN) + " udp-send 9");
  EXPECT_TRUE(tr.wait_for(is("release", f.cookie)));

  // external rotation: the log is moved away and SIGHUP reopens it; the new
  // file is created by nobody, in a directory nobody may write
  std::string dir = tr.path().substr(0, tr.path().rfind('/'));
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  ASSERT_EQ(rename(tr.path().c_str(), (tr.path() + ".1").c_str()), 0);
  ASSERT_EQ(kill(tr.pid(), SIGHUP), 0);
  struct stat st {};
  for (int i = 0; i < 100 && stat(tr.path().c_str(), &st) != 0; i++) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(stat(tr.path().c_str(), &st), 0) << tr.stderr_text();
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  int fd = udp_sendto_socket();
  uint64_t c = sock_cookie(fd);
  close(fd);
  EXPECT_TRUE(tr.wait_for(is("release", c))) << tr.stderr_text();
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  auto s = tr.wait_for([](const Json& j) { return j["type"] == "stop"; });
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["lost"], 0);
}

TEST_F(TraceOwn, UnknownUserIsExit2BeforeLoading) {
  auto [code, err] = run_cli({"trace", "--user", "no-such-user-pg", "--duration", "1"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err, "portghost: --user no-such-user-pg: no such user\n");
}

TEST_F(TraceOwn, RootIsNoUserToDropTo) {
  for (const char* who : {"root", "0"}) {
    auto [code, err] = run_cli({"trace", "--user", who, "--duration", "1"});
    EXPECT_EQ(code, 2) << who;
    EXPECT_NE(err.find("is root (uid 0)"), std::string::npos) << err;
  }
}

// Item 15: after --user, the tracer holds no writable map descriptor but the
// ring buffers' and no writable mapping but their consumer pages: it can no
// longer stop the kernel side or zero the loss counters.
TEST_F(Lifecycle, AfterUserOnlyTheRingConsumerPagesStayWritable) {
  if (user_refused_here()) GTEST_SKIP() << "this kernel refuses bpf() to unprivileged processes: --user is refused";
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
    EXPECT_EQ(flags & O_ACCMODE, static_cast<unsigned>(O_RDONLY))
        << "map fd " << fd << " (type " << type << ") is writable";
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
  bool assign = false, stop = false;
  for (const Json& j : read_jsonl(log)) {
    if (j["type"] == "assign" && j["sock"] == cookie) assign = true;
    if (j["type"] == "stop") stop = j["lost"] == 0;
  }
  EXPECT_TRUE(assign);
  EXPECT_TRUE(stop);
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}
