#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "test_util.hpp"
#include "trace/container.hpp"

using namespace portghost;
using pgtest::TempDir;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";  // 64 hex
const std::string kId2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

TEST(ContainerFromCgroup, DockerSystemdDriver) {
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + kId + ".scope"), "docker://" + kId);
}

TEST(ContainerFromCgroup, DockerCgroupfsDriver) {
  EXPECT_EQ(container_from_cgroup_path("/docker/" + kId), "docker://" + kId);
  EXPECT_EQ(container_from_cgroup_path("docker/" + kId), "docker://" + kId) << "without the leading slash";
}

TEST(ContainerFromCgroup, Containerd) {
  EXPECT_EQ(container_from_cgroup_path("/kubepods.slice/kubepods-besteffort.slice/"
                                       "kubepods-besteffort-pod1234abcd_5678.slice/cri-containerd-" +
                                       kId + ".scope"),
            "containerd://" + kId);
  EXPECT_EQ(container_from_cgroup_path("/system.slice/cri-containerd-" + kId + ".scope"), "containerd://" + kId);
}

TEST(ContainerFromCgroup, CriO) {
  EXPECT_EQ(container_from_cgroup_path("/kubepods.slice/kubepods-burstable.slice/"
                                       "kubepods-burstable-podabc.slice/crio-" +
                                       kId + ".scope"),
            "cri-o://" + kId);
}

TEST(ContainerFromCgroup, Podman) {
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/libpod-" + kId + ".scope"), "podman://" + kId);
  // podman puts the payload one level further down
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/libpod-" + kId + ".scope/container"), "podman://" + kId);
  EXPECT_EQ(
      container_from_cgroup_path("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope"),
      "user-1000/podman://" + kId)
      << "rootless: the user's own";
}

TEST(ContainerFromCgroup, ANameInAUsersDelegatedSubtreeSaysWhoseItIs) {
  // a user may create any directory below user@UID.service: such a name can
  // never read as the system container it imitates
  EXPECT_EQ(
      container_from_cgroup_path("/user.slice/user-1000.slice/user@1000.service/app.slice/docker-" + kId + ".scope"),
      "user-1000/docker://" + kId);
  EXPECT_EQ(container_from_cgroup_path("/user.slice/user-7.slice/user@7.service/" + kId), "user-7/container://" + kId);
  // not a delegation: a service merely named like one
  EXPECT_EQ(container_from_cgroup_path("/system.slice/user@x.service/docker-" + kId + ".scope"), "docker://" + kId);
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + kId + ".scope"), "docker://" + kId);
}

TEST(ContainerFromCgroup, Nspawn) {
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/systemd-nspawn@web.service"), "nspawn://web");
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/systemd-nspawn@web.service/payload"), "nspawn://web");
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/machine-web.scope"), "nspawn://web");
}

TEST(ContainerFromCgroup, KubernetesCgroupfsIdIsAGenericContainer) {
  EXPECT_EQ(container_from_cgroup_path("/kubepods/besteffort/pod1234/" + kId), "container://" + kId);
}

TEST(ContainerFromCgroup, TheInnermostRuntimeComponentWins) {
  // docker-in-docker: the inner container's id is the one that names the task
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + kId + ".scope/docker/" + kId2), "docker://" + kId2);
  // a generic id below a named runtime keeps the runtime's name
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + kId + ".scope/" + kId2), "docker://" + kId);
}

TEST(ContainerFromCgroup, PlainHostCgroupsAreNotContainers) {
  EXPECT_EQ(container_from_cgroup_path("/user.slice"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/user.slice/user-1000.slice/session-2.scope"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/system.slice/sshd.service"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker.service"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/machine.slice"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path(""), std::nullopt);
}

TEST(ContainerFromCgroup, LookalikesAreRejected) {
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-.scope"), std::nullopt) << "empty id";
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-abc.scope"), std::nullopt) << "too short";
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + std::string(64, 'g') + ".scope"), std::nullopt)
      << "not hex";
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + std::string(64, 'A') + ".scope"), std::nullopt)
      << "upper case is not what runtimes write";
  EXPECT_EQ(container_from_cgroup_path("/system.slice/docker-" + kId + ".scope.bak"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/system.slice/xdocker-" + kId + ".scope"), std::nullopt);
  EXPECT_EQ(container_from_cgroup_path("/docker/" + kId.substr(0, 63)), std::nullopt) << "63 hex: no id";
  EXPECT_EQ(container_from_cgroup_path("/machine.slice/systemd-nspawn@.service"), std::nullopt);
}

TEST(FindCgroup2Mount, FromAMountsFile) {
  TempDir d;
  pgtest::write_file(d / "mounts",
                     "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
                     "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
                     "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n"
                     "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
                     "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
                     "cgroup2 /other cgroup2 rw 0 0\n");
  EXPECT_EQ(find_cgroup2_mount(d / "mounts"), "/sys/fs/cgroup/unified") << "the first cgroup2 mount";
}

TEST(FindCgroup2Mount, NoneOrNoFile) {
  TempDir d;
  pgtest::write_file(d / "v1", "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n");
  EXPECT_EQ(find_cgroup2_mount(d / "v1"), std::nullopt);
  pgtest::write_file(d / "empty", "");
  EXPECT_EQ(find_cgroup2_mount(d / "empty"), std::nullopt);
  EXPECT_EQ(find_cgroup2_mount(d / "missing"), std::nullopt);
}

TEST(CgroupResolver, IdOfDirIsTheInodeAndDepth) {
  TempDir root;
  std::filesystem::create_directories(root / "system.slice/nginx.service");
  auto id = CgroupResolver::id_of_dir(root.path(), root / "system.slice/nginx.service");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->first, inode_of(root / "system.slice/nginx.service"));
  EXPECT_EQ(id->second, 2u);
  auto lvl1 = CgroupResolver::id_of_dir(root.path(), root / "system.slice/");
  ASSERT_TRUE(lvl1.has_value());
  EXPECT_EQ(lvl1->second, 1u);
  auto self = CgroupResolver::id_of_dir(root.path(), root.path());
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->second, 0u);
  EXPECT_FALSE(CgroupResolver::id_of_dir(root.path(), root / "missing").has_value());
  EXPECT_FALSE(CgroupResolver::id_of_dir(root / "system.slice", root.path()).has_value()) << "outside the root";
  pgtest::write_file(root / "file", "");
  EXPECT_FALSE(CgroupResolver::id_of_dir(root.path(), root / "file").has_value()) << "not a directory";
}

TEST(CgroupResolver, PathAndContainerOfAnId) {
  TempDir root;
  std::string scope = "system.slice/docker-" + kId + ".scope";
  std::filesystem::create_directories(root / scope);
  std::filesystem::create_directories(root / "user.slice/user-1000.slice");
  CgroupResolver r(root.path());
  uint64_t id = inode_of(root / scope);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(r.path_of(id), "/" + scope);
  EXPECT_EQ(r.container_of(id), "docker://" + kId);
  uint64_t user = inode_of(root / "user.slice/user-1000.slice");
  EXPECT_EQ(r.path_of(user), "/user.slice/user-1000.slice");
  EXPECT_EQ(r.container_of(user), std::nullopt);
  EXPECT_EQ(r.path_of(inode_of(root.path())), "/");
  EXPECT_EQ(r.path_of(0), std::nullopt);
}

// Paths remembered are bounded in number and bytes: a user making cgroups
// with long names in a delegated subtree cannot grow the cache, and what
// the bounds forget is counted.
TEST(CgroupResolver, ThePathsHeldAreBoundedAndEvictionsCounted) {
  TempDir root;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 50; i++) {
    std::string dir = root / ("u-" + std::to_string(i) + "-" + std::string(200, 'x'));
    std::filesystem::create_directories(dir);
    ids.push_back(inode_of(dir));
  }
  CgroupResolver by_count(root.path(), 10);
  EXPECT_TRUE(by_count.path_of(ids.back()).has_value() || by_count.paths_held() == 10);
  EXPECT_LE(by_count.paths_held(), 10u);
  EXPECT_EQ(by_count.paths_held() + by_count.evicted(), 51u) << "the root and 50 cgroups: held or counted";
  CgroupResolver by_bytes(root.path(), 1 << 16, 2000);
  by_bytes.path_of(ids.front());
  EXPECT_LE(by_bytes.path_bytes(), 2000u);
  EXPECT_GT(by_bytes.evicted(), 0u);
  EXPECT_LE(by_bytes.paths_held(), 10u) << "each path is over 200 bytes";
}

TEST(CgroupResolver, NoRootResolvesNothing) {
  CgroupResolver r("");
  EXPECT_EQ(r.path_of(1), std::nullopt);
  EXPECT_EQ(r.container_of(1), std::nullopt);
}

TEST(FindCgroup2Mount, OctalEscapesAreDecoded) {
  char tmpl[] = "/tmp/portghost-unit-mounts-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string text = "cgroup2 /sys/fs/my\\040cgroup cgroup2 rw 0 0\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  EXPECT_EQ(portghost::find_cgroup2_mount(tmpl), std::optional<std::string>("/sys/fs/my cgroup"));
  unlink(tmpl);
}
