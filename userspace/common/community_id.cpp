#include "common/community_id.hpp"

#include <arpa/inet.h>
// SHA1_Init/Update/Final: OpenSSL's calls straight into its block function
// (with the CPU's SHA instructions where it has them). OpenSSL 3.0
// deprecates them for the EVP interface, whose provider dispatch made a
// Community ID cost 2.4x as much (and its one-shot SHA1() fetches the
// algorithm on every call): this is per record.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

namespace portghost {

namespace {

// A dotted quad as the log writes it (no leading zeros, each part at most
// 255): read without inet_pton's copy and call. Anything else is left to it.
bool canonical_ipv4(std::string_view t, uint8_t out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0 && (i >= t.size() || t[i++] != '.')) return false;
    size_t start = i;
    unsigned v = 0;
    while (i < t.size() && i - start < 3 && t[i] >= '0' && t[i] <= '9')
      v = v * 10 + static_cast<unsigned>(t[i++] - '0');
    if (i == start || v > 255 || (t[start] == '0' && i - start > 1)) return false;
    out[part] = static_cast<uint8_t>(v);
  }
  return i == t.size();
}

// 4 bytes (IPv4, also from an IPv4-mapped IPv6 address) or 16 (IPv6)
size_t addr_bytes(std::string_view text, uint8_t out[16]) {
  if (canonical_ipv4(text, out)) return 4;
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return 0;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  if (inet_pton(AF_INET, buf, out) == 1) return 4;
  if (inet_pton(AF_INET6, buf, out) != 1) return 0;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(out, kMapped, 12) == 0) {
    std::memmove(out, out + 12, 4);
    return 4;
  }
  return 16;
}

bool unspecified(const uint8_t* a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i]) return false;
  return true;
}

}  // namespace

std::array<uint8_t, 20> sha1(const uint8_t* data, size_t size) {
  std::array<uint8_t, 20> out{};
  SHA_CTX c;
  if (SHA1_Init(&c) != 1 || SHA1_Update(&c, data, size) != 1 || SHA1_Final(out.data(), &c) != 1)
    throw std::runtime_error("OpenSSL cannot compute SHA-1");
  return out;
}

namespace {
const char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// (size + 2) / 3 * 4 characters at out
void base64_to(const uint8_t* data, size_t size, char* out) {
  size_t i = 0;
  for (; i + 2 < size; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16 | static_cast<uint32_t>(data[i + 1]) << 8 | data[i + 2];
    *out++ = kBase64[v >> 18];
    *out++ = kBase64[(v >> 12) & 63];
    *out++ = kBase64[(v >> 6) & 63];
    *out++ = kBase64[v & 63];
  }
  if (i < size) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16 | (i + 1 < size ? static_cast<uint32_t>(data[i + 1]) << 8 : 0);
    *out++ = kBase64[v >> 18];
    *out++ = kBase64[(v >> 12) & 63];
    *out++ = i + 1 < size ? kBase64[(v >> 6) & 63] : '=';
    *out++ = '=';
  }
}
}  // namespace

std::string base64(const uint8_t* data, size_t size) {
  std::string out((size + 2) / 3 * 4, '\0');
  base64_to(data, size, out.data());
  return out;
}

std::optional<std::string> community_id_v1(uint8_t ip_proto, std::string_view saddr, uint16_t sport,
                                           std::string_view daddr, uint16_t dport, uint16_t seed) {
  CommunityIdText id;
  if (!community_id_v1_into(id, ip_proto, saddr, sport, daddr, dport, seed)) return std::nullopt;
  return id.str();
}

bool community_id_v1_into(CommunityIdText& out, uint8_t ip_proto, std::string_view saddr, uint16_t sport,
                          std::string_view daddr, uint16_t dport, uint16_t seed) {
  if (ip_proto != 6 && ip_proto != 17 && ip_proto != 132 && ip_proto != 136) return false;
  uint8_t s[16], d[16];
  size_t sn = addr_bytes(saddr, s), dn = addr_bytes(daddr, d);
  if (!sn || sn != dn || unspecified(s, sn) || unspecified(d, dn)) return false;
  // the flow's two ends in order: the smaller address first (its port with
  // it), or the smaller port when the addresses are the same
  int c = std::memcmp(s, d, sn);
  if (c > 0 || (c == 0 && sport > dport)) {
    std::swap(s, d);
    std::swap(sport, dport);
  }
  uint8_t buf[2 + 16 + 16 + 4 + 4];
  size_t n = 0;
  buf[n++] = static_cast<uint8_t>(seed >> 8);
  buf[n++] = static_cast<uint8_t>(seed);
  std::memcpy(buf + n, s, sn);
  n += sn;
  std::memcpy(buf + n, d, dn);
  n += dn;
  buf[n++] = ip_proto;
  buf[n++] = 0;
  buf[n++] = static_cast<uint8_t>(sport >> 8);
  buf[n++] = static_cast<uint8_t>(sport);
  buf[n++] = static_cast<uint8_t>(dport >> 8);
  buf[n++] = static_cast<uint8_t>(dport);
  auto digest = sha1(buf, n);
  char text[2 + 28] = {'1', ':'};
  base64_to(digest.data(), digest.size(), text + 2);
  out.assign(text, sizeof text);
  return true;
}

std::optional<std::string> canonical_addr(std::string_view addr) {
  uint8_t b[16];
  size_t n = addr_bytes(addr, b);
  if (!n) return std::nullopt;
  char out[INET6_ADDRSTRLEN];
  if (!inet_ntop(n == 4 ? AF_INET : AF_INET6, b, out, sizeof out)) return std::nullopt;
  return std::string(out);
}

}  // namespace portghost
