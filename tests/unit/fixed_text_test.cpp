// FixedText: short text held in place.
#include <gtest/gtest.h>

#include "common/fixed_text.hpp"

using namespace portghost;

TEST(FixedText, HoldsCutsAndCompares) {
  AddrText a;
  EXPECT_TRUE(a.empty());
  a = "2001:db8::1";
  EXPECT_EQ(a, "2001:db8::1");
  EXPECT_EQ(a.size(), 11u);
  AddrText b = a;
  EXPECT_EQ(a, b);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(a == b);
  std::string longest(45, '0');
  a = longest;
  EXPECT_EQ(a.view(), longest);
  a = longest + "9";
  EXPECT_EQ(a.view(), longest) << "cut at its size";
  CommText c;
  const char kernel_comm[16] = {'a', 'b', 'c', '\0', 'x'};
  c.assign_cstr(kernel_comm, sizeof kernel_comm);
  EXPECT_EQ(c, "abc");
  const char full[16] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  c.assign_cstr(full, sizeof full);
  EXPECT_EQ(c.str(), "0123456789abcdef") << "no NUL within the array: all 16";
}

// A task's name (16 bytes, NUL-terminated unless full) is cut at its first
// NUL, whatever follows it; bytes next to zero (0x01, 0x80, 0xff) are text.
TEST(FixedText, AKernelNameEndsAtItsFirstNul) {
  for (size_t len = 0; len <= 16; len++) {
    for (char fill : {'\x01', '\x80', '\xff', 'a'}) {
      char name[16];
      for (size_t i = 0; i < 16; i++) name[i] = i < len ? fill : (i == len ? '\0' : '\x01');
      CommText t;
      t.assign_cstr(name, sizeof name);
      EXPECT_EQ(t.size(), len) << "fill " << static_cast<int>(fill);
      EXPECT_EQ(t.view(), std::string(len, fill));
    }
  }
}
