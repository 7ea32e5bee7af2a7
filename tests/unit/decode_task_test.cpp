// Decoding process records (fork, exit, exec) and the text helpers.
#include "decode_fixture.hpp"

TEST(Decode, ForkAndExit) {
  pg_task_event t{};
  t.kind = PG_KIND_FORK;
  t.pid = 4321;
  t.ts_ns = 55;
  t.ppid = 1234;
  t.uid = 1000;
  set_cstr(t.comm, sizeof t.comm, "bash");
  auto ev = decode(&t, sizeof t);
  ASSERT_TRUE(ev.has_value());
  ASSERT_TRUE(std::holds_alternative<TaskEvent>(*ev));
  const TaskEvent& f = as_task(ev);
  EXPECT_EQ(f.kind, TaskEvent::Kind::Fork);
  EXPECT_EQ(f.pid, 4321u);
  EXPECT_EQ(f.ts_boot_ns, 55u);
  EXPECT_EQ(f.ppid, 1234u);
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.comm, "bash");
  EXPECT_EQ(f.exe, "");
  EXPECT_EQ(f.cmdline, "");

  t.kind = PG_KIND_EXIT;
  auto ex = decode(&t, sizeof t);
  ASSERT_TRUE(ex.has_value());
  EXPECT_EQ(as_task(ex).kind, TaskEvent::Kind::Exit);
  EXPECT_EQ(as_task(ex).pid, 4321u);
}

TEST(Decode, ExecPathAndArguments) {
  auto r = raw_exec();
  r->task.pid = 77;
  r->task.ppid = 76;
  r->task.uid = 0;
  r->task.ts_ns = 99;
  set_cstr(r->task.comm, sizeof r->task.comm, "curl");
  static const char exe[] = "curl\0bin\0usr\0";
  static const char args[] = "curl\0-s\0http://example.com/\0";
  set_bytes(r->exe, std::string_view(exe, sizeof exe - 1));
  r->exe_len = sizeof exe - 1;
  set_bytes(r->args, std::string_view(args, sizeof args - 1));
  r->args_len = sizeof args - 1;

  auto ev = decode(r.get(), sizeof *r);
  ASSERT_TRUE(ev.has_value());
  const TaskEvent& t = as_task(ev);
  EXPECT_EQ(t.kind, TaskEvent::Kind::Exec);
  EXPECT_EQ(t.pid, 77u);
  EXPECT_EQ(t.ppid, 76u);
  EXPECT_EQ(t.ts_boot_ns, 99u);
  EXPECT_EQ(t.comm, "curl");
  EXPECT_EQ(t.exe, "/usr/bin/curl");
  EXPECT_EQ(t.cmdline, "curl -s http://example.com/");
  EXPECT_FALSE(t.exe_truncated);
  EXPECT_FALSE(t.args_truncated);
  EXPECT_FALSE(t.args_unreadable);
}

TEST(Decode, ExecOnlyUsesTheBytesItWasGiven) {
  auto r = raw_exec();
  static const char exe[] = "nc\0bin\0";
  set_bytes(r->exe, std::string_view(exe, sizeof exe - 1));
  set_bytes(r->exe + sizeof exe - 1, std::string_view("junk\0", 5));  // beyond exe_len
  r->exe_len = sizeof exe - 1;
  set_bytes(r->args, std::string_view("nc\0-l\0junk", 10));
  r->args_len = 6;  // "nc\0-l\0"
  auto ev = decode(r.get(), sizeof *r);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_task(ev).exe, "/bin/nc");
  EXPECT_EQ(as_task(ev).cmdline, "nc -l");
}

TEST(Decode, ExecFlagsAndTruncatedPath) {
  auto r = raw_exec();
  static const char exe[] = "tool\0deep\0";
  set_bytes(r->exe, std::string_view(exe, sizeof exe - 1));
  r->exe_len = sizeof exe - 1;
  r->flags = PG_X_EXE_TRUNCATED | PG_X_ARGS_TRUNCATED | PG_X_ARGS_UNREADABLE;
  auto ev = decode(r.get(), sizeof *r);
  ASSERT_TRUE(ev.has_value());
  const TaskEvent& t = as_task(ev);
  EXPECT_EQ(t.exe, "/.../deep/tool");
  EXPECT_TRUE(t.exe_truncated);
  EXPECT_TRUE(t.args_truncated);
  EXPECT_TRUE(t.args_unreadable);
  EXPECT_EQ(t.cmdline, "");
}

TEST(Decode, ExecLengthsAreClampedToTheBuffers) {
  auto r = raw_exec();
  std::memset(r->exe, 'e', sizeof r->exe);  // one component filling the buffer
  r->exe_len = 0xffff;
  std::memset(r->args, 'a', sizeof r->args);
  r->args_len = PG_ARGS_LIMIT;
  auto ev = decode(r.get(), sizeof *r);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_task(ev).exe, "/" + std::string(PG_EXE_BUF, 'e'));
  EXPECT_EQ(as_task(ev).cmdline, std::string(PG_ARGS_LIMIT, 'a'));
  // args longer than the buffer, or than the record, are refused, not read
  r->args_len = PG_ARGS_LIMIT + 1;
  EXPECT_FALSE(decode(r.get(), sizeof *r).has_value());
}

TEST(Decode, ExecArgsAreReadOnlyUpToTheirLength) {
  auto r = raw_exec();
  std::memcpy(r->args, "ls\0-l\0", 6);
  r->args_len = 6;
  std::memset(r->args + 6, 'X', 100);  // what an earlier exec left in the kernel's scratch
  auto ev = decode(r.get(), kExecHeadSize + 6);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_task(ev).cmdline, "ls -l");
}

TEST(DecodeHelpers, ExeFromComponents) {
  EXPECT_EQ(exe_from_components(S("curl\0bin\0usr\0"sv)), "/usr/bin/curl");
  EXPECT_EQ(exe_from_components(S("curl\0bin\0usr"sv)), "/usr/bin/curl") << "last NUL optional";
  EXPECT_EQ(exe_from_components(S("init\0"sv)), "/init");
  EXPECT_EQ(exe_from_components(S("a\0\0b\0"sv)), "/b/a") << "empty components skipped";
  EXPECT_EQ(exe_from_components(S(""sv)), "");
  EXPECT_EQ(exe_from_components(S("\0\0"sv)), "");
  EXPECT_EQ(exe_from_components(S("my prog\0x y\0"sv)), "/x y/my prog");
}

TEST(DecodeHelpers, CmdlineFromArgs) {
  EXPECT_EQ(cmdline_from_args(S("a\0b\0"sv)), "a b");
  EXPECT_EQ(cmdline_from_args(S("nc\0-l\0-p\0008080\0"sv)), "nc -l -p 8080");
  EXPECT_EQ(cmdline_from_args(S("a\0b"sv)), "a b");
  EXPECT_EQ(cmdline_from_args(S("x\0\0\0"sv)), "x") << "trailing NULs dropped";
  EXPECT_EQ(cmdline_from_args(S("a\0\0b\0"sv)), "a  b") << "an empty argument stays visible";
  EXPECT_EQ(cmdline_from_args(S("\0\0"sv)), "");
  EXPECT_EQ(cmdline_from_args(S(""sv)), "");
}

TEST(DecodeHelpers, FromCstrAndAddresses) {
  EXPECT_EQ(from_cstr("abc\0def", 7), "abc");
  EXPECT_EQ(from_cstr("abcdef", 3), "abc");

  uint8_t a[16] = {};
  EXPECT_TRUE(addr_is_unspecified(Family::Ipv4, a));
  EXPECT_TRUE(addr_is_unspecified(Family::Ipv6, a));
  EXPECT_EQ(format_addr(Family::Ipv4, a), "0.0.0.0");
  EXPECT_EQ(format_addr(Family::Ipv6, a), "::");
  a[8] = 1;
  EXPECT_TRUE(addr_is_unspecified(Family::Ipv4, a)) << "only 4 bytes count for IPv4";
  EXPECT_FALSE(addr_is_unspecified(Family::Ipv6, a));
  EXPECT_TRUE(addr_text_unspecified("0.0.0.0"));
  EXPECT_TRUE(addr_text_unspecified("::"));
  EXPECT_FALSE(addr_text_unspecified("::1"));
  EXPECT_FALSE(addr_text_unspecified(""));
}

TEST(DecodeHelpers, EnumNames) {
  EXPECT_EQ(to_string(Proto::Tcp), "tcp");
  EXPECT_EQ(to_string(Proto::Udp), "udp");
  EXPECT_EQ(to_string(Family::Ipv4), "ipv4");
  EXPECT_EQ(to_string(Family::Ipv6), "ipv6");
  EXPECT_EQ(to_string(How::Bind), "bind");
  EXPECT_EQ(to_string(How::Connect), "connect");
  EXPECT_EQ(to_string(How::Listen), "listen");
  EXPECT_EQ(to_string(How::Sendmsg), "sendmsg");
  EXPECT_EQ(to_string(How::Fastopen), "fastopen");
  EXPECT_EQ(to_string(How::None), "unknown");
}
