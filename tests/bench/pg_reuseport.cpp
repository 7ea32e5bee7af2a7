// pg_reuseport: the socket table alone, N holders of one UDP port (as
// SO_REUSEPORT makes them) released in creation order: the time the
// releases take (docs/benchmarks.md, "Many sockets on one port").
//
//   pg_reuseport [N]      (default 100000)
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "trace/socket_table.hpp"

using namespace portghost;

namespace {
SockEvent event(SockEvent::Kind kind, uint64_t cookie, uint64_t ts) {
  SockEvent e{};
  e.kind = kind;
  e.cookie = cookie;
  e.lport = 5000;
  e.ts_boot_ns = ts;
  e.proto = Proto::Udp;
  e.pid = 1;
  e.laddr = "0.0.0.0";
  return e;
}
}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  SocketTable t;
  for (uint64_t c = 1; c <= n; c++) t.assign(event(SockEvent::Kind::Assign, c, c));
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t c = 1; c <= n; c++) t.release(event(SockEvent::Kind::Release, c, n + c));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("holders=%llu release_ms=%lld left=%zu\n", static_cast<unsigned long long>(n), static_cast<long long>(ms),
              t.size());
  return t.size() == 0 ? 0 : 1;
}
