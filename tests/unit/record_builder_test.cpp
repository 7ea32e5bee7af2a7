#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "sinks/json_sink.hpp"
#include "trace/record_builder.hpp"

using namespace portghost;
using namespace std::string_literals;
using pgtest::JValue;
using pgtest::TempDir;
using Kind = SockEvent::Kind;

namespace {

constexpr int64_t kOffset = 1'700'000'000'000'000'000LL;  // boot 0 = 2023-11-14T22:13:20Z

TaskEvent exec_ev(uint32_t pid, uint32_t ppid, std::string comm, std::string exe, std::string cmdline) {
  TaskEvent t{};
  t.kind = TaskEvent::Kind::Exec;
  t.pid = pid;
  t.ppid = ppid;
  t.comm = std::move(comm);
  t.exe = std::move(exe);
  t.cmdline = std::move(cmdline);
  return t;
}

TaskEvent fork_ev(uint32_t pid, uint32_t ppid, std::string comm) {
  TaskEvent t{};
  t.kind = TaskEvent::Kind::Fork;
  t.pid = pid;
  t.ppid = ppid;
  t.comm = std::move(comm);
  return t;
}

SockEvent assign_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid, std::string comm) {
  SockEvent e = pgtest::sock_event(Kind::Assign, cookie, lport, ts, pid);
  e.how = How::Bind;
  e.ppid = 1;
  e.uid = 1000;
  e.netns = 4026531840u;
  e.comm = comm;
  e.thread = comm;
  e.laddr = "127.0.0.1";
  return e;
}

SockEvent release_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid = 0) {
  return pgtest::sock_event(Kind::Release, cookie, lport, ts, pid);
}

SockEvent existing_ev(uint64_t cookie, uint16_t lport, uint64_t ino, uint64_t ts = 10) {
  SockEvent e = pgtest::sock_event(Kind::Existing, cookie, lport, ts);
  e.ino = ino;
  e.state = 10;  // LISTEN
  e.netns = 4026531840u;
  e.laddr = "0.0.0.0";
  return e;
}

// A RecordBuilder writing JSON Lines into a string, with a fake /proc.
class Builder : public ::testing::Test {
 protected:
  void make(const Filters& f = {}, std::optional<CgroupResolver> cgroups = std::nullopt) {
    builder_ = std::make_unique<RecordBuilder>(sink_, f, BootClock(kOffset), procs_, std::move(cgroups));
  }
  RecordBuilder& b() {
    if (!builder_) make();
    return *builder_;
  }
  void feed(const Event& ev) { b().on_event(ev); }

  std::vector<JValue> records() const {
    std::vector<JValue> v;
    for (const auto& line : pgtest::split_lines(out_.text())) {
      auto j = pgtest::parse_json(line);
      if (!j) {
        ADD_FAILURE() << "invalid JSON: " << line;
        continue;
      }
      v.push_back(*j);
    }
    return v;
  }

  TempDir proc_;
  ProcessCache procs_{proc_.path()};
  StringOutput out_;
  JsonSink sink_{out_};
  std::unique_ptr<RecordBuilder> builder_;
};

}  // namespace

TEST_F(Builder, AssignThenReleaseGivesTwoRecordsWithTheLifetime) {
  feed(exec_ev(100, 1, "server", "/usr/local/bin/server", "server --port 8080"));
  feed(assign_ev(7, 8080, 1'000'000, 100, "server"));
  // the port is released by a child that inherited the socket
  SockEvent rel = release_ev(7, 8080, 3'500'000, 101);
  rel.comm = "worker";
  feed(rel);

  auto r = records();
  ASSERT_EQ(r.size(), 2u) << out_.text();
  const JValue& a = r[0];
  EXPECT_EQ(a.at("type").str(), "assign");
  EXPECT_EQ(a.at("ts_ns").u64(), static_cast<uint64_t>(kOffset) + 1'000'000);
  EXPECT_EQ(a.at("ts").str(), "2023-11-14T22:13:20.001000000Z");
  EXPECT_EQ(a.at("sock").u64(), 7u);
  EXPECT_EQ(a.at("lport").u64(), 8080u);
  EXPECT_EQ(a.at("laddr").str(), "127.0.0.1");
  EXPECT_TRUE(a.at("raddr").is_null());
  EXPECT_EQ(a.at("how").str(), "bind");
  EXPECT_FALSE(a.at("ephemeral").boolean());
  EXPECT_EQ(a.at("pid").u64(), 100u);
  EXPECT_EQ(a.at("tid").u64(), 100u);
  EXPECT_EQ(a.at("ppid").u64(), 1u);
  EXPECT_EQ(a.at("uid").u64(), 1000u);
  EXPECT_EQ(a.at("comm").str(), "server");
  EXPECT_EQ(a.at("exe").str(), "/usr/local/bin/server") << "from the process cache";
  EXPECT_EQ(a.at("cmdline").str(), "server --port 8080");
  EXPECT_EQ(a.at("netns").u64(), 4026531840u);
  EXPECT_TRUE(a.at("cgroup_id").is_null());
  EXPECT_TRUE(a.at("container").is_null());
  EXPECT_FALSE(a.at("kernel").boolean());

  const JValue& rl = r[1];
  EXPECT_EQ(rl.at("type").str(), "release");
  EXPECT_EQ(rl.at("ts_ns").u64(), static_cast<uint64_t>(kOffset) + 3'500'000);
  EXPECT_EQ(rl.at("sock").u64(), 7u);
  EXPECT_EQ(rl.at("lport").u64(), 8080u);
  EXPECT_EQ(rl.at("laddr").str(), "127.0.0.1") << "filled from the assign";
  EXPECT_EQ(rl.at("duration_ns").u64(), 2'500'000u);
  EXPECT_EQ(rl.at("pid").u64(), 100u) << "the assigner, not the closer";
  EXPECT_EQ(rl.at("comm").str(), "server");
  EXPECT_FALSE(rl.at("timewait").boolean());

  EXPECT_EQ(b().written().at("assign"), 1u);
  EXPECT_EQ(b().written().at("release"), 1u);
  EXPECT_EQ(b().table().size(), 0u);
}

TEST_F(Builder, RawKernelRecordsEndToEnd) {
  // exec of pid 300 as the ring buffer delivers it
  auto x = std::make_unique<pg_exec_event>();
  x->task.kind = PG_KIND_EXEC;
  x->task.pid = 300;
  x->task.ppid = 1;
  pgtest::set_cstr(x->task.comm, sizeof x->task.comm, "curl");
  const auto exe = "curl\0bin\0usr\0"s;
  const auto args = "curl\0-s\0http://x/\0"s;
  std::memcpy(x->exe, exe.data(), exe.size());
  x->exe_len = static_cast<__u16>(exe.size());
  std::memcpy(x->args, args.data(), args.size());
  x->args_len = static_cast<__u16>(args.size());
  b().on_record(x.get(), sizeof *x);

  pg_sock_event s = pgtest::raw_sock(PG_KIND_ASSIGN);
  s.how = PG_HOW_CONNECT;
  s.flags = PG_F_EPHEMERAL;
  s.ts_ns = 5'000;
  s.cookie = 99;
  s.pid = 300;
  s.tid = 301;
  s.lport = 40000;
  s.rport = 80;
  pgtest::set_ipv4(s.laddr, 10, 0, 0, 1);
  pgtest::set_ipv4(s.raddr, 10, 0, 0, 2);
  pgtest::set_cstr(s.comm, sizeof s.comm, "curl");
  pgtest::set_cstr(s.thread, sizeof s.thread, "curl-io");
  b().on_record(&s, sizeof s);

  pg_sock_event rel = pgtest::raw_sock(PG_KIND_RELEASE);
  rel.how = PG_HOW_NONE;
  rel.flags = PG_F_TIMEWAIT;
  rel.ts_ns = 9'000;
  rel.cookie = 99;
  rel.lport = 40000;
  rel.rport = 80;
  pgtest::set_ipv4(rel.raddr, 10, 0, 0, 2);
  b().on_record(&rel, sizeof rel);

  b().on_record(&rel, 10);  // truncated: counted, not trusted
  EXPECT_EQ(b().malformed(), 1u);

  auto r = records();
  ASSERT_EQ(r.size(), 2u) << out_.text();
  EXPECT_EQ(r[0].at("how").str(), "connect");
  EXPECT_TRUE(r[0].at("ephemeral").boolean());
  EXPECT_EQ(r[0].at("tid").u64(), 301u);
  EXPECT_EQ(r[0].at("thread").str(), "curl-io");
  EXPECT_EQ(r[0].at("laddr").str(), "10.0.0.1");
  EXPECT_EQ(r[0].at("raddr").str(), "10.0.0.2");
  EXPECT_EQ(r[0].at("rport").u64(), 80u);
  EXPECT_EQ(r[0].at("exe").str(), "/usr/bin/curl");
  EXPECT_EQ(r[0].at("cmdline").str(), "curl -s http://x/");
  EXPECT_EQ(r[1].at("type").str(), "release");
  EXPECT_EQ(r[1].at("duration_ns").u64(), 4'000u);
  EXPECT_EQ(r[1].at("laddr").str(), "10.0.0.1") << "release's 0.0.0.0 replaced by the assign's address";
  EXPECT_EQ(r[1].at("raddr").str(), "10.0.0.2");
  EXPECT_TRUE(r[1].at("timewait").boolean());
  EXPECT_EQ(r[1].at("pid").u64(), 300u);
}

TEST_F(Builder, ForkedChildIsNamedByItsParentsExe) {
  feed(exec_ev(200, 1, "nginx", "/usr/sbin/nginx", "nginx: master"));
  feed(fork_ev(201, 200, "nginx"));
  feed(assign_ev(1, 443, 10, 201, "nginx"));
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("pid").u64(), 201u);
  EXPECT_EQ(r[0].at("exe").str(), "/usr/sbin/nginx");
  EXPECT_EQ(r[0].at("cmdline").str(), "nginx: master");
}

TEST_F(Builder, UnknownProcessFallsBackToProc) {
  pgtest::write_file(proc_ / "4242/cmdline", "nc\0-l\0"s);
  pgtest::write_file(proc_ / "4242/comm", "nc\n");
  pgtest::write_file(proc_ / "4242/stat", "4242 (nc) S 17 1 1");
  ASSERT_EQ(symlink("/usr/bin/nc.openbsd", (proc_ / "4242/exe").c_str()), 0);
  feed(assign_ev(3, 9999, 10, 4242, "nc"));
  feed(assign_ev(4, 9998, 10, 5555, "gone"));  // exited before we looked
  auto r = records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("exe").str(), "/usr/bin/nc.openbsd");
  EXPECT_EQ(r[0].at("cmdline").str(), "nc -l");
  EXPECT_TRUE(r[1].at("exe").is_null());
  EXPECT_TRUE(r[1].at("cmdline").is_null());
  EXPECT_EQ(r[1].at("pid").u64(), 5555u) << "the pid is still known";
  EXPECT_EQ(r[1].at("comm").str(), "gone");
}

TEST_F(Builder, ReleaseOfANeverSeenSocketWithoutPortProducesNothing) {
  feed(release_ev(55, 0, 100, 9));
  EXPECT_EQ(out_.text(), "");
  EXPECT_TRUE(b().written().empty());
}

TEST_F(Builder, ReleaseOfANeverSeenSocketWithAPortHasNullDurationAndOwner) {
  SockEvent rel = release_ev(56, 33333, 100, 9);
  rel.comm = "closer";
  feed(rel);
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("type").str(), "release");
  EXPECT_EQ(r[0].at("lport").u64(), 33333u);
  EXPECT_TRUE(r[0].at("duration_ns").is_null());
  EXPECT_TRUE(r[0].at("pid").is_null());
  EXPECT_TRUE(r[0].at("comm").is_null());
}

TEST_F(Builder, AReleaseTheTableLostStillNamesItsHolderFromTheKernel) {
  // the table evicted the socket (or its assign was lost): the kernel's
  // socket state still says who took the port, and when
  pgtest::write_file(proc_ / "4242/cmdline", "curl\0-s\0"s);
  pgtest::write_file(proc_ / "4242/comm", "curl\n");
  pgtest::write_file(proc_ / "4242/stat", "4242 (curl) S 1 1 1");
  SockEvent rel = release_ev(57, 40001, 9'000, 77);
  rel.comm = "closer";
  rel.holder = 4242;
  rel.assigned_boot_ns = 1'000;
  feed(rel);
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("pid").u64(), 4242u);
  EXPECT_EQ(r[0].at("comm").str(), "curl");
  EXPECT_EQ(r[0].at("duration_ns").u64(), 8'000u);
}

TEST_F(Builder, DuplicateAssignIsDropped) {
  feed(assign_ev(8, 5000, 10, 1, "a"));
  feed(assign_ev(8, 5000, 20, 1, "a"));
  feed(release_ev(8, 5000, 110));
  auto r = records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("type").str(), "assign");
  EXPECT_EQ(r[1].at("duration_ns").u64(), 100u) << "measured from the first assign";
  EXPECT_EQ(b().written().at("assign"), 1u);
}

TEST_F(Builder, KernelAssignHasNoProcess) {
  SockEvent a = assign_ev(9, 2049, 10, 0, "");
  a.flags = PG_F_KERNEL;
  feed(a);
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].at("kernel").boolean());
  for (const char* k : {"pid", "tid", "ppid", "uid", "comm", "thread", "exe", "cmdline"})
    EXPECT_TRUE(r[0].at(k).is_null()) << k;
  EXPECT_EQ(b().table().find(9)->pid, std::nullopt) << "its release will name no one either";
}

TEST_F(Builder, ExistingWithAnOwnerIsAttributed) {
  pgtest::write_file(proc_ / "300/cmdline", "sshd\0-D\0"s);
  pgtest::write_file(proc_ / "300/comm", "sshd\n");
  pgtest::write_file(proc_ / "300/stat", "300 (sshd) S 1 300 300");
  ASSERT_EQ(symlink("/usr/sbin/sshd", (proc_ / "300/exe").c_str()), 0);
  SockEvent e = existing_ev(20, 22, /*ino=*/5555);
  e.raddr = "0.0.0.0";  // listeners have no peer
  e.uid = 0;
  b().on_existing(e, {{5555, 300}, {6666, 301}});
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  const JValue& x = r[0];
  EXPECT_EQ(x.at("type").str(), "existing");
  EXPECT_EQ(x.at("pid").u64(), 300u);
  EXPECT_EQ(x.at("comm").str(), "sshd");
  EXPECT_EQ(x.at("exe").str(), "/usr/sbin/sshd");
  EXPECT_EQ(x.at("cmdline").str(), "sshd -D");
  EXPECT_EQ(x.at("ppid").u64(), 1u);
  EXPECT_EQ(x.at("uid").u64(), 0u);
  EXPECT_EQ(x.at("state").str(), "LISTEN");
  EXPECT_TRUE(x.at("raddr").is_null());
  EXPECT_TRUE(x.at("rport").is_null());
  EXPECT_TRUE(x.at("how").is_null());
  EXPECT_EQ(b().written().at("existing"), 1u);

  // its later release names the owner, without a lifetime
  feed(release_ev(20, 22, 1'000));
  r = records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].at("pid").u64(), 300u);
  EXPECT_EQ(r[1].at("comm").str(), "sshd");
  EXPECT_TRUE(r[1].at("duration_ns").is_null());
}

TEST_F(Builder, ExistingWithoutAnOwner) {
  b().on_existing(existing_ev(21, 53, /*ino=*/0), {{0, 1}});  // ino 0 never matches
  SockEvent udp = existing_ev(22, 5353, /*ino=*/4444);
  udp.proto = Proto::Udp;
  b().on_existing(udp, {});
  auto r = records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].at("pid").is_null());
  EXPECT_TRUE(r[0].at("exe").is_null());
  EXPECT_EQ(r[0].at("state").str(), "LISTEN");
  EXPECT_EQ(r[1].find("state"), nullptr) << "udp has no tcp state";
}

TEST_F(Builder, ExistingThenAssignOfTheSamePortIsReportedOnce) {
  b().on_existing(existing_ev(30, 8080, 1), {{1, 77}});
  feed(assign_ev(30, 8080, 20, 77, "srv"));
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("type").str(), "existing");
}

TEST_F(Builder, FiltersHideExistingRecordsAndTheirRelease) {
  Filters f;
  f.pid = 999;
  make(f);
  pgtest::write_file(proc_ / "300/cmdline", "sshd\0"s);
  pgtest::write_file(proc_ / "300/comm", "sshd\n");
  pgtest::write_file(proc_ / "999/cmdline", "mine\0"s);
  pgtest::write_file(proc_ / "999/comm", "mine\n");
  b().on_existing(existing_ev(40, 22, 5), {{5, 300}, {6, 999}});
  b().on_existing(existing_ev(41, 8080, 6), {{5, 300}, {6, 999}});
  feed(release_ev(40, 22, 100));
  feed(release_ev(41, 8080, 100));
  auto r = records();
  ASSERT_EQ(r.size(), 2u) << out_.text();
  EXPECT_EQ(r[0].at("type").str(), "existing");
  EXPECT_EQ(r[0].at("pid").u64(), 999u);
  EXPECT_EQ(r[1].at("type").str(), "release");
  EXPECT_EQ(r[1].at("pid").u64(), 999u);
  EXPECT_EQ(b().table().size(), 0u);
}

TEST_F(Builder, PortFilterHidesExistingRecords) {
  Filters f;
  f.port_lo = 8000;
  f.port_hi = 8999;
  make(f);
  b().on_existing(existing_ev(50, 22, 0), {});
  b().on_existing(existing_ev(51, 8080, 0), {});
  feed(release_ev(50, 22, 100));
  auto r = records();
  ASSERT_EQ(r.size(), 1u) << out_.text();
  EXPECT_EQ(r[0].at("lport").u64(), 8080u);
}

TEST_F(Builder, CgroupFilterHidesEveryExistingRecord) {
  Filters f;
  f.cgroup = "/system.slice/x.service";
  make(f);
  b().on_existing(existing_ev(60, 80, 0), {});
  feed(release_ev(60, 80, 100));
  EXPECT_EQ(out_.text(), "");
}

TEST_F(Builder, ReleaseOfAnUnknownHolderUnderOwnerFiltersIsHidden) {
  for (int which = 0; which < 4; which++) {
    Filters f;
    if (which == 0) f.pid = 5;
    if (which == 1) f.comm = "x";
    if (which == 2) f.cgroup = "/a";
    if (which == 3) f.netns = 1;
    out_.clear();
    make(f);
    feed(release_ev(70, 40000, 100, 5));
    EXPECT_EQ(out_.text(), "") << "filter " << which;
  }
}

TEST_F(Builder, ReleaseOfAnUnknownHolderIsCheckedAgainstSocketFilters) {
  Filters f;
  f.port_lo = 40000;
  f.port_hi = 40010;
  f.proto = Proto::Tcp;
  f.family = Family::Ipv4;
  make(f);
  feed(release_ev(80, 39999, 100));  // below the range
  feed(release_ev(81, 40011, 100));  // above
  SockEvent udp = release_ev(82, 40005, 100);
  udp.proto = Proto::Udp;
  feed(udp);
  SockEvent v6 = release_ev(83, 40005, 100);
  v6.family = Family::Ipv6;
  v6.laddr = "::";
  feed(v6);
  feed(release_ev(84, 40005, 100));  // matches
  auto r = records();
  ASSERT_EQ(r.size(), 1u) << out_.text();
  EXPECT_EQ(r[0].at("sock").u64(), 84u);
}

TEST_F(Builder, ContainerFromTheCgroupTree) {
  TempDir cg;
  const std::string id(64, 'a');
  const std::string scope = "system.slice/docker-" + id + ".scope";
  std::filesystem::create_directories(cg / scope);
  struct stat st {};
  ASSERT_EQ(stat((cg / scope).c_str(), &st), 0);
  make({}, CgroupResolver(cg.path()));
  SockEvent a = assign_ev(90, 8080, 10, 1, "app");
  a.cgroup_id = st.st_ino;
  feed(a);
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("cgroup_id").u64(), static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(r[0].at("container").str(), "docker://" + id);
}

TEST_F(Builder, CgroupIdWithoutResolverHasNoContainer) {
  SockEvent a = assign_ev(91, 8080, 10, 1, "app");
  a.cgroup_id = 12345;
  feed(a);
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("cgroup_id").u64(), 12345u);
  EXPECT_TRUE(r[0].at("container").is_null());
}

TEST_F(Builder, TaskEventsProduceNoRecords) {
  feed(exec_ev(1, 0, "init", "/sbin/init", "init"));
  feed(fork_ev(2, 1, "init"));
  TaskEvent exit{};
  exit.kind = TaskEvent::Kind::Exit;
  exit.pid = 2;
  feed(exit);
  EXPECT_EQ(out_.text(), "");
  EXPECT_TRUE(b().written().empty());
  EXPECT_EQ(procs_.lookup(1)->exe, "/sbin/init");
}

TEST(TcpStateName, KnownAndUnknown) {
  EXPECT_EQ(tcp_state_name(1), "ESTABLISHED");
  EXPECT_EQ(tcp_state_name(6), "TIME_WAIT");
  EXPECT_EQ(tcp_state_name(10), "LISTEN");
  EXPECT_EQ(tcp_state_name(12), "NEW_SYN_RECV");
  EXPECT_EQ(tcp_state_name(0), "?");
  EXPECT_EQ(tcp_state_name(13), "?");
  EXPECT_EQ(tcp_state_name(255), "?");
}

TEST_F(Builder, OccupancyWarningOncePerCrossingAndRearmed) {
  int lookups = 0;
  b().warn_occupancy(50, [&](uint32_t) {
    lookups++;
    return std::make_pair<uint16_t, uint16_t>(40000, 40003);  // four ports
  });
  auto warnings = [&] {
    size_t n = 0;
    for (const auto& r : records()) n += r.at("type").str() == "warning";
    return n;
  };
  feed(assign_ev(1, 40000, 100, 7, "a"));
  feed(assign_ev(2, 22, 101, 7, "a"));  // outside the range: does not count
  EXPECT_EQ(warnings(), 0u);
  feed(assign_ev(3, 40001, 102, 7, "a"));  // 2 of 4: 50%
  EXPECT_EQ(warnings(), 1u);
  feed(assign_ev(4, 40002, 103, 7, "a"));
  EXPECT_EQ(warnings(), 1u) << "one warning per crossing";
  feed(release_ev(4, 40002, 104));
  feed(release_ev(3, 40001, 105));  // 1 of 4: below 90% of the mark, re-armed
  feed(assign_ev(5, 40001, 106, 7, "a"));
  EXPECT_EQ(warnings(), 2u);
  auto recs = records();
  const JValue* w = nullptr;
  for (const auto& r : recs)
    if (r.at("type").str() == "warning") w = &r;
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->at("what").str(), "ephemeral_occupancy");
  EXPECT_EQ(w->at("held").u64(), 2u);
  EXPECT_EQ(w->at("percent").u64(), 50u);
  EXPECT_EQ(lookups, 1) << "a namespace's range is read once";
}

// The namespace's range read by the kernel at the event wins over a value
// read earlier: a new namespace can reuse a gone one's inode number.
TEST_F(Builder, TheKernelsRangeAtTheEventReplacesAStaleOne) {
  int lookups = 0;
  b().warn_occupancy(50, [&](uint32_t) {
    lookups++;
    return std::make_pair<uint16_t, uint16_t>(32768, 60999);  // the old namespace's
  });
  auto warnings = [&] {
    size_t n = 0;
    for (const auto& r : records()) n += r.at("type").str() == "warning";
    return n;
  };
  feed(assign_ev(1, 40000, 100, 7, "a"));  // no range in the event: read once, the wide one
  EXPECT_EQ(lookups, 1);
  SockEvent e = assign_ev(2, 40001, 101, 7, "a");
  e.range_lo = 40000;
  e.range_hi = 40003;
  feed(e);  // 2 of the 4 ports the kernel says the range has now
  EXPECT_EQ(warnings(), 1u);
  EXPECT_EQ(lookups, 1) << "no /proc read when the event carries the range";
  for (const auto& r : records()) {
    if (r.at("type").str() != "warning") continue;
    ASSERT_EQ(r.at("range").arr.size(), 2u);
    EXPECT_EQ(r.at("range").arr[1].u64(), 40003u);
  }
}
