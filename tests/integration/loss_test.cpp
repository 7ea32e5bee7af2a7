// Root integration tests of loss accounting: every record the kernel produced
// is written or counted, whether the ring buffer fills (also after --user) or
// the disk does.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace pgtest;

// ---- loss accounting: every record the kernel produced is written or counted ----

namespace {
// `threads` threads each make `ops` UDP sockets that send once and close: two
// records per op (assign, release). Returns the wall time it took.
std::chrono::milliseconds udp_churn(int threads, int ops) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; i++)
    ts.emplace_back([ops] {
      for (int k = 0; k < ops; k++) close(udp_sendto_socket());
    });
  for (auto& t : ts) t.join();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

struct Tally {
  uint64_t written = 0;  // assign + release records of this process the kernel side made
  // releases the reconciliation wrote for sockets whose release was lost
  // (counted in `lost` too: these are found again, not made twice)
  uint64_t reconciled = 0;
  uint64_t lost = 0;  // the stop record's total
  std::map<std::string, uint64_t> reasons;
  bool stopped = false;
};

Tally tally(const Tracer& tr) {
  Tally t;
  uint32_t self = static_cast<uint32_t>(getpid());
  for (const auto& r : tr.records()) {
    bool mine = (r["type"] == "assign" || r["type"] == "release") && r["pid"] == self;
    if (mine && r.value("reason", "") == "reconciled")
      t.reconciled++;
    else if (mine)
      t.written++;
    if (r["type"] == "lost")
      for (const auto& [k, v] : r["reasons"].items()) t.reasons[k] += v.get<uint64_t>();
    if (r["type"] == "stop") {
      t.stopped = true;
      t.lost = r["lost"].get<uint64_t>();
    }
  }
  return t;
}

// The tracer stops reading (SIGSTOP): the 1 MiB ring (8k records) fills, the
// kernel side drops and counts the rest; written + lost must be exact.
void expect_drops_counted_exactly(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--no-existing", "--ring-buffer-mb", "1", "--comm", process_comm()};
  args.insert(args.end(), extra.begin(), extra.end());
  Tracer tr(args);
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::this_thread::sleep_for(200ms);  // past the existing-socket scan and a --user drop
  ASSERT_EQ(kill(tr.pid(), SIGSTOP), 0);
  const int kThreads = 4, kOps = 10000;
  auto took = udp_churn(kThreads, kOps);
  ASSERT_EQ(kill(tr.pid(), SIGCONT), 0);
  // a blocked workload would never finish while the tracer is stopped; the
  // bound is for one slowed down. Under emulation (the vmtest guests, where
  // PG_EXPECT_WORLD is set) these 40,000 sockets alone take 7 to 10 s.
  const auto bound = std::getenv("PG_EXPECT_WORLD") ? 30s : 10s;
  EXPECT_LT(took, bound) << "a full ring buffer must not block the workload";
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  Tally t = tally(tr);
  ASSERT_TRUE(t.stopped);
  EXPECT_GT(t.reasons["ring_buffer_full"], 0u) << "nothing was dropped: the test did not test";
  EXPECT_EQ(t.written + t.lost, 2u * kThreads * kOps) << "written " << t.written << ", lost " << t.lost;
  EXPECT_LE(t.reconciled, t.lost) << "only a lost release is found again";
}
}  // namespace

TEST_F(TraceOwn, RingBufferDropsAreCountedExactlyAndNeverBlockTheWorkload) { expect_drops_counted_exactly({}); }

// The kernel's counters are still read once the tracer is nobody.
TEST_F(TraceOwn, DropsAreStillCountedExactlyAfterDroppingPrivileges) {
  if (user_refused_here()) GTEST_SKIP() << "this kernel refuses bpf() to unprivileged processes: --user is refused";
  expect_drops_counted_exactly({"--user", "nobody"});
}

TEST_F(TraceOwn, AFullDiskIsRetriedAndWhatCouldNotBeKeptIsCounted) {
  // a ring large enough that nothing is dropped before the output (a
  // sanitizer build consumes slowly): this test is about the output's count
  Tracer tr({"--no-existing", "--ring-buffer-mb", "64", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  // the disk is "full": the log may not grow past what it holds now
  struct stat st {};
  ASSERT_EQ(stat(tr.path().c_str(), &st), 0);
  rlimit full{static_cast<rlim_t>(st.st_size), RLIM_INFINITY};
  ASSERT_EQ(prlimit(tr.pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  // more than the 16 MiB the output keeps in memory while it cannot write
  const int kThreads = 2, kOps = 40000;
  udp_churn(kThreads, kOps);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(kill(tr.pid(), 0), 0) << "a full disk must not end the trace";
  rlimit room{RLIM_INFINITY, RLIM_INFINITY};
  ASSERT_EQ(prlimit(tr.pid(), RLIMIT_FSIZE, &room, nullptr), 0);
  // and a short outage loses nothing: kept in memory, written on the retry
  udp_churn(1, 100);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tr.stop(), 0) << tr.stderr_text();
  Tally t = tally(tr);  // every line parses: no half line was left behind
  ASSERT_TRUE(t.stopped);
  EXPECT_GT(t.reasons["write_failed"], 0u);
  ASSERT_EQ(t.reasons["ring_buffer_full"], 0u) << "the kernel dropped records: the count below would not be exact";
  // every line given up leaves a gap in seq; write_failed counts the
  // records in them (a life line is two)
  uint64_t gaps = 0, next = 0, ours_unattributed = 0;
  for (const auto& r : tr.records()) {
    uint64_t seq = r["seq"].get<uint64_t>();
    if (seq > next) gaps += seq - next;
    next = seq + 1;
    if ((r["type"] == "assign" || r["type"] == "release") && r["pid"].is_null()) ours_unattributed++;
  }
  EXPECT_LE(gaps, t.reasons["write_failed"]);
  EXPECT_GE(2 * gaps, t.reasons["write_failed"]);
  EXPECT_EQ(t.written + t.lost, 2u * (kThreads * kOps + 100))
      << "written " << t.written << ", lost " << t.lost << ", lines missing by seq " << gaps
      << ", port records without a pid " << ours_unattributed;
  EXPECT_NE(tr.stderr_text().find("writing again"), std::string::npos) << tr.stderr_text();
}
