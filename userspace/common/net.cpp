#include "common/net.hpp"

namespace portghost {

std::string_view to_string(Proto p) {
  switch (p) {
    case Proto::Tcp: return "tcp";
    case Proto::Udp: return "udp";
    case Proto::UdpLite: return "udplite";
    case Proto::Sctp: return "sctp";
  }
  return "?";
}

std::optional<Proto> proto_from_string(std::string_view s) {
  if (s == "tcp") return Proto::Tcp;
  if (s == "udp") return Proto::Udp;
  if (s == "udplite") return Proto::UdpLite;
  if (s == "sctp") return Proto::Sctp;
  return std::nullopt;
}
std::string_view to_string(Family f) { return f == Family::Ipv4 ? "ipv4" : "ipv6"; }

std::string_view to_string(How h) {
  switch (h) {
    case How::Bind: return "bind";
    case How::Connect: return "connect";
    case How::Listen: return "listen";
    case How::Sendmsg: return "sendmsg";
    case How::Fastopen: return "fastopen";
    case How::None: break;
  }
  return "unknown";
}

bool unspecified_addr(std::string_view a) { return a == "0.0.0.0" || a == "::"; }

bool loopback_addr(std::string_view a) {
  a = unmapped_ipv4(a);
  return a == "::1" || a.substr(0, 4) == "127.";
}

std::string_view unmapped_ipv4(std::string_view a) {
  constexpr std::string_view kMapped = "::ffff:";
  if (a.size() > kMapped.size() && a.substr(0, kMapped.size()) == kMapped && a.find('.') != std::string_view::npos)
    return a.substr(kMapped.size());
  return a;
}

}  // namespace portghost
