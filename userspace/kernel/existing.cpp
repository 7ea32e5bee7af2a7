#include "kernel/existing.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/procfs.hpp"
#include "common/unique_fd.hpp"

namespace portghost {

std::vector<SockEvent> decode_existing(const std::vector<uint8_t>& raw) {
  std::vector<SockEvent> out;
  for (size_t off = 0; off + sizeof(pg_sock_event) <= raw.size(); off += sizeof(pg_sock_event)) {
    auto ev = decode(raw.data() + off, sizeof(pg_sock_event));
    if (ev && std::holds_alternative<SockEvent>(*ev)) out.push_back(std::get<SockEvent>(*ev));
  }
  return out;
}

std::vector<SockEvent> collect_in_all_netns(const std::function<std::vector<uint8_t>()>& collect,
                                            const std::string& proc) {
  std::vector<uint8_t> raw = collect();  // our own namespace
  struct stat self {};
  uint32_t self_ino = stat((proc + "/self/ns/net").c_str(), &self) == 0 ? static_cast<uint32_t>(self.st_ino) : 0;
  for (const auto& [ino, path] : list_netns(proc)) {
    if (ino == self_ino) continue;
    UniqueFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) continue;  // the namespace went away
    std::vector<uint8_t> part;
    auto ns_ino = ino;  // a structured binding is not captured by every compiler
    // setns() changes only the calling thread: a short-lived thread joins the
    // namespace, runs the iterators there, and exits.
    std::thread t([&] {
      if (setns(ns.get(), CLONE_NEWNET) != 0) {
        spdlog::warn("cannot enter network namespace {}: {}", ns_ino, std::strerror(errno));
        return;
      }
      part = collect();
    });
    t.join();
    raw.insert(raw.end(), part.begin(), part.end());
  }
  return decode_existing(raw);
}

}  // namespace portghost
