// Sockets that already hold a port when the trace starts: read by the BPF
// socket iterators in every network namespace, owners found by a /proc fd scan.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/procfs.hpp"
#include "kernel/events.hpp"

namespace portghost {

// Decodes a buffer of iterator records (whole pg_sock_event records).
std::vector<SockEvent> decode_existing(const std::vector<uint8_t>& raw);

// Runs `collect` once inside each network namespace (in a helper thread that
// joins it) and returns all records. `collect` returns raw iterator output.
std::vector<SockEvent> collect_in_all_netns(const std::function<std::vector<uint8_t>()>& collect,
                                            const std::string& proc = "/proc");

// Has the kernel give every tcp and udp socket of the calling thread's
// network namespace its cookie, through a sock_diag dump whose answers are
// dropped: where the iterators cannot make cookies themselves (Linux < 5.12),
// a socket must have one before it is listed, or its release could not be
// matched to it. False if the dump could not be made.
bool generate_socket_cookies();

}  // namespace portghost
