#include "kernel/map_memory.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"

namespace portghost {

namespace {

// The `memlock:` line of a descriptor's fdinfo; nullopt-like -1 when absent.
int64_t fdinfo_memlock(int fd) {
  std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return -1;
  char line[256];
  int64_t bytes = -1;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long v = 0;
    if (std::sscanf(line, "memlock: %llu", &v) == 1) {
      bytes = static_cast<int64_t>(v);
      break;
    }
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
    int64_t bytes = fdinfo_memlock(fd);
    if (bytes < 0) {
      if (!warned)
        spdlog::warn("{}", errno_text(std::string("reading the memory of map ") + bpf_map__name(map), errno));
      warned = true;
      continue;
    }
    // Linux 5.11-6.3 count a map as its keys and values, which a ring
    // has none of: a ring holds its size at least
    if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) bytes = std::max<int64_t>(bytes, bpf_map__max_entries(map));
    total += static_cast<uint64_t>(bytes);
  }
  return total;
}

}  // namespace portghost
