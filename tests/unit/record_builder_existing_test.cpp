// The record builder: sockets from before the start, filters, containers, occupancy.
#include "builder_fixture.hpp"

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
