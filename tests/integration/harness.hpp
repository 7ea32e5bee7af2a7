// Root integration harness: runs the real portghost binary as a child,
// writing JSON to a temp file, and reads its records back.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pgtest {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// Why the integration tests cannot run here, or nullopt when they can.
std::optional<std::string> skip_reason();

class Tracer {
 public:
  explicit Tracer(std::vector<std::string> extra_args = {});
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
// The cgroup v2 mount ("" if none), and this process's cgroup id (0 if none).
std::string cgroup2_root();
uint64_t own_cgroup_id();
// Forks a child, moves it into the cgroup directory `cg`, lets it make one
// udp sendto, and returns that socket's cookie once the child has exited.
uint64_t udp_send_from_cgroup(const std::string& cg);
int udp_sendto_socket();

// A listening TCP socket on loopback (IPv4 or IPv6), port chosen by the kernel.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  explicit Listener(int family = 2 /* AF_INET */);
  ~Listener();
};

// In a forked child: a network namespace of its own with lo up. Exits the
// child (status 3) when the namespace cannot be made.
void enter_fresh_netns();
// The same, and an
// ephemeral range of four ports (40000-40003), easy to fill. Exits the
// child (status 3) when the namespace cannot be made.
void enter_netns_with_four_ports();

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

}  // namespace pgtest
