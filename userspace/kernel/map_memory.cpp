#include "kernel/map_memory.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace portghost {

namespace {

// The `memlock:` line of a descriptor's fdinfo, if it has one.
std::optional<uint64_t> fdinfo_memlock(int fd) {
  std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return std::nullopt;
  char line[256];
  std::optional<uint64_t> bytes;
  while (!bytes && std::fgets(line, sizeof line, f)) {
    unsigned long long v = 0;
    if (std::sscanf(line, "memlock: %llu", &v) == 1) bytes = v;
  }
  std::fclose(f);
  return bytes;
}

}  // namespace

uint64_t map_memory_bytes(bpf_object* obj) {
  static bool warned = false;
  uint64_t total = 0;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    int fd = bpf_map__fd(map);
    if (fd < 0) continue;  // not created on this kernel
    std::optional<uint64_t> bytes = fdinfo_memlock(fd);
    if (!bytes) {
      if (!warned) spdlog::warn("the kernel memory of map {} cannot be read from its fdinfo", bpf_map__name(map));
      warned = true;
      continue;
    }
    // Linux 5.11-6.3 count a map as its keys and values, which a ring
    // has none of: a ring holds its size at least
    if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) *bytes = std::max<uint64_t>(*bytes, bpf_map__max_entries(map));
    total += *bytes;
  }
  return total;
}

}  // namespace portghost
