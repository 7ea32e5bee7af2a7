// The kernel memory the BPF object's maps hold: what the start record states
// beside the ring's size, so that an operator sees what the tracer costs
// outside its own process.
#pragma once

#include <cstdint>

struct bpf_object;

namespace portghost {

// The sum over the object's created maps of the kernel's own account of
// each (the `memlock` of its fdinfo): the memory in use since Linux 6.4; an
// estimate from the keys' and values' sizes in 5.11-6.3, where a ring counts
// as its size; the charged size before. Socket storage is allocated per
// socket and charged to it, not to its map: it is not in this sum (README,
// "What it costs"). A map whose account cannot be read counts 0, and is
// logged once.
uint64_t map_memory_bytes(bpf_object* obj);

}  // namespace portghost
