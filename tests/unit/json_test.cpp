#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/json.hpp"
#include "test_util.hpp"

using namespace portghost;
using namespace std::string_literals;
using pgtest::parse_json;

namespace {

// What a reader of the JSON gets back for `in`: valid UTF-8 unchanged, each
// byte of an invalid sequence as the four characters \xNN.
std::string expected_decoded(const std::string& in) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    size_t n = 0;
    if (c < 0x80) {
      n = 1;
    } else {
      uint32_t cp = 0;
      size_t want = 0;
      if (c >= 0xc2 && c <= 0xdf) {
        want = 2;
        cp = c & 0x1f;
      } else if (c >= 0xe0 && c <= 0xef) {
        want = 3;
        cp = c & 0x0f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        want = 4;
        cp = c & 0x07;
      }
      bool ok = want != 0 && i + want <= in.size();
      for (size_t k = 1; ok && k < want; k++) {
        auto b = static_cast<unsigned char>(in[i + k]);
        ok = (b & 0xc0) == 0x80;
        cp = (cp << 6) | (b & 0x3f);
      }
      if (ok && want == 3 && cp < 0x800) ok = false;
      if (ok && want == 4 && (cp < 0x10000 || cp > 0x10ffff)) ok = false;
      if (ok && cp >= 0xd800 && cp <= 0xdfff) ok = false;
      n = ok ? want : 0;
    }
    if (n == 0) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
      i++;
    } else {
      out.append(in, i, n);
      i += n;
    }
  }
  return out;
}

// The quoted text is one JSON string, one line, and decodes to `decoded`.
void expect_round_trip(const std::string& in, const std::string& decoded) {
  std::string q = json_quote(in);
  EXPECT_EQ(q.find('\n'), std::string::npos) << "one line: " << q;
  EXPECT_EQ(q.find('\r'), std::string::npos) << q;
  auto v = parse_json(q);
  ASSERT_TRUE(v.has_value()) << "invalid JSON: " << q;
  ASSERT_EQ(v->type, pgtest::JValue::Type::Str);
  EXPECT_EQ(v->str(), decoded) << q;
}

}  // namespace

TEST(JsonEscape, PlainAsciiIsQuotedUnchanged) {
  EXPECT_EQ(json_quote(""), R"("")");
  EXPECT_EQ(json_quote("curl"), R"("curl")");
  EXPECT_EQ(json_quote("a b/c:d{}[]'~"), R"("a b/c:d{}[]'~")");
}

TEST(JsonEscape, QuoteAndBackslash) {
  EXPECT_EQ(json_quote(R"(say "hi")"), R"("say \"hi\"")");
  EXPECT_EQ(json_quote(R"(C:\dir\)"), R"("C:\\dir\\")");
  expect_round_trip(R"(\"\\")", R"(\"\\")");
}

TEST(JsonEscape, NamedControlCharacters) {
  EXPECT_EQ(json_quote("a\nb"), R"("a\nb")");
  EXPECT_EQ(json_quote("a\rb"), R"("a\rb")");
  EXPECT_EQ(json_quote("a\tb"), R"("a\tb")");
  expect_round_trip("line1\nline2\r\n\tend", "line1\nline2\r\n\tend");
}

TEST(JsonEscape, OtherControlCharactersAndDelAreUnicodeEscapes) {
  EXPECT_EQ(json_quote("\x01"), R"("\u0001")");
  EXPECT_EQ(json_quote("\x1b[31mred"), R"("\u001b[31mred")");
  EXPECT_EQ(json_quote("\x7f"), R"("\u007f")");
  EXPECT_EQ(json_quote("\x1f"), R"("\u001f")");
  EXPECT_EQ(json_quote("\b\f"), R"("\u0008\u000c")");
  EXPECT_EQ(json_quote("a\0b"s), R"("a\u0000b")") << "an embedded NUL is kept, escaped";
  for (int c = 0; c < 0x20; c++)
    expect_round_trip(std::string(1, static_cast<char>(c)), std::string(1, static_cast<char>(c)));
  expect_round_trip("\x7f", "\x7f");
}

TEST(JsonEscape, ValidMultibyteUtf8IsKept) {
  const std::string samples[] = {
      "caf\xc3\xa9",               // é (2 bytes)
      "\xe2\x82\xac",              // € (3 bytes)
      "\xf0\x9f\x98\x80",          // 😀 (4 bytes)
      "\xe4\xb8\xad\xe6\x96\x87",  // 中文
      "\xc2\x80",                  // U+0080, smallest 2-byte
      "\xe0\xa0\x80",              // U+0800, smallest 3-byte
      "\xef\xbf\xbf",              // U+FFFF
      "\xf4\x8f\xbf\xbf",          // U+10FFFF, the largest
      "\xed\x9f\xbf",              // U+D7FF, just below the surrogates
      "\xee\x80\x80",              // U+E000, just above them
  };
  for (const auto& s : samples) {
    EXPECT_EQ(json_quote(s), "\"" + s + "\"");
    expect_round_trip(s, s);
  }
}

TEST(JsonEscape, InvalidBytesBecomeVisibleHexText) {
  // In the JSON text: \\xNN (an escaped backslash, then xNN).
  EXPECT_EQ(json_quote("\xff"), R"("\\xff")");
  EXPECT_EQ(json_quote("a\x80z"), R"("a\\x80z")") << "lone continuation byte";
  EXPECT_EQ(json_quote("\xc0\xaf"), R"("\\xc0\\xaf")") << "overlong 2-byte '/'";
  EXPECT_EQ(json_quote("\xc1\xbf"), R"("\\xc1\\xbf")") << "overlong 2-byte";
  EXPECT_EQ(json_quote("\xe0\x80\xaf"), R"("\\xe0\\x80\\xaf")") << "overlong 3-byte";
  EXPECT_EQ(json_quote("\xf0\x80\x80\xaf"), R"("\\xf0\\x80\\x80\\xaf")") << "overlong 4-byte";
  EXPECT_EQ(json_quote("\xed\xa0\x80"), R"("\\xed\\xa0\\x80")") << "high surrogate U+D800";
  EXPECT_EQ(json_quote("\xed\xbf\xbf"), R"("\\xed\\xbf\\xbf")") << "low surrogate U+DFFF";
  EXPECT_EQ(json_quote("\xf4\x90\x80\x80"), R"("\\xf4\\x90\\x80\\x80")") << "above U+10FFFF";
  EXPECT_EQ(json_quote("\xf5\x80\x80\x80"), R"("\\xf5\\x80\\x80\\x80")");
  EXPECT_EQ(json_quote("\xe2\x82"), R"("\\xe2\\x82")") << "truncated at the end";
  EXPECT_EQ(json_quote("\xe2\x82x"), R"("\\xe2\\x82x")") << "interrupted sequence";
  EXPECT_EQ(json_quote("\xc3\xa9\xff\xc3\xa9"), "\"\xc3\xa9\\\\xff\xc3\xa9\"") << "valid around invalid kept";
}

TEST(JsonEscape, InvalidBytesRoundTripAsText) {
  expect_round_trip("\xff", R"(\xff)");
  expect_round_trip("\xed\xa0\x80", R"(\xed\xa0\x80)");
  expect_round_trip("ok\xc0\xafok", R"(ok\xc0\xafok)");
  // a real backslash before "x" is distinguishable: it is doubled
  EXPECT_EQ(json_quote(R"(\xff)"), R"("\\xff")");
}

TEST(JsonEscape, EveryByteValueGivesValidJson) {
  for (int c = 0; c < 256; c++) {
    std::string s(1, static_cast<char>(c));
    expect_round_trip(s, expected_decoded(s));
  }
}

TEST(JsonEscape, RandomBytesAlwaysGiveOneLineOfValidJson) {
  std::mt19937 rng(12345);  // fixed seed: deterministic
  std::uniform_int_distribution<int> len(0, 24), byte(0, 255), pick(0, 3);
  const char* fragments[] = {"\xc3\xa9", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\"\\\n"};
  for (int n = 0; n < 2000; n++) {
    std::string s;
    int l = len(rng);
    for (int k = 0; k < l; k++) {
      if (pick(rng) == 0)
        s += fragments[pick(rng)];
      else
        s += static_cast<char>(byte(rng));
    }
    expect_round_trip(s, expected_decoded(s));
    if (HasFailure()) break;
  }
}

TEST(JsonObject, KeysInInsertionOrderAndValueKinds) {
  std::string out;
  JsonObject o(out);
  o.str("s", "x\"y")
      .num("n", 18446744073709551615ULL)
      .snum("neg", -42)
      .boolean("t", true)
      .boolean("f", false)
      .null("z")
      .opt_str("os", std::string("v"))
      .opt_str("on", std::nullopt)
      .opt_num("un", 7)
      .opt_num("unn", std::nullopt)
      .raw("arr", "[1,2]");
  o.close();
  EXPECT_EQ(out, R"({"s":"x\"y","n":18446744073709551615,"neg":-42,"t":true,"f":false,"z":null,)"
                 R"("os":"v","on":null,"un":7,"unn":null,"arr":[1,2]})"
                 "\n");
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->keys(), (std::vector<std::string>{"s", "n", "neg", "t", "f", "z", "os", "on", "un", "unn", "arr"}));
  EXPECT_EQ(v->at("s").str(), "x\"y");
  EXPECT_EQ(v->at("n").u64(), 18446744073709551615ULL);
  EXPECT_EQ(v->at("arr").arr.size(), 2u);
}

TEST(JsonObject, EmptyAndNested) {
  std::string out;
  {
    JsonObject o(out);
    o.close();
  }
  EXPECT_EQ(out, "{}\n");

  std::string inner;
  {
    JsonObject i(inner);
    i.num("a", 0).snum("b", 0);
    i.end();
  }
  std::string outer;
  JsonObject o(outer);
  o.raw("inner", inner).snum("min", INT64_MIN);
  o.close();
  EXPECT_EQ(outer, "{\"inner\":{\"a\":0,\"b\":0},\"min\":-9223372036854775808}\n");
  EXPECT_TRUE(parse_json(outer).has_value());
}

TEST(JsonParserSelfCheck, RejectsInvalidJson) {
  // the checker used by these tests must itself refuse what is not JSON
  EXPECT_FALSE(parse_json("\"a\nb\"").has_value()) << "raw newline in string";
  EXPECT_FALSE(parse_json("\"\\x41\"").has_value()) << "\\x is no JSON escape";
  EXPECT_FALSE(parse_json("\"\xff\"").has_value()) << "invalid UTF-8";
  EXPECT_FALSE(parse_json("\"\xed\xa0\x80\"").has_value()) << "raw surrogate";
  EXPECT_FALSE(parse_json("{\"a\":1,}").has_value());
  EXPECT_FALSE(parse_json("{\"a\":1}{").has_value());
  EXPECT_FALSE(parse_json("01").has_value());
  EXPECT_TRUE(parse_json("{\"a\":[1,-2.5e3,true,null,\"\\u00e9\"]}\n").has_value());
}

TEST(JsonObject, NumbersMatchToStringAtEveryDigitCount) {
  std::vector<uint64_t> values = {0, 1, 9, UINT64_MAX, UINT64_MAX - 1};
  for (uint64_t p = 10; p <= 10000000000000000000ULL; p *= 10) {
    values.push_back(p - 1);
    values.push_back(p);
    values.push_back(p + 1);
    if (p == 10000000000000000000ULL) break;
  }
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 1000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    values.push_back(x >> (i % 64));
  }
  for (uint64_t v : values) {
    std::string out;
    JsonObject o(out);
    o.num("v", v);
    o.end();
    EXPECT_EQ(out, "{\"v\":" + std::to_string(v) + "}") << v;
  }
}

TEST(JsonPutU64, EveryDigitCountAndBoundary) {
  std::vector<uint64_t> values = {0, UINT32_MAX, uint64_t{UINT32_MAX} + 1, UINT64_MAX, 100'000'000, 99'999'999};
  uint64_t p = 1;
  for (int i = 0; i < 20; i++) {
    values.push_back(p - 1);
    values.push_back(p);
    values.push_back(p + 1);
    if (i < 19) p *= 10;
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; i++) values.push_back(rng() >> (rng() % 64));
  for (uint64_t v : values) {
    char buf[24];
    char* end = json_detail::put_u64(buf, v);
    EXPECT_EQ(std::string(buf, end), std::to_string(v));
  }
}

TEST(DecimalCounter, CountsAsToStringDoes) {
  DecimalCounter c;
  for (uint64_t i = 0; i <= 1'000'123; i++) {
    if (c.text() != std::to_string(i)) {
      ADD_FAILURE() << "at " << i << ": " << c.text();
      break;
    }
    c.next();
  }
  c.reset();
  EXPECT_EQ(c.text(), "0");
  c.next();
  EXPECT_EQ(c.text(), "1");
}

TEST(JsonObject, OverwriteReusesTheBufferAndReportsTheLength) {
  std::string buf;
  {
    JsonObject o(buf, JsonObject::Overwrite{});
    o.str("long", std::string(600, 'x')).num("n", 1);
    o.close();
    EXPECT_EQ(buf.substr(0, o.length()), "{\"long\":\"" + std::string(600, 'x') + "\",\"n\":1}\n");
  }
  size_t room = buf.size();
  {
    JsonObject o(buf, JsonObject::Overwrite{});
    o.num("n", 2).members(",\"m\":3");
    o.close();
    EXPECT_EQ(buf.substr(0, o.length()), "{\"n\":2,\"m\":3}\n");
  }
  EXPECT_EQ(buf.size(), room) << "the room stays for the next object";
}

TEST(JsonCopySmall, EveryLengthUpToAndPastSixteen) {
  const std::string src = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (size_t n = 0; n <= src.size(); n++) {
    std::string dst(40, '.');
    json_detail::copy_small(dst.data(), src.data(), n);
    EXPECT_EQ(dst.substr(0, n), src.substr(0, n));
    EXPECT_EQ(dst.substr(n), std::string(40 - n, '.'));
  }
}
