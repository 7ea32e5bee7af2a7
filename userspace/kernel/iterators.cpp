#include "kernel/iterators.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.hpp"
#include "common/unique_fd.hpp"
#include "kernel/events.hpp"

namespace portghost {

bool read_iterator(bpf_link* link, std::vector<uint8_t>& out) {
  UniqueFd fd(bpf_iter_create(bpf_link__fd(link)));
  if (!fd) {
    spdlog::warn("{}", errno_text("socket iterator", errno));
    return false;
  }
  uint8_t buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::warn("{}", errno_text("reading socket iterator", errno));
      return false;
    }
    if (n == 0) return true;
    out.insert(out.end(), buf, buf + n);
  }
}

std::optional<SlotWalk> walk_slots(int sweep_fd, int map_fd) {
  SlotWalk w;
  LIBBPF_OPTS(bpf_test_run_opts, run);
  if (bpf_prog_test_run_opts(sweep_fd, &run) != 0) {
    spdlog::warn("{}", errno_text("socket slots sweep", errno));
    return std::nullopt;
  }
  w.freed = run.retval;
  // A batch is read under its buckets' locks, and a key never moves to
  // another bucket: every slot that exists for the whole read is listed.
  constexpr uint32_t kBatchSlots = 1024;
  std::vector<uint64_t> keys(kBatchSlots);
  std::vector<pg_sk_state> values(kBatchSlots);
  uint64_t in_batch = 0, out_batch = 0;
  for (bool first = true;; first = false) {
    uint32_t count = kBatchSlots;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(map_fd, first ? nullptr : &in_batch, &out_batch, keys.data(), values.data(), &count,
                                   &opts);
    int e = errno;
    for (uint32_t i = 0; i < count; i++)
      if (!(values[i].flags & (PG_SK_RELEASED | PG_SK_FILTERED))) w.live.push_back(keys[i]);
    if (err == 0) {
      in_batch = out_batch;
      continue;
    }
    if (e == ENOENT) return w;  // the last slots were in this batch
    spdlog::warn("{}", errno_text("reading the socket slots", e));
    return std::nullopt;
  }
}

}  // namespace portghost
