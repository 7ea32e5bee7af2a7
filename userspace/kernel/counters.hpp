// The kernel side's counters (the per-CPU map counters): records made, and
// what could not be delivered.
#pragma once

#include <cstdint>

namespace portghost {

struct Counters {
  uint64_t assign = 0, release = 0, proc = 0;
  uint64_t drop_ringbuf = 0, drop_storage = 0, drop_pending = 0, filtered = 0, drop_proc = 0;
  // a udp connect()'s port given up before any hook could read it (socket
  // and cgroup worlds): a port held that no record names
  uint64_t unseen_connect = 0;
  // sockets whose state went to socket storage: the slots were full (no loss)
  uint64_t slots_full = 0;
  uint64_t lost() const { return drop_ringbuf + drop_storage + drop_pending + drop_proc + unseen_connect; }
};

// Sums the per-CPU counters of the map (fd); throws FatalError where they
// cannot be read.
Counters read_counters(int fd);

}  // namespace portghost
