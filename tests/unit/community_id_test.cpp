// Community ID v1 against the spec's published baseline vectors (kept in
// tests/data with their source), and SHA-1 and base64 against their RFCs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/community_id.hpp"

using namespace portghost;

namespace {

std::string hex(const std::array<uint8_t, 20>& d) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += k[b >> 4];
    s += k[b & 15];
  }
  return s;
}

std::string sha1_hex(const std::string& s) { return hex(sha1(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }

}  // namespace

TEST(CommunityId, Sha1OfTheRfc3174Vectors) {
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // lengths around the padding boundary (55, 56, 64 bytes)
  EXPECT_EQ(sha1_hex(std::string(55, 'x')).size(), 40u);
  EXPECT_NE(sha1_hex(std::string(55, 'x')), sha1_hex(std::string(56, 'x')));
}

TEST(CommunityId, Base64OfTheRfc4648Vectors) {
  auto b = [](const std::string& s) { return base64(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  EXPECT_EQ(b(""), "");
  EXPECT_EQ(b("f"), "Zg==");
  EXPECT_EQ(b("fo"), "Zm8=");
  EXPECT_EQ(b("foo"), "Zm9v");
  EXPECT_EQ(b("foob"), "Zm9vYg==");
  EXPECT_EQ(b("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b("foobar"), "Zm9vYmFy");
}

// Every TCP, UDP and SCTP vector of the spec's baseline (seed 0 and seed 1),
// and UDP over IPv6 from its reference implementation.
TEST(CommunityId, TheSpecsVectors) {
  std::ifstream f(PG_TEST_DATA_DIR "/community_id_baseline.json");
  ASSERT_TRUE(f) << "test data missing";
  auto data = nlohmann::json::parse(f);
  size_t n = 0;
  bool tcp4 = false, tcp6 = false, udp4 = false, udp6 = false;
  for (const auto* list : {&data["vectors"], &data["computed"]["vectors"]}) {
    for (const auto& v : *list) {
      std::string s = v["saddr"], d = v["daddr"];
      uint8_t proto = v["proto"];
      auto id = community_id_v1(proto, s, v["sport"].get<uint16_t>(), d, v["dport"].get<uint16_t>(),
                                v["seed"].get<uint16_t>());
      ASSERT_TRUE(id) << v.dump();
      EXPECT_EQ(*id, v["communityid"].get<std::string>()) << v.dump();
      bool six = s.find(':') != std::string::npos;
      tcp4 |= proto == 6 && !six;
      tcp6 |= proto == 6 && six;
      udp4 |= proto == 17 && !six;
      udp6 |= proto == 17 && six;
      n++;
    }
  }
  EXPECT_GE(n, 19u);
  EXPECT_TRUE(tcp4 && tcp6 && udp4 && udp6);
}

TEST(CommunityId, FromEitherEndAndWhatHasNone) {
  auto a = community_id_v1(6, "10.0.0.5", 60302, "10.0.0.9", 443);
  auto b = community_id_v1(6, "10.0.0.9", 443, "10.0.0.5", 60302);
  ASSERT_TRUE(a);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->rfind("1:", 0), 0u);
  // the same addresses: the smaller port first
  EXPECT_EQ(community_id_v1(17, "127.0.0.1", 5000, "127.0.0.1", 53),
            community_id_v1(17, "127.0.0.1", 53, "127.0.0.1", 5000));
  // an IPv4-mapped IPv6 socket talks IPv4 on the wire
  EXPECT_EQ(community_id_v1(6, "::ffff:10.0.0.5", 60302, "::ffff:10.0.0.9", 443), a);
  EXPECT_NE(community_id_v1(6, "10.0.0.5", 60302, "10.0.0.9", 443, 1), a) << "the seed changes it";
  EXPECT_FALSE(community_id_v1(6, "0.0.0.0", 60302, "10.0.0.9", 443)) << "an unspecified end is no flow";
  EXPECT_FALSE(community_id_v1(6, "::", 60302, "::1", 443));
  EXPECT_FALSE(community_id_v1(6, "10.0.0.5", 1, "::1", 443)) << "two families";
  EXPECT_FALSE(community_id_v1(6, "not an address", 1, "10.0.0.9", 443));
  EXPECT_FALSE(community_id_v1(1, "10.0.0.5", 1, "10.0.0.9", 443)) << "not a port protocol";
  EXPECT_EQ(canonical_addr("::ffff:10.0.0.5"), "10.0.0.5");
  EXPECT_EQ(canonical_addr("2001:DB8::0:1"), "2001:db8::1");
  EXPECT_FALSE(canonical_addr("[::1]"));
}

// The log's dotted quads are read without inet_pton; anything that is not
// one (leading zeros, parts over 255, too few or too many parts, trailing
// bytes) is judged as inet_pton judges it.
TEST(CommunityId, DottedQuadsReadQuicklyAgreeWithInetPton) {
  auto mapped = community_id_v1(6, "::ffff:192.168.10.255", 60302, "::ffff:0.0.0.9", 443);
  ASSERT_TRUE(mapped);
  EXPECT_EQ(community_id_v1(6, "192.168.10.255", 60302, "0.0.0.9", 443), mapped);
  for (const char* bad : {"192.168.010.255", "192.168.10.256", "192.168.10", "192.168.10.255.1", "192.168.10.255 ",
                          "192..10.255", ".192.168.10.255", "1921.68.10.255", "192.168.10.-1"})
    EXPECT_FALSE(community_id_v1(6, bad, 60302, "10.0.0.9", 443)) << bad;
  EXPECT_TRUE(community_id_v1(6, "255.255.255.255", 1, "1.0.0.0", 2));
}
