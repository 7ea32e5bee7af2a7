// The vocabulary of a port: its protocol (port space), address family and
// how it was taken, with their names in the log.
#pragma once

#include <linux/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

extern "C" {
#include "portghost.h"
}

namespace portghost {

// The port space: TCP (MPTCP subflows included), UDP, UDP-Lite, SCTP.
enum class Proto : uint8_t {
  Tcp = PG_IPPROTO_TCP,
  Udp = PG_IPPROTO_UDP,
  UdpLite = PG_IPPROTO_UDPLITE,
  Sctp = PG_IPPROTO_SCTP
};
enum class Family : uint8_t { Ipv4 = PG_AF_INET, Ipv6 = PG_AF_INET6 };
enum class How : uint8_t {
  None = PG_HOW_NONE,
  Bind = PG_HOW_BIND,
  Connect = PG_HOW_CONNECT,
  Listen = PG_HOW_LISTEN,
  Sendmsg = PG_HOW_SENDMSG,
  Fastopen = PG_HOW_FASTOPEN
};

std::string_view to_string(Proto p);
// "tcp", "udp", "udplite", "sctp" -> Proto; nullopt for anything else.
std::optional<Proto> proto_from_string(std::string_view s);
std::string_view to_string(Family f);
std::string_view to_string(How h);

// An address as the log spells it: "0.0.0.0" or "::" (bound to every address).
bool unspecified_addr(std::string_view a);
// A loopback address as the log spells it (127.0.0.0/8, ::1, or the first
// mapped into IPv6).
bool loopback_addr(std::string_view a);
// An IPv4-mapped IPv6 address ("::ffff:192.0.2.1") as its IPv4 one (a
// dual-stack socket's packets are IPv4); any other address as it is.
std::string_view unmapped_ipv4(std::string_view a);

}  // namespace portghost
