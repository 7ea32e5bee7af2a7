// NAT: a "container" namespace reaches a "server" namespace through a
// "host" namespace that masquerades it (and SNATs some ports to a range that
// changes every source port). The tracer runs in the host namespace, as on
// a container host; who, asked with the tuple the server saw, names the
// process inside the container. Every address is in 198.18.0.0/15, inside
// namespaces this test makes (nat_topology.sh).
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>

#include "harness.hpp"

using namespace pgtest;

namespace {

constexpr const char* kServer = "198.19.0.2";
constexpr const char* kOutside = "198.19.0.1";  // the host's address towards the server
constexpr const char* kInside = "198.18.0.2";   // the container's

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  return out;
}

// The three namespaces, removed whatever happens.
struct Topology {
  std::string name = "pgnat" + std::to_string(getpid());
  std::string error;
  Topology() {
    std::string out = run(std::string(PG_NAT_TOPOLOGY) + " up " + name + " 2>&1; echo rc=$?");
    if (out.find("rc=0") == std::string::npos) error = out;
  }
  ~Topology() { run(std::string(PG_NAT_TOPOLOGY) + " down " + name + " 2>&1"); }
  std::string ns(const char* which) const { return "/run/netns/" + name + "-" + which; }
};

bool enter(const std::string& ns) {
  int fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

// What one flow's process reports back.
struct Flow {
  pid_t pid = -1;
  uint64_t cookie = 0;
  uint16_t lport = 0;
};

// Runs body in a child inside namespace ns; body returns a socket whose
// cookie and port the child reports, then closes it and exits.
Flow in_netns(const std::string& ns, const std::function<int()>& body) {
  int p[2];
  if (pipe(p) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    uint64_t out[2] = {0, 0};
    if (enter(ns)) {
      int fd = body();
      if (fd >= 0) {
        out[0] = sock_cookie(fd);
        out[1] = local_port(fd);
        usleep(50'000);  // held a moment, as a real client would
        close(fd);
      }
    }
    if (write(p[1], out, sizeof out) != sizeof out) _exit(1);
    _exit(0);
  }
  close(p[1]);
  uint64_t out[2] = {0, 0};
  ssize_t n = read(p[0], out, sizeof out);
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Flow f;
  f.pid = pid;
  if (n == sizeof out) {
    f.cookie = out[0];
    f.lport = static_cast<uint16_t>(out[1]);
  }
  return f;
}

sockaddr_in at(const char* addr, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, addr, &a.sin_addr);
  return a;
}

int tcp_to(uint16_t port, uint16_t local = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (local) {
    sockaddr_in l = at("0.0.0.0", local);
    if (bind(fd, reinterpret_cast<sockaddr*>(&l), sizeof l) != 0) return -1;
  }
  sockaddr_in s = at(kServer, port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) return -1;
  char c;
  if (read(fd, &c, 1) != 0) return -1;  // the server closes first: no TIME_WAIT here
  return fd;
}

int udp_to(uint16_t port, uint16_t local = 0) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (local) {
    sockaddr_in l = at("0.0.0.0", local);
    if (bind(fd, reinterpret_cast<sockaddr*>(&l), sizeof l) != 0) return -1;
  }
  sockaddr_in s = at(kServer, port);
  if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&s), sizeof s) != 1) return -1;
  return fd;
}

// The server: accepts on 7000 and 7002 and closes each connection at once,
// until killed.
pid_t start_server(const std::string& ns) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test
    if (!enter(ns)) _exit(3);
    int ls[2];
    uint16_t ports[2] = {7000, 7002};
    for (int i = 0; i < 2; i++) {
      ls[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      int one = 1;
      setsockopt(ls[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a = at("0.0.0.0", ports[i]);
      if (bind(ls[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls[i], 64) != 0) _exit(4);
    }
    if (write(ready[1], "r", 1) != 1) _exit(5);
    for (;;) {
      for (int l : ls) {
        int c = accept(l, nullptr, nullptr);
        if (c >= 0) close(c);
      }
      usleep(1000);
    }
  }
  close(ready[1]);
  char c = 0;
  bool ok = read(ready[0], &c, 1) == 1;
  close(ready[0]);
  return ok ? pid : -1;
}

uint32_t netns_of(const std::string& ns) {
  struct stat st {};
  return stat(ns.c_str(), &st) == 0 ? static_cast<uint32_t>(st.st_ino) : 0;
}

// who's JSON answer lines for these arguments.
std::vector<Json> who(const std::string& args, const std::string& log) {
  std::vector<Json> v;
  std::istringstream in(run(std::string(PORTGHOST_BIN) + " who " + args + " --format json " + log + " 2>&1"));
  for (std::string line; std::getline(in, line);) {
    auto j = Json::parse(line, nullptr, false);
    if (!j.is_discarded()) v.push_back(j);
  }
  return v;
}

// Kills and reaps a child when the test ends, however it ends.
struct Reaped {
  pid_t pid;
  ~Reaped() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Whether process pid holds a netlink socket subscribed to netfilter's
// groups (conntrack's events): /proc/PID/net/netlink, in its namespace,
// against the sockets of /proc/PID/fd.
bool subscribed_to_conntrack(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/net/netlink");
  std::set<std::string> inodes;
  std::string line;
  std::getline(f, line);  // the header
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string sk, eth, port, groups, rmem, wmem, dump, locks, drops, inode;
    in >> sk >> eth >> port >> groups >> rmem >> wmem >> dump >> locks >> drops >> inode;
    if (eth == "12" && groups.find_first_not_of('0') != std::string::npos) inodes.insert(inode);
  }
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0 && inodes.count(target.substr(8, target.size() - 9))) return true;
  }
  return false;
}

// Loopback connections inside ns: tracked by conntrack there, translated by
// nothing.
void loopback_connections(const std::string& ns, int n) {
  in_netns(ns, [n] {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = at("127.0.0.1", 0);
    socklen_t len = sizeof a;
    if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 64) != 0 ||
        getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return -1;
    for (int i = 0; i < n; i++) {
      int c = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) close(accept(l, nullptr, nullptr));
      close(c);
    }
    close(l);
    return -1;
  });
}

class Nat : public RootTest {};

}  // namespace

TEST_F(Nat, WhoAskedWithTheTupleTheServerSawNamesTheProcessInTheContainer) {
  Topology topo;
  // on the host and in every vmtest guest (which brings bash, nft and the
  // netfilter modules of its kernel): failing to build the namespaces is a
  // failure, with what the kernel or the tools said
  ASSERT_TRUE(topo.error.empty()) << "cannot make the namespaces: " << topo.error;
  Tracer t({"--no-existing"}, topo.ns("host"));
  ASSERT_TRUE(t.wait_started()) << t.stderr_text();
  const Json start = t.records().front();
  for (const auto& u : start["uncaught"])
    if (u.get<std::string>().rfind("NAT", 0) == 0) GTEST_SKIP() << "this kernel: " << u.get<std::string>();
  pid_t server = start_server(topo.ns("srv"));
  Reaped reap_server{server};
  ASSERT_GT(server, 0);

  struct Case {
    const char* what;
    Flow flow;
    const char* proto;
    uint16_t rport;
    bool port_changes;  // SNAT to 62000-62009
  };
  std::vector<Case> cases;
  // Nothing is translated yet: portghost only looks at the table (once a
  // second at most). This first flow is over before the look that finds
  // it, which joins it to the socket that let the port go; from then on,
  // portghost follows the events and the rest are joined as they come (two
  // of them reuse one tuple within a second, which a look alone could miss).
  cases.push_back({"tcp, masqueraded", in_netns(topo.ns("ctr"), [] { return tcp_to(7000); }), "tcp", 7000, false});
  ASSERT_TRUE(t.wait_for([&](const Json& j) { return j["type"] == "nat" && j["sock"] == cases[0].flow.cookie; }))
      << "the first translated flow was not found by a look";
  cases.push_back({"tcp, port changed", in_netns(topo.ns("ctr"), [] { return tcp_to(7002); }), "tcp", 7002, true});
  cases.push_back({"udp, masqueraded", in_netns(topo.ns("ctr"), [] { return udp_to(7001); }), "udp", 7001, false});
  cases.push_back({"udp, port changed", in_netns(topo.ns("ctr"), [] { return udp_to(7003); }), "udp", 7003, true});
  // one local port, two processes one after the other: TCP (the first
  // connection over before the second opens) and UDP (two flows)
  cases.push_back(
      {"tcp 45000, first", in_netns(topo.ns("ctr"), [] { return tcp_to(7000, 45000); }), "tcp", 7000, false});
  usleep(200'000);
  cases.push_back(
      {"tcp 45000, again", in_netns(topo.ns("ctr"), [] { return tcp_to(7000, 45000); }), "tcp", 7000, false});
  cases.push_back(
      {"udp 45001, first", in_netns(topo.ns("ctr"), [] { return udp_to(7001, 45001); }), "udp", 7001, false});
  cases.push_back(
      {"udp 45001, again", in_netns(topo.ns("ctr"), [] { return udp_to(7003, 45001); }), "udp", 7003, true});
  const uint32_t ctr_netns = netns_of(topo.ns("ctr"));

  std::vector<Json> nats;
  for (const auto& c : cases) {
    ASSERT_NE(c.flow.cookie, 0u) << c.what << ": the flow failed in the container";
    auto n = t.wait_for([&](const Json& j) { return j["type"] == "nat" && j["sock"] == c.flow.cookie; });
    ASSERT_TRUE(n) << c.what << ": no nat record for sock " << c.flow.cookie;
    SCOPED_TRACE(c.what);
    EXPECT_EQ((*n)["proto"], c.proto);
    EXPECT_EQ((*n)["laddr"], kInside);
    EXPECT_EQ((*n)["lport"], c.flow.lport);
    EXPECT_EQ((*n)["raddr"], kServer);
    EXPECT_EQ((*n)["rport"], c.rport);
    EXPECT_EQ((*n)["nat_laddr"], kOutside);
    EXPECT_EQ((*n)["nat_raddr"], kServer);
    EXPECT_EQ((*n)["nat_rport"], c.rport);
    uint16_t outside = (*n)["nat_lport"].get<uint16_t>();
    if (c.port_changes) {
      EXPECT_TRUE(outside >= 62000 && outside <= 62009) << outside;
    }
    EXPECT_EQ((*n)["pid"], c.flow.pid);
    EXPECT_EQ((*n)["netns"], ctr_netns);
    nats.push_back(*n);
  }
  EXPECT_EQ(t.stop(), 0);
  const Json stop = t.records().back();
  EXPECT_EQ(stop["type"], "stop");
  EXPECT_EQ(stop["nat_ambiguous"], 0);
  EXPECT_EQ(stop["nat_subscriptions"], 1) << "the events are followed from the first flow found on";
  EXPECT_GE(stop["nat_looks"], 1);
  // every translation written is one of the flows above: one each
  size_t written = 0;
  for (const auto& r : t.records()) written += r["type"] == "nat";
  EXPECT_EQ(written, cases.size());

  // the server's view: the outside tuple, at the time of each flow
  for (size_t i = 0; i < cases.size(); i++) {
    SCOPED_TRACE(cases[i].what);
    const Json& n = nats[i];
    std::string outside = std::string(kOutside) + ":" + std::to_string(n["nat_lport"].get<int>());
    std::string server_end = std::string(kServer) + ":" + std::to_string(cases[i].rport);
    std::string when = n["ts"].get<std::string>();
    for (const std::string& q : {"--flow '" + server_end + " " + outside + "' --at " + when,
                                 std::to_string(n["nat_lport"].get<int>()) + " --laddr " + kOutside + " --proto " +
                                     cases[i].proto + " --raddr " + kServer + " --at " + when}) {
      auto answer = who(q, t.path());
      // the client behind the NAT; the server's listener holds the other
      // end (in a namespace of this host too) and is named as well
      std::vector<Json> holdings;
      for (const auto& a : answer) {
        if (a["type"] != "holding") continue;
        if (a["nat"].is_null())
          EXPECT_EQ(a["pid"], server) << "who " << q << ": " << a.dump();
        else
          holdings.push_back(a);
      }
      ASSERT_EQ(holdings.size(), 1u) << "who " << q << ":\n" << answer.size() << " lines";
      EXPECT_EQ(holdings[0]["pid"], cases[i].flow.pid) << "who " << q;
      EXPECT_EQ(holdings[0]["sock"], cases[i].flow.cookie);
      EXPECT_EQ(holdings[0]["nat"]["lport"], n["nat_lport"]);
      EXPECT_EQ(holdings[0]["nat"]["laddr"], kOutside);
    }
  }
}

TEST_F(Nat, UntranslatedFlowsAreNotListenedToWhereConntrackTracksThem) {
  Topology topo;
  ASSERT_TRUE(topo.error.empty()) << "cannot make the namespaces: " << topo.error;
  Tracer t({"--no-existing"}, topo.ns("host"));
  ASSERT_TRUE(t.wait_started()) << t.stderr_text();
  const Json start = t.records().front();  // a copy: the range below must not outlive it
  for (const auto& u : start["uncaught"])
    if (u.get<std::string>().rfind("NAT", 0) == 0) GTEST_SKIP() << "this kernel: " << u.get<std::string>();
  const std::string mode = start.value("nat_mode", "");
  if (mode.rfind("follow: this kernel", 0) == 0)
    GTEST_SKIP() << "this kernel: the events are followed all the time (" << mode << ")";
  ASSERT_EQ(mode, "watch");
  pid_t server = start_server(topo.ns("srv"));
  Reaped reap_server{server};
  ASSERT_GT(server, 0);

  // the host's NAT rules make conntrack track its loopback connections too
  loopback_connections(topo.ns("host"), 200);
  std::string tracked = run("nsenter --net=" + topo.ns("host") + " cat /proc/sys/net/netfilter/nf_conntrack_count");
  ASSERT_GT(std::atoi(tracked.c_str()), 0) << "conntrack tracks nothing in the host namespace: " << tracked;
  usleep(1'500'000);  // more than a look period
  EXPECT_FALSE(subscribed_to_conntrack(t.pid())) << "nothing is translated, yet conntrack's events are listened to";

  // the first translated flow is found by a look; from then on the events
  // are followed (the check above, the other way round)
  Flow f = in_netns(topo.ns("ctr"), [] { return tcp_to(7000); });
  ASSERT_NE(f.cookie, 0u);
  auto n = t.wait_for([&](const Json& j) { return j["type"] == "nat" && j["sock"] == f.cookie; });
  ASSERT_TRUE(n) << "no nat record for the translated flow";
  EXPECT_EQ((*n)["pid"], f.pid);
  EXPECT_TRUE(subscribed_to_conntrack(t.pid()));

  EXPECT_EQ(t.stop(), 0);
  const Json stop = t.records().back();
  EXPECT_EQ(stop["nat_subscriptions"], 1);
  EXPECT_EQ(stop["records"]["nat"], 1) << "only the translated flow";
  EXPECT_EQ(stop["nat_unjoined"], 0);
}
