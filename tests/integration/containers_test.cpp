// Root integration tests of container names, read from the cgroup path, and
// of a container name in a cgroup a user could make.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "harness.hpp"

using namespace pgtest;

TEST_F(Trace, ContainerIsNamedFromTheCgroupPath) {
  std::string root = cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  std::string parent = root + "/portghost-ct-" + std::to_string(getpid());
  std::string cg = parent + "/docker-" + id + ".scope";
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0) << strerror(errno);
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << strerror(errno);
  uint64_t c = udp_send_from_cgroup(cg);
  ASSERT_NE(c, 0u);
  Json a = assign_of(c);
  EXPECT_EQ(a["container"], "docker://" + id);
  struct stat st {};
  ASSERT_EQ(stat(cg.c_str(), &st), 0);
  EXPECT_EQ(a["cgroup_id"], st.st_ino);
  rmdir(cg.c_str());
  rmdir(parent.c_str());
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
  for (const auto& d : {base, user, forged, owned})
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d << ": " << strerror(errno);
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
