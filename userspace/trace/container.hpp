// cgroup v2 id -> cgroup path -> container, when the path names one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace portghost {

// "docker://<id>", "containerd://<id>", "cri-o://<id>", "podman://<id>",
// "nspawn://<machine>" from a cgroup path, or nullopt. Below a user's
// delegated user@UID.service the name says whose it is: "user-UID/podman://<id>"
// (rootless containers live there, and so could a forged system name).
std::optional<std::string> container_from_cgroup_path(std::string_view path);

// Finds the cgroup v2 mount in /proc/mounts (nullopt if none).
std::optional<std::string> find_cgroup2_mount(const std::string& mounts_file = "/proc/mounts");

class CgroupResolver {
 public:
  // max_paths, max_path_bytes: the paths remembered (a user can make and
  // remove cgroups with long names in a delegated subtree, taking a port in
  // each); past either, paths are forgotten, and looked up again if needed
  explicit CgroupResolver(std::string root, size_t max_paths = kMaxPaths, size_t max_path_bytes = kMaxPathBytes)
      : root_(std::move(root)), max_paths_(max_paths), max_path_bytes_(max_path_bytes) {}
  static constexpr size_t kMaxPaths = 65536;
  static constexpr size_t kMaxPathBytes = size_t{16} << 20;
  // Path below the cgroup root ("/system.slice/x.service"), or nullopt.
  std::optional<std::string> path_of(uint64_t id);
  std::optional<std::string> container_of(uint64_t id);
  // The same, remembered per id (the hot path: no allocation once known).
  // Valid until the next call.
  const std::string* container_ref(uint64_t id);
  // cgroup v2 id of a live process, from /proc/PID/cgroup.
  std::optional<uint64_t> id_of_pid(uint32_t pid, const std::string& proc = "/proc") const;
  // id of a cgroup directory (its inode), with its depth below the root.
  static std::optional<std::pair<uint64_t, uint32_t>> id_of_dir(const std::string& root, const std::string& dir);
  // paths held, their bytes, and entries forgotten by the bounds so far
  // (paths and container names)
  size_t paths_held() const { return paths_.size(); }
  size_t path_bytes() const { return path_bytes_; }
  uint64_t evicted() const { return evicted_; }

 private:
  void rescan();
  void remember(uint64_t id, std::string path);
  // The container of a path below the root, "user-UID/..." when a directory
  // on the way is owned by a user.
  std::optional<std::string> container_at(const std::string& rel) const;
  std::optional<std::string> path_by_handle(uint64_t id) const;
  std::string root_;
  size_t max_paths_, max_path_bytes_;
  static constexpr size_t kMaxGone = 65536;
  std::unordered_map<uint64_t, std::string> paths_;
  size_t path_bytes_ = 0;
  uint64_t evicted_ = 0;
  std::unordered_set<uint64_t> gone_;
  static constexpr size_t kMaxContainers = 65536;
  std::unordered_map<uint64_t, std::optional<std::string>> containers_;  // ids whose path was found
  uint64_t last_scan_ns_ = 0;
};

}  // namespace portghost
