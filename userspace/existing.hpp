// Sockets that already hold a port when the trace starts: read by the BPF
// socket iterators in every network namespace, owners found by a /proc fd scan.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "events.hpp"

namespace portghost {

// Network namespaces in use: inode -> a path that opens it.
std::unordered_map<uint32_t, std::string> list_netns(const std::string& proc = "/proc");

// socket inode -> owning pid (the first found; a socket shared by several
// processes after fork names one of them).
std::unordered_map<uint64_t, uint32_t> socket_owners(const std::string& proc = "/proc");

// Decodes a buffer of iterator records (whole pg_sock_event records).
std::vector<SockEvent> decode_existing(const std::vector<uint8_t>& raw);

// ip_local_port_range of a network namespace ({0,0} if it cannot be read).
std::pair<uint16_t, uint16_t> port_range_of_netns(uint32_t netns, const std::string& proc = "/proc");

// Runs `collect` once inside each network namespace (in a helper thread that
// joins it) and returns all records. `collect` returns raw iterator output.
std::vector<SockEvent> collect_in_all_netns(const std::function<std::vector<uint8_t>()>& collect,
                                            const std::string& proc = "/proc");

}  // namespace portghost
