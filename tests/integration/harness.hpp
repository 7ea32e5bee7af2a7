// Root integration harness: runs the real portghost binary as a child,
// writing JSON to a temp file, and reads its records back; the fixtures and
// the socket and process helpers the test files share.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

namespace pgtest {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// Why the integration tests cannot run here, or nullopt when they can.
std::optional<std::string> skip_reason();

// The records of a JSON-lines file, one per complete line (a last line
// without its newline is still being written, and left out).
std::vector<Json> read_jsonl(const std::string& path);

class Tracer {
 public:
  // netns: a network namespace file (/run/netns/NAME) to run it in (only
  // that: no other namespace changes, so it sees the cgroup mounts)
  explicit Tracer(std::vector<std::string> extra_args = {}, const std::string& netns = "");
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Waits for the start record; false on timeout or early exit.
  bool wait_started(std::chrono::milliseconds timeout = 20s);
  // SIGINT, then wait; returns the exit status (or -1).
  int stop();

  std::vector<Json> records() const;
  // First record satisfying pred, waiting up to timeout for it to appear.
  std::optional<Json> wait_for(const std::function<bool(const Json&)>& pred,
                               std::chrono::milliseconds timeout = 5s) const;
  // All records satisfying pred, after waiting `settle` for stragglers.
  std::vector<Json> all(const std::function<bool(const Json&)>& pred) const;
  const std::string& path() const { return path_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const;

 private:
  std::string dir_, path_, err_path_;
  pid_t pid_ = -1;
};

// Helpers for the syscalls under test.
uint64_t sock_cookie(int fd);
uint16_t local_port(int fd);
uint32_t netns_inode(pid_t pid = 0);
std::string self_exe();
std::string thread_comm();
std::string process_comm();
pid_t gettid_();
// CLOCK_BOOTTIME in ns, the clock of a release's duration_ns.
uint64_t boot_ns();
// The cgroup v2 mount ("" if none), and this process's cgroup id (0 if none).
std::string cgroup2_root();
uint64_t own_cgroup_id();
// Forks a child, moves it into the cgroup directory `cg`, lets it make one
// udp sendto, and returns that socket's cookie once the child has exited.
uint64_t udp_send_from_cgroup(const std::string& cg);
int udp_sendto_socket();
// A udp sendto 127.0.0.1:9 from a fresh socket, closed at once; sendto's
// result, and the socket's cookie in *cookie.
int udp_send_and_close(uint64_t* cookie = nullptr);

// Addresses.
sockaddr_in v4(uint16_t port, uint32_t addr = INADDR_LOOPBACK);
sockaddr_in6 v6(uint16_t port, const char* addr = "::1");
inline sockaddr_in loop4(uint16_t port) { return v4(port); }
template <class A>
sockaddr* sa(A& a) {
  return reinterpret_cast<sockaddr*>(&a);
}
template <class A>
int do_connect(int fd, const A& a) {
  return connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

// A port nobody listens on (bound once, then freed).
uint16_t closed_port();
inline uint16_t free_tcp_port() { return closed_port(); }

// A listening TCP socket on loopback (IPv4 or IPv6), port chosen by the kernel.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  explicit Listener(int family = 2 /* AF_INET */);
  ~Listener();
};

// Accept the pending connection on l and close it (lets the client's close
// complete its FIN exchange).
void accept_and_close(const Listener& l);

// A tcp socket of `family` connects to addr, then both ends close (we first).
struct Fired {
  uint64_t cookie;
  uint16_t port;
};

template <class A>
Fired connect_and_close(int family, const A& addr, const Listener& l) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (do_connect(fd, addr) != 0) return {0, 0};
  Fired f{sock_cookie(fd), local_port(fd)};
  close(fd);
  accept_and_close(l);
  return f;
}

// Runs pg_fire MODE ARG to its end; what it printed ("PORT COOKIE").
struct FireResult {
  pid_t pid = -1;
  int exit_code = -1;
  uint16_t port = 0;
  uint64_t cookie = 0;
};

FireResult run_pg_fire(const char* mode, const std::string& arg, const char* path = PG_FIRE_BIN,
                       const char* extra = nullptr);

// Runs portghost with args (optionally as an unprivileged user); returns
// exit status and stderr.
std::pair<int, std::string> run_cli(std::vector<std::string> args, bool as_nobody = false);
size_t lines(const std::string& s);

// A socket's lifetime as the test saw it, on the clock of duration_ns.
struct Window {
  uint64_t t0 = boot_ns();
  uint64_t t1 = 0;
  void end() { t1 = boot_ns(); }
};

// Runs body in a child that writes "cookie port tid" to the pipe, then waits
// for the parent (or is killed).
struct ChildResult {
  pid_t pid;
  uint64_t cookie;
  uint16_t port;
  pid_t tid;
};
ChildResult run_child(const std::function<int()>& body, bool wait_for_kill);

// In a forked child: a network namespace of its own with lo up. Exits the
// child (status 3) when the namespace cannot be made.
void enter_fresh_netns();

// Runs fn in a forked child inside a fresh network namespace of its own (lo
// up, an ephemeral range of four ports, 40000-40003, easy to fill). fn
// writes what the parent needs into out[0..7]; then the child, and its
// namespace with it, stays until the parent lets it go with release(). The
// child exits 3 when the namespace cannot be made; fn may _exit() with codes
// of its own.
class NetnsChild {
 public:
  explicit NetnsChild(const std::function<void(uint64_t* out)>& fn);
  ~NetnsChild();  // releases the child if the test did not
  NetnsChild(const NetnsChild&) = delete;
  NetnsChild& operator=(const NetnsChild&) = delete;

  // What fn wrote; false when the child exited without a word.
  bool result(uint64_t (&out)[8]);
  // Lets the child go and waits for it: its exit status, or -1 if it did
  // not exit normally.
  int release();

  pid_t pid = -1;

 private:
  int res_[2] = {-1, -1}, go_[2] = {-1, -1};
};

// A test that runs tracers of its own (or none).
class RootTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

// A test suite whose tests share one tracer (--no-existing), started once
// for the suite.
class SharedTracerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  Tracer& t() { return *tracer_; }

 private:
  static Tracer* tracer_;
  static bool started_;
};

// Matchers
std::function<bool(const Json&)> is(const std::string& type, uint64_t cookie);
std::function<bool(const Json&)> type_port(const std::string& type, uint16_t port, const std::string& proto);

// The shared-tracer suites: each test fires one path from this process (or
// a thread, a child, an exec'd program, another network namespace) and
// asserts the assign and release.
class Trace : public SharedTracerTest {
 protected:
  Json assign_of(uint64_t cookie);
  Json release_of(uint64_t cookie);
  // The assign carries this thread's full attribution.
  void expect_mine(const Json& a);
  void expect_lifetime(const Json& rel, const Window& w);
};

// The paths a review of the kernel side found uncaught or misattributed.
// Where the kernel worlds differ (fexit where the kernel has it,
// tracepoints elsewhere), a test says what each must write.
class Holes : public SharedTracerTest {
 protected:
  const Json start() { return t().records().front(); }
  Json wait(const std::string& type, uint64_t cookie);
  std::vector<Json> of_sock(const std::string& type, uint64_t cookie);
};

bool syscall_world(const Json& start);
// The worlds that see a connect's or a failed send's end only later, at
// the socket's next sight: the syscall exits, and the cgroup hooks alone.
bool late_world(const Json& start);
bool uncaught_mentions(const Json& start, const std::string& what);
// The start record names no hook for this path in this run's world.
bool unhooked(const Json& start, const std::string& path);
// Without exec records (no bpf_loop, as start.uncaught says), exe and
// cmdline come from /proc and are null for a process gone before it was
// read: never another program's. Elsewhere they are exactly these.
void expect_exe_and_cmdline(const Json& start, const Json& rec, const std::string& exe, const std::string& cmdline);
// A kernel that refuses every bpf() call of an unprivileged process: the
// tracer refuses --user at once, with one clear line and exit 2. True when
// this kernel is one (and the refusal was as it must be).
bool user_refused_here();

// Tests with tracers of their own: options, outputs, privileges.
class TraceOwn : public RootTest {};
// Tests of what surrounds a port record: the process records that name its
// holder, the start-up of the trace, container names.
class Lifecycle : public RootTest {};

}  // namespace pgtest
