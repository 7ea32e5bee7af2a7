// pg_replay: the consumer's cost per record, without the kernel. Feeds the
// records of a raw dump (portghost trace --raw-dump) through exactly what the
// tracer runs per record: decoding, the process cache, the socket table,
// attribution, the NAT join (as on a host with conntrack events where no
// NAT was seen yet; --nat-active: where it was, so released sockets are
// kept for late translations; --no-nat: no join at all), JSON and the
// file write.
//
//   pg_replay DUMP [--out FILE] [--repeat N] [--no-nat | --nat-active] [--life-ms N]
//
// --life-ms: as the tracer's (default 100; 0: an assign and a release line
// for every port).
//
// Prints records, JSON bytes written and the CPU time per record. Under
// valgrind --tool=callgrind, the instruction count per record is the
// deterministic figure: it does not depend on what else the machine does.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/clock.hpp"
#include "common/errors.hpp"
#include "kernel/raw_dump.hpp"
#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"
#include "trace/container.hpp"
#include "trace/nat_join.hpp"
#include "trace/process_cache.hpp"
#include "trace/record_builder.hpp"
#include "trace/sink.hpp"

using namespace portghost;

namespace {
// Kept out of line so that callgrind can count it alone:
//   valgrind --tool=callgrind --toggle-collect='*replay_records*' pg_replay DUMP
__attribute__((noinline)) void replay_records(RecordBuilder& builder, Sink& sink, NatJoin* nat,
                                              const std::vector<std::string>& records) {
  size_t n = 0;
  for (const auto& rec : records) {
    builder.on_record(rec.data(), rec.size());
    // the tracer's loop: a batch at most between two looks at conntrack
    if (nat && ++n % 16384 == 0) nat->ready(BootClock::now_unix_ns());
  }
  sink.flush();
}

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: pg_replay DUMP [--out FILE] [--repeat N] [--no-nat | --nat-active]\n");
    return 2;
  }
  std::string out_path = "/dev/null";
  long repeat = 1;
  long life_ms = 100;
  bool with_nat = true, nat_active = false;
  for (int i = 2; i < argc; i += 2) {
    if (!std::strcmp(argv[i], "--no-nat")) {
      with_nat = false;
      i--;
    } else if (!std::strcmp(argv[i], "--nat-active")) {
      nat_active = true;
      i--;
    } else if (i + 1 >= argc) {
      std::fprintf(stderr, "pg_replay: %s needs a value\n", argv[i]);
      return 2;
    } else if (!std::strcmp(argv[i], "--out")) {
      out_path = argv[i + 1];
    } else if (!std::strcmp(argv[i], "--life-ms")) {
      life_ms = std::strtol(argv[i + 1], nullptr, 10);
      if (life_ms < 0) life_ms = 0;
    } else if (!std::strcmp(argv[i], "--repeat")) {
      repeat = std::strtol(argv[i + 1], nullptr, 10);
      if (repeat < 1) repeat = 1;
    } else {
      std::fprintf(stderr, "pg_replay: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  try {
    auto records = read_raw_dump(argv[1]);
    FileOutput out(out_path, RotateConfig{});
    LifeLines life;
    life.hold_ns = static_cast<uint64_t>(life_ms) * 1'000'000;
    JsonSink json(out, "bench-host", 0, life);
    std::optional<NatJoin> nat;
    if (with_nat) nat.emplace(json);
    Sink& sink = nat ? static_cast<Sink&>(*nat) : json;
    ProcessCache procs;
    std::optional<CgroupResolver> cgroups;
    if (auto root = find_cgroup2_mount()) cgroups.emplace(*root);
    RecordBuilder builder(sink, Filters{}, BootClock(), procs, std::move(cgroups));
    if (nat) {
      nat->use_table(builder.table());
      if (nat_active) nat->activate();  // as on a host where NAT is at work: released sockets kept
    }
    double t0 = cpu_now();
    for (long r = 0; r < repeat; r++) replay_records(builder, sink, nat ? &*nat : nullptr, records);
    double cpu = cpu_now() - t0;
    uint64_t n = records.size() * static_cast<uint64_t>(repeat);
    uint64_t written = 0;
    for (const auto& [type, count] : builder.written()) written += count;
    std::printf("records=%llu written=%llu malformed=%llu cpu_s=%.3f ns_per_record=%.0f\n",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(written),
                static_cast<unsigned long long>(builder.malformed()), cpu, n ? cpu * 1e9 / static_cast<double>(n) : 0);
  } catch (const FatalError& e) {
    std::fprintf(stderr, "pg_replay: %s\n", e.what());
    return 1;
  }
  return 0;
}
