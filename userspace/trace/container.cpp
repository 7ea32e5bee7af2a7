#include "trace/container.hpp"

#include "common/unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace portghost {

namespace {

bool is_hex_id(std::string_view s) {
  if (s.size() < 12) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// "<prefix><id><suffix>" as a whole path component
std::optional<std::string_view> component_id(std::string_view comp, std::string_view prefix, std::string_view suffix) {
  if (comp.size() <= prefix.size() + suffix.size()) return std::nullopt;
  if (comp.substr(0, prefix.size()) != prefix) return std::nullopt;
  if (comp.substr(comp.size() - suffix.size()) != suffix) return std::nullopt;
  return comp.substr(prefix.size(), comp.size() - prefix.size() - suffix.size());
}

bool is_decimal(std::string_view s) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string user_prefix(std::string_view uid) { return "user-" + std::string(uid) + "/"; }

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

std::optional<std::string> container_from_cgroup_path(std::string_view path) {
  struct Pattern {
    std::string_view prefix, suffix, runtime;
    bool hex;
  };
  static const Pattern patterns[] = {
      {"docker-", ".scope", "docker", true},
      {"cri-containerd-", ".scope", "containerd", true},
      {"crio-", ".scope", "cri-o", true},
      {"libpod-", ".scope", "podman", true},
      {"systemd-nspawn@", ".service", "nspawn", false},
      {"machine-", ".scope", "nspawn", false},
  };
  std::optional<std::string> found;
  std::string_view parent, user;  // user: uid of the user@UID.service the path is in
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view comp = path.substr(i, j - i);
    // systemd delegates user@UID.service to that user: whatever is below
    // it, the user made (rootless Docker and Podman live there)
    if (auto uid = component_id(comp, "user@", ".service"); uid && user.empty() && is_decimal(*uid)) user = *uid;
    for (const auto& p : patterns) {
      auto id = component_id(comp, p.prefix, p.suffix);
      if (id && (!p.hex || is_hex_id(*id))) found = std::string(p.runtime) + "://" + std::string(*id);
    }
    // cgroupfs drivers: /docker/<id>, /kubepods/.../<id>, /libpod_parent/libpod-<id>
    if (is_hex_id(comp) && comp.size() == 64) {
      if (parent == "docker")
        found = "docker://" + std::string(comp);
      else if (!found)
        found = "container://" + std::string(comp);
    }
    parent = comp;
    i = j + 1;
  }
  if (found && !user.empty()) return user_prefix(user) + *found;
  return found;
}

namespace {
// /proc/mounts writes space, tab, newline and backslash as \ooo octal
std::string unescape_mount_path(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

std::optional<std::string> find_cgroup2_mount(const std::string& mounts_file) {
  std::ifstream f(mounts_file);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    std::string dev, dir, type;
    ss >> dev >> dir >> type;
    if (type == "cgroup2") return unescape_mount_path(dir);
  }
  return std::nullopt;
}

std::optional<std::pair<uint64_t, uint32_t>> CgroupResolver::id_of_dir(const std::string& root,
                                                                       const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  auto rel =
      std::filesystem::path(dir).lexically_normal().lexically_relative(std::filesystem::path(root).lexically_normal());
  if (rel.empty() || *rel.begin() == "..") return std::nullopt;
  uint32_t level = 0;
  for (const auto& c : rel)
    if (c != "." && !c.empty()) level++;
  return std::make_pair(static_cast<uint64_t>(st.st_ino), level);
}

// Keeps a path within the bounds: any other path is forgotten to make room.
void CgroupResolver::remember(uint64_t id, std::string path) {
  if (auto old = paths_.find(id); old != paths_.end()) {
    path_bytes_ -= old->second.size();
    paths_.erase(old);
  }
  while (!paths_.empty() && (paths_.size() >= max_paths_ || path_bytes_ + path.size() > max_path_bytes_)) {
    auto victim = paths_.begin();
    path_bytes_ -= victim->second.size();
    paths_.erase(victim);
    evicted_++;
  }
  path_bytes_ += path.size();
  paths_.emplace(id, std::move(path));
}

void CgroupResolver::rescan() {
  paths_.clear();  // also forgets cgroups removed since the last walk
  path_bytes_ = 0;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(root_, std::filesystem::directory_options::skip_permission_denied,
                                                   ec),
      end;
  struct stat st {};
  if (stat(root_.c_str(), &st) == 0) remember(st.st_ino, "/");
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    if (stat(it->path().c_str(), &st) != 0) continue;
    std::string rel = "/";
    rel += it->path().lexically_relative(root_).string();
    remember(st.st_ino, std::move(rel));
  }
}

// A cgroup v2 id is its kernfs node id, which open_by_handle_at() accepts as
// a file handle (FILEID_KERNFS): one lookup names a cgroup created a moment
// ago, with no walk of the tree.
std::optional<std::string> CgroupResolver::path_by_handle(uint64_t id) const {
  constexpr int kFileidKernfs = 0xfe;
  UniqueFd root(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return std::nullopt;
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + sizeof id];
  auto* fh = reinterpret_cast<file_handle*>(buf);
  fh->handle_bytes = sizeof id;
  fh->handle_type = kFileidKernfs;
  std::memcpy(fh->f_handle, &id, sizeof id);
  UniqueFd fd(open_by_handle_at(root.get(), fh, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char path[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd.get());
  ssize_t n = readlink(link.c_str(), path, sizeof path);
  if (n <= 0) return std::nullopt;
  std::string abs(path, static_cast<size_t>(n));
  if (abs.rfind(root_, 0) != 0) return std::nullopt;
  std::string rel = abs.substr(root_.size());
  return rel.empty() ? "/" : rel;
}

std::optional<std::string> CgroupResolver::path_of(uint64_t id) {
  if (root_.empty() || id == 0) return std::nullopt;
  auto it = paths_.find(id);
  if (it != paths_.end()) return it->second;
  if (gone_.count(id)) return std::nullopt;
  if (auto p = path_by_handle(id)) {
    remember(id, *p);
    return p;
  }
  uint64_t now = mono_ns();
  if (now - last_scan_ns_ < 1'000'000'000ULL && last_scan_ns_ != 0) return std::nullopt;  // at most 1/s
  last_scan_ns_ = now;
  uint64_t evicted_before = evicted_;
  rescan();
  it = paths_.find(id);
  if (it == paths_.end()) {
    // removed before we looked: ids are not reused, so never look again
    // (unless the walk had to forget paths: it may have been one of them)
    if (evicted_ != evicted_before) return std::nullopt;
    if (gone_.size() >= kMaxGone) gone_.clear();
    gone_.insert(id);
    return std::nullopt;
  }
  return it->second;
}

std::optional<uint64_t> CgroupResolver::id_of_pid(uint32_t pid, const std::string& proc) const {
  if (root_.empty()) return std::nullopt;
  std::ifstream f(proc + "/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("0::", 0) != 0) continue;  // the v2 hierarchy's line
    auto id = id_of_dir(root_, root_ + line.substr(3));
    if (id) return id->first;
  }
  return std::nullopt;
}

// A directory on the way that a user owns (another owner than the root's)
// is theirs to fill with any name (delegation, or a chown): a container
// named below it is that user's.
std::optional<std::string> CgroupResolver::container_at(const std::string& rel) const {
  auto found = container_from_cgroup_path(rel);
  if (!found || found->rfind("user-", 0) == 0) return found;
  struct stat top {};
  if (stat(root_.c_str(), &top) != 0) return found;
  std::string dir = root_;
  size_t i = 1;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    if (j > i) {
      dir += "/" + rel.substr(i, j - i);
      struct stat st {};
      if (stat(dir.c_str(), &st) == 0 && st.st_uid != top.st_uid)
        return user_prefix(std::to_string(st.st_uid)) + *found;
    }
    i = j + 1;
  }
  return found;
}

std::optional<std::string> CgroupResolver::container_of(uint64_t id) {
  auto p = path_of(id);
  if (!p) return std::nullopt;
  return container_at(*p);
}

const std::string* CgroupResolver::container_ref(uint64_t id) {
  auto it = containers_.find(id);
  if (it == containers_.end()) {
    auto p = path_of(id);
    if (!p) return nullptr;  // not found (yet): not remembered
    if (containers_.size() >= kMaxContainers) {
      evicted_ += containers_.size();
      containers_.clear();
    }
    it = containers_.emplace(id, container_at(*p)).first;
  }
  return it->second ? &*it->second : nullptr;
}

}  // namespace portghost
