// Root integration tests of the kernel-side filters: --proto, --comm and
// --cgroup (and the stop record's counts of what was written).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

TEST_F(TraceOwn, KernelFiltersAndStopRecordCounts) {
  Tracer tr({"--no-existing", "--proto", "udp"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  Listener l;
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(tcp, v4(l.port)), 0);
  uint64_t tc = sock_cookie(tcp);
  int udp = udp_sendto_socket();
  uint64_t uc = sock_cookie(udp);
  close(udp);
  close(tcp);
  ASSERT_TRUE(tr.wait_for(is("release", uc)));
  EXPECT_EQ(tr.stop(), 0);
  auto recs = tr.records();
  for (const auto& r : recs) EXPECT_FALSE(r.contains("sock") && r["sock"] == tc) << r.dump();
  ASSERT_FALSE(recs.empty());
  const Json& stop = recs.back();
  EXPECT_EQ(stop["type"], "stop");
  EXPECT_EQ(stop["reason"], "signal");
  size_t assigns = 0, releases = 0;
  for (const auto& r : recs) {
    assigns += r["type"] == "assign";
    releases += r["type"] == "release";
  }
  EXPECT_EQ(stop["records"]["assign"], assigns);
  EXPECT_EQ(stop["records"]["release"], releases);
  EXPECT_EQ(stop["lost"], 0);
}

TEST_F(TraceOwn, CommFilterKeepsOnlyThatProcess) {
  Tracer tr({"--no-existing", "--comm", "pg_fire"});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int mine = udp_sendto_socket();
  uint64_t mc = sock_cookie(mine);
  close(mine);
  FireResult f = run_pg_fire("udp-send", "9");
  ASSERT_NE(f.cookie, 0u);
  uint64_t cookie = f.cookie;
  ASSERT_TRUE(tr.wait_for(is("release", cookie)));
  EXPECT_TRUE(tr.all(is("assign", mc)).empty());
  EXPECT_TRUE(tr.all(is("release", mc)).empty()) << "the release of a filtered assign is filtered too";
}

TEST_F(TraceOwn, CgroupFilterKeepsOnlyTasksBelowIt) {
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  std::string cg = root + "/portghost-it-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << strerror(errno);
  std::string sub = cg + "/inner";  // tasks below the filtered cgroup count too
  ASSERT_EQ(mkdir(sub.c_str(), 0755), 0) << strerror(errno);
  {
    Tracer tr({"--no-existing", "--cgroup", cg});
    ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
    uint64_t child_cookie = udp_send_from_cgroup(sub);
    ASSERT_NE(child_cookie, 0u);
    int mine = udp_sendto_socket();
    uint64_t my_cookie = sock_cookie(mine);
    close(mine);
    EXPECT_TRUE(tr.wait_for(is("assign", child_cookie)));
    EXPECT_TRUE(tr.wait_for(is("release", child_cookie)));
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(tr.all(is("assign", my_cookie)).empty());
  }
  rmdir(sub.c_str());
  rmdir(cg.c_str());
}
