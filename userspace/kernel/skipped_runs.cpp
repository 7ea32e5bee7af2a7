#include "kernel/skipped_runs.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"

namespace portghost {

uint64_t skipped_runs(bpf_object* obj, const char* name) {
  static bool warned = false;
  uint64_t n = 0;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj) {
    if (name && std::strcmp(bpf_program__name(prog), name) != 0) continue;
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;  // not loaded on this kernel
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      if (!warned) spdlog::warn("{}", errno_text("reading a program's skipped runs", errno));
      warned = true;
      continue;
    }
    n += info.recursion_misses;
  }
  return n;
}

}  // namespace portghost
