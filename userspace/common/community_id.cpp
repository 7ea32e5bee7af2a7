#include "common/community_id.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace portghost {

namespace {

uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void sha1_block(uint32_t h[5], const uint8_t* p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = static_cast<uint32_t>(p[4 * i]) << 24 | static_cast<uint32_t>(p[4 * i + 1]) << 16 |
           static_cast<uint32_t>(p[4 * i + 2]) << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

// 4 bytes (IPv4, also from an IPv4-mapped IPv6 address) or 16 (IPv6)
size_t addr_bytes(std::string_view text, uint8_t out[16]) {
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
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t full = size / 64 * 64;
  for (size_t i = 0; i < full; i += 64) sha1_block(h, data + i);
  uint8_t tail[128] = {};
  size_t rest = size - full;
  std::memcpy(tail, data + full, rest);
  tail[rest] = 0x80;
  size_t blocks = rest + 9 <= 64 ? 1 : 2;
  uint64_t bits = static_cast<uint64_t>(size) * 8;
  for (int i = 0; i < 8; i++) tail[blocks * 64 - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  for (size_t b = 0; b < blocks; b++) sha1_block(h, tail + 64 * b);
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = static_cast<uint8_t>(h[i] >> (24 - 8 * j));
  return out;
}

std::string base64(const uint8_t* data, size_t size) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < size; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16 | static_cast<uint32_t>(data[i + 1]) << 8 | data[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < size) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16 | (i + 1 < size ? static_cast<uint32_t>(data[i + 1]) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> community_id_v1(uint8_t ip_proto, std::string_view saddr, uint16_t sport,
                                           std::string_view daddr, uint16_t dport, uint16_t seed) {
  if (ip_proto != 6 && ip_proto != 17 && ip_proto != 132 && ip_proto != 136) return std::nullopt;
  uint8_t s[16], d[16];
  size_t sn = addr_bytes(saddr, s), dn = addr_bytes(daddr, d);
  if (!sn || sn != dn || unspecified(s, sn) || unspecified(d, dn)) return std::nullopt;
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
  return "1:" + base64(digest.data(), digest.size());
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
