// Community ID v1 (the corelight community-id spec): one flow's identity,
// the same from both ends and in every tool that speaks it (Zeek, Suricata,
// Elastic, firewalls' flow logs), so records join across them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/fixed_text.hpp"

namespace portghost {

// "1:" and 28 characters of base64.
using CommunityIdText = FixedText<30>;

// SHA-1 (FIPS 180-4) of data (OpenSSL's).
std::array<uint8_t, 20> sha1(const uint8_t* data, size_t size);
// RFC 4648 base64, padded.
std::string base64(const uint8_t* data, size_t size);

// "1:" + base64(SHA-1(seed, the two endpoints in order, protocol, 0, ports)),
// for a flow of a port protocol (tcp 6, udp 17, udplite 136, sctp 132)
// between two textual IP addresses. An IPv4-mapped IPv6 address counts as
// the IPv4 address (what the packets carry). nullopt for an address that is
// not one, unspecified, of two families, or another protocol.
std::optional<std::string> community_id_v1(uint8_t ip_proto, std::string_view saddr, uint16_t sport,
                                           std::string_view daddr, uint16_t dport, uint16_t seed = 0);
// The same into `out`, with no allocation (the tracer's per-record path);
// false where the above gives nullopt.
bool community_id_v1_into(CommunityIdText& out, uint8_t ip_proto, std::string_view saddr, uint16_t sport,
                          std::string_view daddr, uint16_t dport, uint16_t seed = 0);

// An address in the form the Community ID hashes: IPv4 for an IPv4-mapped
// IPv6 address, else as given; nullopt if it is not an address.
std::optional<std::string> canonical_addr(std::string_view addr);

}  // namespace portghost
