// pg_latency: delivery latency of a log, from the kernel event to the line
// in the file. Tails FILE (polling every 0.5 ms) for SECONDS; for every new
// line with a "ts_ns" (the event's time, unix ns), the delay is the time the
// line was first seen minus ts_ns. Prints the count and p50/p90/p99/max in ms.
//
//   pg_latency FILE SECONDS
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
uint64_t now_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: pg_latency FILE SECONDS\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "pg_latency: cannot open %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  lseek(fd, 0, SEEK_END);  // only lines written from now on
  uint64_t until = now_ns(CLOCK_MONOTONIC) + static_cast<uint64_t>(std::atof(argv[2]) * 1e9);
  std::vector<double> ms;
  std::string pending;
  char buf[1 << 16];
  while (now_ns(CLOCK_MONOTONIC) < until) {
    ssize_t n;
    bool got = false;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      pending.append(buf, static_cast<size_t>(n));
      got = true;
    }
    if (got) {
      uint64_t seen = now_ns(CLOCK_REALTIME);
      size_t start = 0, nl;
      while ((nl = pending.find('\n', start)) != std::string::npos) {
        size_t k = pending.find("\"ts_ns\":", start);
        if (k != std::string::npos && k < nl) {
          uint64_t ts = std::strtoull(pending.c_str() + k + 8, nullptr, 10);
          if (ts && seen >= ts) ms.push_back(static_cast<double>(seen - ts) / 1e6);
        }
        start = nl + 1;
      }
      pending.erase(0, start);
    }
    timespec pause{0, 500'000};
    nanosleep(&pause, nullptr);
  }
  if (ms.empty()) {
    std::printf("lines=0\n");
    return 1;
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
  };
  std::printf("lines=%zu p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", ms.size(), pct(0.5), pct(0.9), pct(0.99),
              ms.back());
  return 0;
}
