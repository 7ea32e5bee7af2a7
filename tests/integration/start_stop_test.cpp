// Root integration tests of the trace's start and stop: the start record and
// the hooks it names, ports taken while the hooks attach, the consumer's
// priority, and the ways a trace ends (--duration, SIGINT under a flood, a
// reader that never reads).
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace pgtest;

TEST_F(Trace, StartRecordComesFirstWithHooksAndRange) {
  auto recs = t().records();
  ASSERT_FALSE(recs.empty());
  const Json& s = recs.front();
  EXPECT_EQ(s["type"], "start");
  EXPECT_TRUE(s["ts"].is_string());
  EXPECT_TRUE(s["ts_ns"].is_number());
  EXPECT_FALSE(s["version"].get<std::string>().empty());
  EXPECT_FALSE(s["kernel"].get<std::string>().empty());
  EXPECT_GE(s["hooks"].size(), 10u);
  ASSERT_EQ(s["port_range"].size(), 2u);
  EXPECT_LE(s["port_range"][0].get<int>(), s["port_range"][1].get<int>());
  EXPECT_TRUE(s["uncaught"].is_array());
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(s["host"], host);
  EXPECT_EQ(s["boot_id"].get<std::string>().size(), 36u);
  EXPECT_TRUE(s["machine_id"].is_string());
  // the maps' kernel memory holds the event ring at least, and is stated
  // as the kernel counts it: not a round figure of portghost's own
  uint64_t ring = s["ring_buffer_bytes"].get<uint64_t>(), maps = s["kernel_maps_bytes"].get<uint64_t>();
  EXPECT_GE(maps, ring);
  EXPECT_LT(maps, ring + (256u << 20));
}

// The ends of connect, bind and send come from one world: fexit on the
// kernel functions where the kernel has it, else the socket tracepoints
// (Linux >= 6.3), else the syscall exits; never two (a record would be
// written twice). PG_EXPECT_WORLD names the one this kernel must use.
namespace {
const std::set<std::string> kFexitHooks = {"fentry/inet_autobind",     "fexit/inet_autobind",
                                           "fexit/inet_csk_get_port",  "fexit/udp_lib_get_port",
                                           "fexit/inet_dgram_connect", "fexit/inet_hash_connect"};
const std::set<std::string> kSocketHooks = {"tp_btf/sock_send_length"};
const std::set<std::string> kExitHooks = {"tracepoint/syscalls/sys_exit_bind", "tracepoint/syscalls/sys_exit_sendto",
                                          "tracepoint/syscalls/sys_exit_connect", "cgroup/sendmsg4"};
size_t count_hooks(const Json& start, const std::set<std::string>& names) {
  size_t n = 0;
  for (const auto& h : start["hooks"]) n += names.count(h.get<std::string>());
  return n;
}
}  // namespace

TEST_F(Trace, ExhaustionHooksAreOneWorldOnly) {
  const Json s = t().records().front();
  size_t fexit = count_hooks(s, kFexitHooks), sock = count_hooks(s, kSocketHooks), exits = count_hooks(s, kExitHooks);
  std::string world = s["world"];
  if (world == "fexit")
    EXPECT_TRUE(fexit == kFexitHooks.size() && sock == 0 && exits == 0) << s["hooks"].dump();
  else if (world == "socket")
    EXPECT_TRUE(fexit == 0 && sock == kSocketHooks.size() && exits == 0) << s["hooks"].dump();
  else if (world == "syscall")
    EXPECT_TRUE(fexit == 0 && sock == 0 && exits == kExitHooks.size()) << s["hooks"].dump();
  else if (world == "cgroup")  // no syscall exit can read its socket here: datagram sends only
    EXPECT_TRUE(fexit == 0 && sock == 0 && exits == count_hooks(s, {"cgroup/sendmsg4"})) << s["hooks"].dump();
  else
    ADD_FAILURE() << "no world: " << s.dump();
  // where another hook can serve, nothing sits on the syscall layer, whose
  // tracepoints slow every syscall of every process
  if (world != "syscall") {
    for (const auto& h : s["hooks"]) {
      std::string name = h;
      EXPECT_EQ(name.find("syscalls/"), std::string::npos) << name;
      EXPECT_EQ(name.find("raw_syscalls"), std::string::npos) << name;
      EXPECT_EQ(name.find("raw_tp/sys_"), std::string::npos) << name;
    }
  }
  // the start record names the hook of every path, the same paths in both
  ASSERT_TRUE(s["paths"].is_object());
  for (const char* p :
       {"tcp connect(): port chosen", "bind(): port given or chosen", "udp connect()", "bind(0) finding no free port",
        "listen() finding no free port", "udp send finding no free port", "udp connect() finding no free port",
        "sctp port taken, released or not found"})
    EXPECT_TRUE(s["paths"].contains(p)) << p << " in " << s["paths"].dump();
  EXPECT_EQ(s["paths"]["udp connect() finding no free port"].is_null(), world == "syscall") << s["paths"].dump();
  if (const char* want = std::getenv("PG_EXPECT_WORLD")) {
    EXPECT_EQ(world, std::string(want)) << s["hooks"].dump();
  }
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

TEST_F(TraceOwn, DurationStopsTheTrace) {
  Tracer tr({"--no-existing", "--duration", "1"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  auto s = tr.wait_for([](const Json& j) { return j["type"] == "stop"; }, 10s);
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["reason"], "duration");
}

TEST_F(TraceOwn, StopsPromptlyUnderAFlood) {
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::atomic<bool> done{false};
  std::vector<std::thread> flood;
  for (int i = 0; i < 2; i++)
    flood.emplace_back([&] {
      auto until = std::chrono::steady_clock::now() + 8s;
      while (!done && std::chrono::steady_clock::now() < until) close(udp_sendto_socket());
    });
  std::this_thread::sleep_for(500ms);
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t sigint_ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(now.tv_nsec);
  int code = tr.stop();  // SIGINT; SIGKILL after 10 s
  done = true;
  for (auto& th : flood) th.join();
  EXPECT_EQ(code, 0) << "SIGINT must end the trace while the flood goes on";
  auto recs = tr.records();
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back()["type"], "stop");
  EXPECT_GT(recs.back()["records"]["assign"].get<uint64_t>(), 0u);
  // the data is complete promptly: the stop record within 2 s of SIGINT
  // (the process exit after it waits on the kernel's detach of the hooks);
  // a sanitizer build is several times slower
  uint64_t bound = getenv("PG_SANITIZED") ? 10'000'000'000ULL : 2'000'000'000ULL;
  EXPECT_LT(recs.back()["ts_ns"].get<uint64_t>() - sigint_ns, bound);
}

TEST_F(TraceOwn, AStuckReaderDoesNotBlockTheStop) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);  // we never read: the pipe fills up
  char tmpl[] = "/tmp/portghost-err-XXXXXX";
  int efd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    dup2(efd, STDERR_FILENO);
    close(p[0]);
    execl(PORTGHOST_BIN, PORTGHOST_BIN, "trace", "--format", "json", "--no-existing", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  // attached once the start record is in the pipe (slow on an emulated CPU)
  int queued = 0;
  for (int i = 0; i < 400 && queued == 0; i++) {
    if (ioctl(p[0], FIONREAD, &queued) != 0) queued = 0;
    if (queued == 0) std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(queued, 0) << "no start record within 20 s";
  for (int i = 0; i < 3000; i++) close(udp_sendto_socket());  // far more than a pipe holds
  std::this_thread::sleep_for(500ms);
  auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  pid_t r = 0;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(20ms);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "portghost blocked on its output after SIGINT";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::string err(4096, '\0');
  ssize_t n = pread(efd, err.data(), err.size(), 0);
  err.resize(n > 0 ? static_cast<size_t>(n) : 0);
  EXPECT_NE(err.find("blocked"), std::string::npos) << err;
  close(efd);
  unlink(tmpl);
  close(p[0]);
}

// The stop record counts the sockets still holding a recorded port, and a
// socket whose release no hook wrote is not among them: the last walk of the
// kernel's sockets before the stop releases what the kernel no longer has.
TEST_F(TraceOwn, TheStopCountsWhatIsStillHeld) {
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  if (child == 0) {
    char x;
    if (read(go[0], &x, 1) != 1) _exit(1);
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    auto any = v4(0);
    if (bind(a, sa(any), sizeof any) != 0 || bind(b, sa(any), sizeof any) != 0) _exit(2);
    close(b);
    if (write(done[1], "x", 1) != 1) _exit(3);
    pause();  // holds a until killed
    _exit(0);
  }
  Tracer t({"--pid", std::to_string(child)});
  ASSERT_TRUE(t.wait_started()) << t.stderr_text();
  ASSERT_EQ(write(go[1], "x", 1), 1);
  char x;
  ASSERT_EQ(read(done[0], &x, 1), 1);
  ASSERT_TRUE(t.wait_for([](const Json& r) { return r["type"] == "release"; }));
  ASSERT_EQ(t.stop(), 0) << t.stderr_text();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  const Json stop = t.records().back();
  ASSERT_EQ(stop["type"], "stop") << stop.dump();
  EXPECT_EQ(stop["held"], 1) << stop.dump();
  EXPECT_EQ(stop["records"]["assign"], 2) << stop.dump();
  EXPECT_EQ(stop["records"]["release"], 1) << stop.dump();
  // the bounded caches say what they forgot: nothing, on a quiet host
  EXPECT_EQ(stop["process_evicted"], 0) << stop.dump();
  EXPECT_EQ(stop["cgroup_evicted"], 0) << stop.dump();
  for (int fd : {go[0], go[1], done[0], done[1]}) close(fd);
}
