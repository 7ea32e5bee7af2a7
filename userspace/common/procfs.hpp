// What the kernel shows in /proc: network namespaces, socket owners, the
// ephemeral port range (the one place that reads ip_local_port_range).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

namespace portghost {

// Network namespaces in use: inode -> a path that opens it.
std::unordered_map<uint32_t, std::string> list_netns(const std::string& proc = "/proc");

// socket inode -> owning pid (the first found; a socket shared by several
// processes after fork names one of them).
std::unordered_map<uint64_t, uint32_t> socket_owners(const std::string& proc = "/proc");

// ip_local_port_range of the calling thread's network namespace ({0,0} if
// it cannot be read).
std::pair<uint16_t, uint16_t> local_port_range();

// ip_local_port_range of a network namespace ({0,0} if it cannot be read).
std::pair<uint16_t, uint16_t> port_range_of_netns(uint32_t netns, const std::string& proc = "/proc");

// The first line of a file ("" if it cannot be read).
std::string first_line(const char* path);

}  // namespace portghost
