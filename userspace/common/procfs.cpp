#include "common/procfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include "common/unique_fd.hpp"

namespace portghost {

namespace {

template <class F>
void for_each_pid(const std::string& proc, F&& f) {
  DIR* d = opendir(proc.c_str());
  if (!d) return;
  while (dirent* de = readdir(d)) {
    char* end = nullptr;
    unsigned long pid = std::strtoul(de->d_name, &end, 10);
    if (end && !*end && pid > 0) f(static_cast<uint32_t>(pid));
  }
  closedir(d);
}

std::optional<uint64_t> bracket_number(const char* link, const char* prefix) {
  size_t n = std::strlen(prefix);
  if (std::strncmp(link, prefix, n) != 0) return std::nullopt;
  char* end = nullptr;
  uint64_t v = std::strtoull(link + n, &end, 10);
  if (!end || *end != ']') return std::nullopt;
  return v;
}

}  // namespace

std::unordered_map<uint32_t, std::string> list_netns(const std::string& proc) {
  std::unordered_map<uint32_t, std::string> out;
  for_each_pid(proc, [&](uint32_t pid) {
    std::string path = proc + "/" + std::to_string(pid) + "/ns/net";
    char buf[64];
    ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return;
    buf[n] = 0;
    if (auto ino = bracket_number(buf, "net:[")) out.emplace(static_cast<uint32_t>(*ino), path);
  });
  if (DIR* d = opendir("/run/netns")) {  // named namespaces may have no process
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      std::string path = std::string("/run/netns/") + de->d_name;
      struct stat st {};
      if (stat(path.c_str(), &st) == 0) out.emplace(static_cast<uint32_t>(st.st_ino), path);
    }
    closedir(d);
  }
  return out;
}

std::unordered_map<uint64_t, uint32_t> socket_owners(const std::string& proc) {
  std::unordered_map<uint64_t, uint32_t> out;
  for_each_pid(proc, [&](uint32_t pid) {
    std::string dir = proc + "/" + std::to_string(pid) + "/fd";
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      char buf[64];
      ssize_t n = readlinkat(dirfd(d), de->d_name, buf, sizeof buf - 1);
      if (n <= 0) continue;
      buf[n] = 0;
      if (auto ino = bracket_number(buf, "socket:[")) out.emplace(*ino, pid);
    }
    closedir(d);
  });
  return out;
}

std::pair<uint16_t, uint16_t> local_port_range() {
  std::pair<uint16_t, uint16_t> r{0, 0};
  if (FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    unsigned lo = 0, hi = 0;
    if (fscanf(f, "%u %u", &lo, &hi) == 2 && lo <= hi && hi <= 65535)
      r = {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
    fclose(f);
  }
  return r;
}

std::pair<uint16_t, uint16_t> port_range_of_netns(uint32_t netns, const std::string& proc) {
  struct stat self {};
  if (stat((proc + "/self/ns/net").c_str(), &self) == 0 && static_cast<uint32_t>(self.st_ino) == netns)
    return local_port_range();
  auto all = list_netns(proc);
  auto it = all.find(netns);
  if (it == all.end()) return {0, 0};
  UniqueFd ns(open(it->second.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return {0, 0};
  std::pair<uint16_t, uint16_t> r{0, 0};
  // /proc/sys/net shows the reading thread's namespace
  std::thread t([&] {
    if (setns(ns.get(), CLONE_NEWNET) == 0) r = local_port_range();
  });
  t.join();
  return r;
}

std::string first_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace portghost
