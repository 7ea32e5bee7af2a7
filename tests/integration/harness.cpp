// Root integration harness: the tracer as a child process, its records, and
// the fixtures of the test suites.
#include "harness.hpp"
#include <bpf/bpf.h>
#include <grp.h>
#include <algorithm>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgtest {

std::optional<std::string> skip_reason() {
  if (geteuid() != 0) return "not root: the integration tests load BPF programs and need root";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "the kernel has no BTF";
  return std::nullopt;
}

Tracer::Tracer(std::vector<std::string> extra_args, const std::string& netns) {
  char tmpl[] = "/tmp/portghost-it-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  dir_ = tmpl;
  path_ = dir_ + "/events.jsonl";
  err_path_ = dir_ + "/stderr.txt";
  std::vector<std::string> args = {PORTGHOST_BIN, "trace", "-o", path_};
  // the log format unless the test asks for another (--format ecs, ocsf)
  if (std::find(extra_args.begin(), extra_args.end(), "--format") == extra_args.end())
    args.insert(args.end(), {"--format", "json"});
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // PG_TRACE_EXTRA: arguments for every tracer of a run (e.g. --no-fentry,
  // to test the fallback hooks on a kernel that has fentry)
  if (const char* env = std::getenv("PG_TRACE_EXTRA")) {
    std::istringstream words(env);
    for (std::string w; words >> w;) args.push_back(w);
  }
  pid_ = fork();
  if (pid_ == 0) {
    int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (err >= 0) dup2(err, STDERR_FILENO);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!netns.empty()) {
      int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(126);
      close(fd);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
}

Tracer::~Tracer() {
  if (pid_ > 0) stop();
  if (std::getenv("PG_KEEP_TRACE")) {  // for a look at a failure: the log and stderr stay
    std::fprintf(stderr, "kept %s\n", dir_.c_str());
    return;
  }
  std::string cmd = "rm -rf '" + dir_ + "'";
  if (std::system(cmd.c_str()) != 0) {
  }
}

bool Tracer::wait_started(std::chrono::milliseconds timeout) {
  return wait_for([](const Json& j) { return j["type"] == "start"; }, timeout).has_value();
}

int Tracer::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGINT);
  int status = 0;
  for (int i = 0; i < 200; i++) {  // 10 s
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(50ms);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

namespace {
std::string rfc3339(uint64_t unix_ns) {
  time_t s = static_cast<time_t>(unix_ns / 1'000'000'000ULL);
  struct tm tm {};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned long long>(unix_ns % 1'000'000'000ULL));
  return buf;
}

// A life line is a port's assign and its release in one line
// (docs/event-schema.md). The tests read it as the two records it stands
// for, each keyed "life": true, so that each asserts the same records
// however the tracer wrote them, and can tell which way it did.
void add_record(Json j, std::vector<Json>& out) {
  if (j["type"] != "life") {
    out.push_back(std::move(j));
    return;
  }
  const char* release_only[] = {"duration_ns", "timewait", "closer_pid", "closer_tid", "closer_comm"};
  Json rel = Json::object();
  uint64_t end = j["ts_ns"].get<uint64_t>() + j["duration_ns"].get<uint64_t>();
  rel["type"] = "release";
  rel["ts"] = rfc3339(end);
  rel["ts_ns"] = end;
  for (const char* k :
       {"sock", "proto", "family", "laddr", "lport", "raddr", "rport", "community_id", "duration_ns", "pid", "comm",
        "timewait", "closer_pid", "closer_tid", "closer_comm", "mptcp", "host", "run", "seq"})
    if (j.contains(k)) rel[k] = j[k];
  rel["life"] = true;
  Json assign = j;
  assign["type"] = "assign";
  for (const char* k : release_only) assign.erase(k);
  assign["life"] = true;
  out.push_back(std::move(assign));
  out.push_back(std::move(rel));
}
}  // namespace

std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (f.eof()) break;  // a line without its newline is still being written
    add_record(Json::parse(line), out);
  }
  return out;
}

std::vector<Json> Tracer::records() const { return read_jsonl(path_); }

std::optional<Json> Tracer::wait_for(const std::function<bool(const Json&)>& pred,
                                     std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (const auto& r : records())
      if (pred(r)) return r;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

std::vector<Json> Tracer::all(const std::function<bool(const Json&)>& pred) const {
  std::vector<Json> out;
  for (const auto& r : records())
    if (pred(r)) out.push_back(r);
  return out;
}

std::string Tracer::stderr_text() const {
  std::ifstream f(err_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::function<bool(const Json&)> is(const std::string& type, uint64_t cookie) {
  return [=](const Json& j) { return j["type"] == type && j.contains("sock") && j["sock"] == cookie; };
}

std::function<bool(const Json&)> type_port(const std::string& type, uint16_t port, const std::string& proto) {
  return [=](const Json& j) {
    return j["type"] == type && j.contains("lport") && j["lport"] == port && j["proto"] == proto;
  };
}

Tracer* SharedTracerTest::tracer_ = nullptr;
bool SharedTracerTest::started_ = false;

void SharedTracerTest::SetUpTestSuite() {
  if (skip_reason()) return;
  tracer_ = new Tracer({"--no-existing"});
  started_ = tracer_->wait_started();
}

void SharedTracerTest::TearDownTestSuite() {
  delete tracer_;
  tracer_ = nullptr;
}

void SharedTracerTest::SetUp() {
  if (auto r = skip_reason()) GTEST_SKIP() << *r;
  ASSERT_TRUE(started_) << "tracer did not start: " << tracer_->stderr_text();
}

void RootTest::SetUp() {
  if (auto r = skip_reason()) GTEST_SKIP() << *r;
}

Json Trace::assign_of(uint64_t cookie) {
  auto r = t().wait_for(is("assign", cookie));
  EXPECT_TRUE(r) << "no assign for sock " << cookie;
  return r.value_or(Json::object());
}

Json Trace::release_of(uint64_t cookie) {
  auto r = t().wait_for(is("release", cookie));
  EXPECT_TRUE(r) << "no release for sock " << cookie;
  return r.value_or(Json::object());
}

void Trace::expect_mine(const Json& a) {
  EXPECT_EQ(a["pid"], getpid());
  EXPECT_EQ(a["tid"], gettid_());
  EXPECT_EQ(a["ppid"], getppid());
  EXPECT_EQ(a["uid"], getuid());
  EXPECT_EQ(a["comm"], process_comm());
  EXPECT_EQ(a["thread"], thread_comm());
  EXPECT_EQ(a["exe"], self_exe());
  EXPECT_EQ(a["netns"], netns_inode());
  EXPECT_TRUE(a["cgroup_id"].is_number());
  EXPECT_EQ(a["kernel"], false);
}

void Trace::expect_lifetime(const Json& rel, const Window& w) {
  ASSERT_TRUE(rel["duration_ns"].is_number()) << rel.dump();
  uint64_t d = rel["duration_ns"];
  EXPECT_GT(d, 0u);
  EXPECT_LE(d, w.t1 - w.t0) << rel.dump();
}

namespace {
// Runs of portghost's tracing programs that the kernel skipped so far (a
// program not run nested on a CPU where it runs: a skipped move to CLOSE is
// a release left to the next reconciliation, seconds later), for a wait's
// failure message.
uint64_t skipped_tracing_runs() {
  uint64_t n = 0;
  for (uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::string(info.name).rfind("pg_", 0) == 0)
      n += info.recursion_misses;
    close(fd);
  }
  return n;
}
}  // namespace

Json Holes::wait(const std::string& type, uint64_t cookie) {
  auto r = t().wait_for(is(type, cookie));
  EXPECT_TRUE(r) << "no " << type << " for sock " << cookie << " (the kernel has skipped " << skipped_tracing_runs()
                 << " runs of the tracing programs so far)";
  return r.value_or(Json::object());
}

std::vector<Json> Holes::of_sock(const std::string& type, uint64_t cookie) {
  std::this_thread::sleep_for(300ms);  // stragglers
  return t().all(is(type, cookie));
}

bool syscall_world(const Json& start) { return start["world"] == "syscall"; }

bool late_world(const Json& start) { return start["world"] == "syscall" || start["world"] == "cgroup"; }

bool unhooked(const Json& start, const std::string& path) {
  return start["paths"].contains(path) && start["paths"][path].is_null();
}

void expect_exe_and_cmdline(const Json& start, const Json& rec, const std::string& exe, const std::string& cmdline) {
  if (uncaught_mentions(start, "no bpf_loop")) {
    EXPECT_TRUE(rec["exe"].is_null() || rec["exe"] == exe) << rec.dump();
    EXPECT_TRUE(rec["cmdline"].is_null() || rec["cmdline"] == cmdline) << rec.dump();
    return;
  }
  EXPECT_EQ(rec["exe"], exe) << rec.dump();
  EXPECT_EQ(rec["cmdline"], cmdline) << rec.dump();
}

bool user_refused_here() {
  // what the tracer probes: a map read by nobody, without capabilities
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pg_test_probe", sizeof(uint32_t), sizeof(uint64_t), 1, nullptr);
  if (fd < 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    uint32_t key = 0;
    uint64_t value = 0;
    _exit(bpf_map_lookup_elem(fd, &key, &value) == 0 ? 0 : 1);
  }
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) return false;
  Tracer tr({"--user", "nobody"});
  EXPECT_FALSE(tr.wait_started(10s)) << "--user must be refused before the start";
  EXPECT_EQ(tr.stop(), 2);
  std::string err = tr.stderr_text();
  EXPECT_NE(err.find("--user cannot work on this kernel"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
  return true;
}

bool uncaught_mentions(const Json& start, const std::string& what) {
  for (const auto& u : start["uncaught"])
    if (u.get<std::string>().find(what) != std::string::npos) return true;
  return false;
}

}  // namespace pgtest
