#include "common/community_id.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

namespace portghost {

namespace {

// OpenSSL's SHA-1 (with the CPU's SHA instructions where it has them: about
// a quarter of a portable one's time), one context per thread, reused.
struct Sha1Context {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Sha1Context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
};

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
  thread_local Sha1Context c;
  std::array<uint8_t, 20> out{};
  unsigned int len = 0;
  if (!c.md || !c.ctx || EVP_DigestInit_ex(c.ctx, c.md, nullptr) != 1 || EVP_DigestUpdate(c.ctx, data, size) != 1 ||
      EVP_DigestFinal_ex(c.ctx, out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("OpenSSL cannot compute SHA-1");
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
