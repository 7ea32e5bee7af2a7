// The record builder: assigns, releases and their attribution.
#include "builder_fixture.hpp"

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

TEST(TcpStateName, KnownAndUnknown) {
  EXPECT_EQ(tcp_state_name(1), "ESTABLISHED");
  EXPECT_EQ(tcp_state_name(6), "TIME_WAIT");
  EXPECT_EQ(tcp_state_name(10), "LISTEN");
  EXPECT_EQ(tcp_state_name(12), "NEW_SYN_RECV");
  EXPECT_EQ(tcp_state_name(0), "?");
  EXPECT_EQ(tcp_state_name(13), "?");
  EXPECT_EQ(tcp_state_name(255), "?");
}
