#include "kernel/counters.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <vector>

#include "common/errors.hpp"
#include "portghost.h"

namespace portghost {

Counters read_counters(int fd) {
  int ncpu = libbpf_num_possible_cpus();
  size_t n = static_cast<size_t>(ncpu > 0 ? ncpu : 1);
  std::vector<uint64_t> vals(n * PG_CNT_MAX);
  uint64_t sum[PG_CNT_MAX] = {};
  // one call for all of them (the trace loop asks every few milliseconds);
  // one call a counter where the kernel has no batch reads of this map
  uint32_t keys[PG_CNT_MAX], out = 0, count = PG_CNT_MAX;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int err = bpf_map_lookup_batch(fd, nullptr, &out, keys, vals.data(), &count, &opts);
  if ((err != 0 && errno != ENOENT) || count != PG_CNT_MAX) {
    for (uint32_t k = 0; k < PG_CNT_MAX; k++) {
      // never a silent zero: a wrong count would pass for "nothing lost"
      if (bpf_map_lookup_elem(fd, &k, vals.data() + k * n) != 0)
        throw FatalError(errno_text("reading the loss counters", errno));
      keys[k] = k;
    }
  }
  for (uint32_t i = 0; i < PG_CNT_MAX; i++)
    if (keys[i] < PG_CNT_MAX)
      for (size_t c = 0; c < n; c++) sum[keys[i]] += vals[i * n + c];
  Counters c;
  c.assign = sum[PG_CNT_ASSIGN];
  c.release = sum[PG_CNT_RELEASE];
  c.proc = sum[PG_CNT_PROC];
  c.drop_ringbuf = sum[PG_CNT_DROP_RINGBUF];
  c.drop_storage = sum[PG_CNT_DROP_STORAGE];
  c.drop_pending = sum[PG_CNT_DROP_PENDING];
  c.unseen_connect = sum[PG_CNT_UNSEEN_CONNECT];
  c.filtered = sum[PG_CNT_FILTERED];
  c.drop_proc = sum[PG_CNT_DROP_PROC];
  c.slots_full = sum[PG_CNT_SLOTS_FULL];
  return c;
}

}  // namespace portghost
