// Reading what the kernel side holds: whatever a BPF iterator writes, and
// the socket slots (freeing those of sockets gone unseen, then listing the
// sockets that hold a recorded port).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

struct bpf_link;

namespace portghost {

// Everything the iterator writes; false when it could not be read whole.
bool read_iterator(bpf_link* link, std::vector<uint8_t>& out);

struct SlotWalk {
  std::vector<uint64_t> live;  // cookies of the sockets whose recorded port is held
  uint64_t freed = 0;          // slots of sockets gone without their end seen
};

// Runs the sweep program (sweep_fd; it returns the slots it freed), then
// reads every slot of the sk_slots map (map_fd); nullopt when either fails.
std::optional<SlotWalk> walk_slots(int sweep_fd, int map_fd);

}  // namespace portghost
