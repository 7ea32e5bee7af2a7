// Root integration tests of the 32-bit syscall ABI (int $0x80), which takes
// ports through the same kernel paths while syscall tracepoints ignore it.
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness.hpp"

using namespace pgtest;

// Item 2: the 32-bit syscall ABI (int $0x80) takes ports through the same
// kernel paths, but syscall tracepoints ignore it.
namespace {
long sys32(long nr, long a = 0, long b = 0, long c = 0) {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory", "r8", "r9", "r10", "r11");
  return ret;
}
constexpr long k32Getpid = 20, k32Socket = 359, k32Bind = 361, k32Connect = 362;
}  // namespace

TEST_F(Holes, PortsTakenThroughThe32BitSyscallAbiAreRecorded) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the 32-bit ABI test is written for x86-64";
#else
  if (sys32(k32Getpid) != getpid()) {
    ASSERT_TRUE(uncaught_mentions(start(), "32-bit")) << "no ia32 emulation here";
    GTEST_SKIP() << "this kernel has no 32-bit syscall ABI";
  }
  // arguments must live below 4 GiB
  void* low = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  ASSERT_NE(low, MAP_FAILED);
  auto* addr = static_cast<sockaddr_in*>(low);
  long arg = reinterpret_cast<long>(low);

  // udp connect(): its port comes from the connect's autobind
  int u = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_DGRAM, 0));
  ASSERT_GE(u, 0);
  *addr = loop4(9);
  ASSERT_EQ(sys32(k32Connect, u, arg, sizeof *addr), 0);
  uint16_t uport = local_port(u);
  uint64_t ucookie = sock_cookie(u);
  // bind(0)
  int b = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_DGRAM, 0));
  *addr = loop4(0);
  ASSERT_EQ(sys32(k32Bind, b, arg, sizeof *addr), 0);
  uint64_t bcookie = sock_cookie(b);
  // tcp connect()
  Listener l;
  int tc = static_cast<int>(sys32(k32Socket, AF_INET, SOCK_STREAM, 0));
  *addr = loop4(l.port);
  ASSERT_EQ(sys32(k32Connect, tc, arg, sizeof *addr), 0);
  uint64_t tcookie = sock_cookie(tc);
  close(u);
  close(b);
  close(tc);
  munmap(low, 4096);

  Json ua = wait("assign", ucookie);
  EXPECT_EQ(ua["lport"], uport);
  EXPECT_EQ(ua["how"], "connect");
  EXPECT_EQ(ua["pid"], getpid());
  if (!syscall_world(start())) {
    // fexit on inet_dgram_connect sees it at the connect; the socket world at
    // the close, with the connect's time and task
    EXPECT_FALSE(ua.value("late", false)) << ua.dump();
    EXPECT_EQ(ua["rport"], 9);
  } else {
    EXPECT_TRUE(ua.value("late", false)) << "no syscall exit sees it; the close is its first sight: " << ua.dump();
    EXPECT_TRUE(uncaught_mentions(start(), "32-bit syscall ABI"));
  }
  EXPECT_EQ(wait("release", ucookie)["lport"], uport);
  Json ba = wait("assign", bcookie);
  EXPECT_EQ(ba["how"], "bind");
  EXPECT_EQ(ba["ephemeral"], true);
  EXPECT_FALSE(ba.value("late", false));
  wait("release", bcookie);
  Json ta = wait("assign", tcookie);
  EXPECT_EQ(ta["how"], "connect");
  EXPECT_FALSE(ta.value("late", false));
  wait("release", tcookie);
#endif
}
