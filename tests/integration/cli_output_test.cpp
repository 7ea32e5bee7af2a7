// Root integration tests of the command line and the output against a real
// trace: errors before loading, `who` and `top` on what was traced, and
// hostile names that must not forge a record.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

TEST_F(TraceOwn, OutputInAMissingDirectoryIsExit1BeforeLoading) {
  auto [code, err] = run_cli({"trace", "-o", "/nonexistent-dir/x.jsonl"});
  EXPECT_EQ(code, 1);
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("/nonexistent-dir/x.jsonl"), std::string::npos) << err;
}

// A destination no line can ever reach (a kernel interface file that fails
// every write, a device other than a terminal or /dev/null) is refused
// before anything loads, with one line and exit 2.
TEST_F(TraceOwn, OutputThatCanNeverBeWrittenIsRefusedAtStart) {
  for (const char* path : {"/proc/version", "/dev/full"}) {
    auto [code, err] = run_cli({"trace", "-o", path});
    EXPECT_EQ(code, 2) << path << ": " << err;
    EXPECT_EQ(lines(err), 1u) << err;
    EXPECT_NE(err.find(path), std::string::npos) << err;
  }
}

TEST_F(TraceOwn, BadValueIsExit2) {
  auto [code, err] = run_cli({"trace", "--port-range", "9-1"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(lines(err), 1u) << err;
  auto [code2, err2] = run_cli({"trace", "--cgroup", "/no/such/cgroup"});
  EXPECT_EQ(code2, 2) << err2;
  EXPECT_EQ(lines(err2), 1u) << err2;
}

namespace {
// Runs `portghost ARGS`, returns exit status and stdout.
std::pair<int, std::string> run_capture(std::vector<std::string> args) {
  char tmpl[] = "/tmp/portghost-out-XXXXXX";
  int ofd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(ofd, STDOUT_FILENO);
    std::vector<char*> argv{const_cast<char*>(PORTGHOST_BIN)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(PORTGHOST_BIN, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::string out(1 << 16, '\0');
  ssize_t n = pread(ofd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(ofd);
  unlink(tmpl);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string ns_as_seconds(uint64_t ns) {
  char buf[40];
  snprintf(buf, sizeof buf, "%llu.%09llu", static_cast<unsigned long long>(ns / 1'000'000'000ULL),
           static_cast<unsigned long long>(ns % 1'000'000'000ULL));
  return buf;
}
}  // namespace

// --format ecs and ocsf on a real connection: the documents name its two
// ends, its process and its flow; who and stats say they read only the log.
TEST_F(TraceOwn, EcsAndOcsfDocumentsOfARealConnection) {
  for (std::string fmt : {"ecs", "ocsf"}) {
    SCOPED_TRACE(fmt);
    bool ecs = fmt == "ecs";
    Listener l;
    std::string kept;
    {
      Tracer tr({"--no-existing", "--format", fmt});
      auto kind = [ecs](const Json& j) -> std::string {
        if (ecs) return j.contains("portghost") ? j["portghost"].value("type", "") : "";
        return j.contains("unmapped") ? j["unmapped"].value("type", "") : "";
      };
      // as long as wait_started() gives a start (an emulated guest is slow to load)
      ASSERT_TRUE(tr.wait_for([&](const Json& j) { return kind(j) == "start"; }, 20s)) << tr.stderr_text();
      FireResult f = run_pg_fire("tcp-connect", std::to_string(l.port));
      accept_and_close(l);
      ASSERT_NE(f.cookie, 0u);
      auto of = [&](const std::string& type) {
        return tr.wait_for([&, type](const Json& j) {
          const Json& p = ecs ? j["portghost"] : j["unmapped"];
          return kind(j) == type && p["sock"] == f.cookie;
        });
      };
      auto a = of("assign");
      auto r = of("release");
      ASSERT_TRUE(a && r) << tr.stderr_text();
      if (ecs) {
        EXPECT_EQ((*a)["source"]["port"], f.port);
        EXPECT_EQ((*a)["destination"]["port"], l.port);
        EXPECT_EQ((*a)["process"]["name"], "pg_fire");
        EXPECT_EQ((*a)["network"]["transport"], "tcp");
        EXPECT_TRUE((*a)["network"]["community_id"].is_string());
        EXPECT_EQ((*r)["network"]["community_id"], (*a)["network"]["community_id"]);
        EXPECT_NE((*r)["event"]["type"].dump().find("end"), std::string::npos);
        EXPECT_TRUE((*r)["event"]["duration"].is_number_integer());
      } else {
        EXPECT_EQ((*a)["class_uid"], 4001);
        EXPECT_EQ((*a)["activity_id"], 1);
        EXPECT_EQ((*a)["src_endpoint"]["port"], f.port);
        EXPECT_EQ((*a)["dst_endpoint"]["port"], l.port);
        EXPECT_EQ((*a)["actor"]["process"]["name"], "pg_fire");
        EXPECT_EQ((*r)["activity_id"], 2);
      }
      EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
      kept = "/tmp/portghost-std-" + std::to_string(getpid()) + "-" + fmt + ".jsonl";
      std::ifstream src(tr.path(), std::ios::binary);
      std::ofstream dst(kept, std::ios::binary);
      dst << src.rdbuf();
    }
    auto [code, err] = run_cli({"stats", kept});
    EXPECT_EQ(code, 1);
    EXPECT_NE(err.find(ecs ? "ECS documents" : "OCSF documents"), std::string::npos) << err;
    EXPECT_EQ(lines(err), 2u) << err;  // the first bad line, then why
    unlink(kept.c_str());
  }
}

TEST_F(TraceOwn, WhoNamesTheProcessThatHeldThePort) {
  Listener l;
  std::string log;
  uint64_t assigned = 0, cookie = 0;
  unsigned port = 0;
  {
    Tracer tr({"--no-existing"});
    ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
    FireResult f = run_pg_fire("tcp-connect", std::to_string(l.port));
    accept_and_close(l);
    ASSERT_NE(f.cookie, 0u);
    port = f.port;
    cookie = f.cookie;
    auto a = tr.wait_for(is("assign", cookie));
    ASSERT_TRUE(a);
    ASSERT_TRUE(tr.wait_for(is("release", cookie)));
    assigned = (*a)["ts_ns"];
    EXPECT_EQ(tr.stop(), 0);
    // keep the log: the tracer's directory goes with it
    log = "/tmp/portghost-who-" + std::to_string(getpid()) + ".jsonl";
    std::ifstream src(tr.path(), std::ios::binary);
    std::ofstream dst(log, std::ios::binary);
    dst << src.rdbuf();
  }
  auto [code, out] = run_capture({"who", std::to_string(port), "--at", ns_as_seconds(assigned + 1), log});
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("pg_fire"), std::string::npos) << out;
  EXPECT_NE(out.find("tcp 127.0.0.1:" + std::to_string(port)), std::string::npos) << out;
  EXPECT_EQ(out.find("NOT COVERED"), std::string::npos) << out;
  // an hour earlier nobody was looking
  auto [code2, out2] =
      run_capture({"who", std::to_string(port), "--at", ns_as_seconds(assigned - 3600'000'000'000ULL), log});
  EXPECT_EQ(code2, 0);
  EXPECT_EQ(out2.find("pg_fire"), std::string::npos) << out2;
  EXPECT_NE(out2.find("NOT COVERED"), std::string::npos) << out2;
  unlink(log.c_str());
}

TEST_F(TraceOwn, TopShowsAPortHeldNow) {
  char tmpl[] = "/tmp/portghost-top-XXXXXX";
  int ofd = mkstemp(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(ofd, STDOUT_FILENO);
    execl(PORTGHOST_BIN, PORTGHOST_BIN, "top", "--duration", "2.5", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(1s);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint16_t port = local_port(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  std::string out(1 << 20, '\0');
  ssize_t n = pread(ofd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  close(ofd);
  unlink(tmpl);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // the last screen lists our port among the holders, with this process
  auto last = out.rfind("portghost top");
  ASSERT_NE(last, std::string::npos) << out;
  std::string screen = out.substr(last);
  EXPECT_NE(screen.find(std::to_string(port)), std::string::npos) << screen;
  EXPECT_NE(screen.find(std::to_string(getpid())), std::string::npos) << screen;
  EXPECT_NE(screen.find("OCCUPANCY"), std::string::npos) << screen;
}

// ---- hostile names never make a record of their own ----

TEST_F(TraceOwn, HostileNamesAndCommandLinesCannotForgeRecords) {
  // comm is the name the program was run by: a link whose name is a fake
  // record start plus a terminal escape; the command line is worse still
  char tmpl[] = "/tmp/portghost-names-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string name = "\n{\"type\":\"x\"}\x1b[";  // 15 bytes: all of comm
  std::string link = std::string(tmpl) + "/" + name;
  ASSERT_EQ(symlink(PG_FIRE_BIN, link.c_str()), 0);
  struct Cleanup {
    std::string link, dir;
    ~Cleanup() {
      unlink(link.c_str());
      rmdir(dir.c_str());
    }
  } cleanup{link, tmpl};
  const std::string evil = "\n{\"type\":\"release\",\"lport\":1}\r\x1b[2J\x1b]0;owned\x07\xff\xc3";
  Tracer tr({"--no-existing"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  FireResult f = run_pg_fire("udp-send", "9", link.c_str(), evil.c_str());
  ASSERT_EQ(f.exit_code, 0);
  auto a = tr.wait_for(is("assign", f.cookie));
  ASSERT_TRUE(a) << "every line must still parse, and the assign be there";
  EXPECT_EQ((*a)["comm"], name);  // the exact bytes, escaped in the file
  // (without exec records, /proc's cmdline if the process was still there)
  if (!uncaught_mentions(tr.records().front(), "no bpf_loop") || !(*a)["cmdline"].is_null()) {
    EXPECT_NE((*a)["cmdline"].get<std::string>().find("\"type\":\"release\""), std::string::npos) << *a;
  }
  EXPECT_EQ(tr.stop(), 0);
  // no forged record: nothing but the known types, and no release of port 1
  for (const auto& r : tr.records()) {
    static const std::set<std::string> known = {"start",     "assign", "release", "existing",
                                                "exhausted", "lost",   "warning", "stop"};
    EXPECT_TRUE(known.count(r["type"].get<std::string>())) << r;
    EXPECT_FALSE(r["type"] == "release" && r["lport"] == 1) << r;
  }
  // and no raw control byte reaches the file (a terminal tailing it is safe)
  std::ifstream in(tr.path(), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (unsigned char c : text) ASSERT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7f)) << "raw byte " << int(c);
}
