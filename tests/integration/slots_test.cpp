// Root integration tests of the socket slots (the kernel side's preallocated
// socket state): when they are full the state goes to socket storage and
// nothing is lost; the sweep frees the slot of a socket gone unseen and never
// a live socket's.
#include <bpf/bpf.h>
#include <linux/types.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "portghost.h"

using namespace pgtest;

namespace {

// The newest map named sk_slots: the running tracer's (-1 if none).
int slots_map_fd() {
  int newest = -1;
  for (uint32_t id = 0; bpf_map_get_next_id(id, &id) == 0;) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strcmp(info.name, "sk_slots") == 0) {
      if (newest >= 0) close(newest);
      newest = fd;
    } else {
      close(fd);
    }
  }
  return newest;
}

uint64_t stop_field(const Tracer& tr, const char* key) {
  for (const auto& r : tr.records())
    if (r["type"] == "stop") return r.value(key, uint64_t{0});
  return 0;
}

uint64_t start_slots(const Tracer& tr) {
  for (const auto& r : tr.records())
    if (r["type"] == "start") return r.value("socket_slots", uint64_t{0});
  return 0;
}

// A udp socket bound to port 0 on loopback, kept open.
int bound_udp() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto a = v4(0);
  if (bind(fd, sa(a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// 16 slots, 300 sockets held at once by the test and four threads churning
// more: most sockets' state goes to socket storage (counted), and every
// socket still has exactly one assign and one release, with no
// reconciliation mistaking a socket in storage or in a slot for a gone one.
TEST(Slots, WhenTheSlotsAreFullTheStateGoesToSocketStorageAndNothingIsLost) {
  if (auto why = skip_reason()) GTEST_SKIP() << *why;
  Listener l;  // before the start: in no record (--no-existing)
  Tracer tr({"--no-existing", "--socket-slots", "16", "--reconcile", "1", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  std::map<uint64_t, uint16_t> held;  // cookie -> port
  std::vector<int> fds;
  for (int i = 0; i < 200; i++) {
    int fd = bound_udp();
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    held[sock_cookie(fd)] = local_port(fd);
  }
  for (int i = 0; i < 100; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(do_connect(fd, loop4(l.port)), 0);
    fds.push_back(fd);
    fds.push_back(accept(l.fd, nullptr, nullptr));  // shares the listener's port: no record
    held[sock_cookie(fd)] = local_port(fd);
  }
  const int kThreads = 4, kOps = 2000;
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; i++)
    ts.emplace_back([] {
      for (int k = 0; k < kOps; k++) close(udp_sendto_socket());
    });
  for (auto& t : ts) t.join();
  std::this_thread::sleep_for(2500ms);  // two reconciliations while they are held
  for (int fd : fds) close(fd);
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(tr.stop(), 0) << tr.stderr_text();

  std::map<uint64_t, int> assigns, releases;
  uint64_t mine = 0, reconciled = 0;
  uint32_t self = static_cast<uint32_t>(getpid());
  for (const auto& r : tr.records()) {
    if (r["type"] != "assign" && r["type"] != "release") continue;
    if (r.value("reason", "") == "reconciled") reconciled++;
    if (r.value("pid", uint32_t{0}) != self) continue;
    mine++;
    uint64_t c = r["sock"].get<uint64_t>();
    auto it = held.find(c);
    if (it == held.end()) continue;
    EXPECT_EQ(r["lport"].get<uint16_t>(), it->second) << r.dump();
    (r["type"] == "assign" ? assigns : releases)[c]++;
  }
  for (const auto& [c, port] : held) {
    EXPECT_EQ(assigns[c], 1) << "socket " << c << " port " << port;
    EXPECT_EQ(releases[c], 1) << "socket " << c << " port " << port;
  }
  EXPECT_EQ(reconciled, 0u);
  EXPECT_EQ(mine, 2u * (held.size() + kThreads * kOps));
  EXPECT_EQ(stop_field(tr, "lost"), 0u);
  if (start_slots(tr) == 0) {
    // no sweep on this kernel (Linux < 5.13): all state in socket storage
    EXPECT_EQ(stop_field(tr, "socket_slots_full"), 0u);
  } else {
    EXPECT_EQ(start_slots(tr), 16u);
    EXPECT_GE(stop_field(tr, "socket_slots_full"), held.size() - 16);
  }
}

// A slot whose socket is gone (here: planted by the test, naming no socket)
// is freed by the next sweep; the slot of a socket held all along is not,
// and that socket is never released by reconciliation.
TEST(Slots, TheSweepFreesTheSlotOfAGoneSocketAndKeepsALiveOnes) {
  if (auto why = skip_reason()) GTEST_SKIP() << *why;
  Tracer tr({"--no-existing", "--reconcile", "1", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  if (start_slots(tr) == 0) {
    // Linux < 5.13: no sweep, so no slots (state in socket storage)
    int fd = slots_map_fd();
    ASSERT_GE(fd, 0);
    bpf_map_info info{};
    uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    EXPECT_EQ(info.max_entries, 1u);
    close(fd);
    ASSERT_EQ(tr.stop(), 0);
    return;
  }
  int map = slots_map_fd();
  ASSERT_GE(map, 0);
  int live = bound_udp();
  ASSERT_GE(live, 0);
  uint64_t live_cookie = sock_cookie(live);
  pg_sk_state st{};
  ASSERT_EQ(bpf_map_lookup_elem(map, &live_cookie, &st), 0) << "the held socket has a slot";
  EXPECT_NE(st.sk_addr, 0u);
  // a cookie far past any this boot will reach, naming no socket
  uint64_t gone = 0xfff0'0000'0000'0001ULL;
  pg_sk_state planted{};
  planted.flags = PG_SK_ASSIGNED;
  planted.port = 1;
  ASSERT_EQ(bpf_map_update_elem(map, &gone, &planted, BPF_NOEXIST), 0) << std::strerror(errno);
  std::this_thread::sleep_for(2500ms);
  EXPECT_NE(bpf_map_lookup_elem(map, &gone, &st), 0) << "the planted slot was not freed";
  EXPECT_EQ(bpf_map_lookup_elem(map, &live_cookie, &st), 0) << "the live socket's slot was freed";
  close(live);
  close(map);
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(tr.stop(), 0) << tr.stderr_text();
  EXPECT_GE(stop_field(tr, "socket_slots_freed"), 1u);
  int assigns = 0, releases = 0;
  for (const auto& r : tr.records()) {
    if (!r.contains("sock") || r["sock"] != live_cookie) continue;
    if (r["type"] == "assign") assigns++;
    if (r["type"] == "release") {
      releases++;
      EXPECT_EQ(r.value("reason", ""), "") << "released by reconciliation while held: " << r.dump();
    }
  }
  EXPECT_EQ(assigns, 1);
  EXPECT_EQ(releases, 1);
}
