#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kernel/events.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::raw_sock;
using pgtest::set_cstr;
using pgtest::set_ipv4;
using namespace std::string_view_literals;

namespace {

const SockEvent& as_sock(const std::optional<Event>& ev) { return std::get<SockEvent>(*ev); }
const TaskEvent& as_task(const std::optional<Event>& ev) { return std::get<TaskEvent>(*ev); }

std::unique_ptr<pg_exec_event> raw_exec() {
  auto r = std::make_unique<pg_exec_event>();  // value-initialized: all zero
  r->task.kind = PG_KIND_EXEC;
  return r;
}

void set_bytes(char* dst, std::string_view bytes) { std::memcpy(dst, bytes.data(), bytes.size()); }

// (data, size) of a literal with embedded NULs
struct S {
  explicit S(std::string_view v) : v(v) {}
  std::string_view v;
};
std::string exe_from_components(S s) { return portghost::exe_from_components(s.v.data(), s.v.size()); }
std::string cmdline_from_args(S s) { return portghost::cmdline_from_args(s.v.data(), s.v.size()); }

}  // namespace

TEST(Decode, AssignIpv4EveryField) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  r.how = PG_HOW_CONNECT;
  r.proto = 6;
  r.family = 2;
  r.flags = PG_F_EPHEMERAL | 0x100;  // bits userspace does not know pass through
  r.state = 2;
  r.ts_ns = 123456789012345ULL;
  r.cookie = 0xdeadbeefcafef00dULL;
  r.cgroup_id = 4242;
  r.pid = 1000;
  r.tid = 1001;
  r.ppid = 999;
  r.uid = 65534;
  r.netns = 4026531840u;
  r.lport = 49152;
  r.rport = 443;
  r.ino = 777;
  set_ipv4(r.laddr, 10, 1, 2, 3);
  set_ipv4(r.raddr, 93, 184, 216, 34);
  set_cstr(r.comm, sizeof r.comm, "curl");
  set_cstr(r.thread, sizeof r.thread, "curl-worker");

  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  ASSERT_TRUE(std::holds_alternative<SockEvent>(*ev));
  const SockEvent& e = as_sock(ev);
  EXPECT_EQ(e.kind, SockEvent::Kind::Assign);
  EXPECT_EQ(e.how, How::Connect);
  EXPECT_EQ(e.proto, Proto::Tcp);
  EXPECT_EQ(e.family, Family::Ipv4);
  EXPECT_EQ(e.flags, PG_F_EPHEMERAL | 0x100);
  EXPECT_TRUE(e.has(PG_F_EPHEMERAL));
  EXPECT_FALSE(e.has(PG_F_KERNEL));
  EXPECT_EQ(e.state, 2);
  EXPECT_EQ(e.ts_boot_ns, 123456789012345ULL);
  EXPECT_EQ(e.cookie, 0xdeadbeefcafef00dULL);
  EXPECT_EQ(e.cgroup_id, 4242u);
  EXPECT_EQ(e.pid, 1000u);
  EXPECT_EQ(e.tid, 1001u);
  EXPECT_EQ(e.ppid, 999u);
  EXPECT_EQ(e.uid, 65534u);
  EXPECT_EQ(e.netns, 4026531840u);
  EXPECT_EQ(e.lport, 49152);
  EXPECT_EQ(e.rport, 443);
  EXPECT_EQ(e.ino, 777u);
  EXPECT_EQ(e.laddr, "10.1.2.3");
  EXPECT_EQ(e.raddr, "93.184.216.34");
  EXPECT_EQ(e.comm, "curl");
  EXPECT_EQ(e.thread, "curl-worker");
}

TEST(Decode, ReleaseIpv6Udp) {
  pg_sock_event r = raw_sock(PG_KIND_RELEASE);
  r.how = PG_HOW_NONE;
  r.proto = 17;
  r.family = 10;
  r.flags = PG_F_TIMEWAIT | PG_F_KERNEL;
  r.lport = 5353;
  r.rport = 53;
  r.laddr[15] = 1;  // ::1
  // 2001:db8::53
  r.raddr[0] = 0x20;
  r.raddr[1] = 0x01;
  r.raddr[2] = 0x0d;
  r.raddr[3] = 0xb8;
  r.raddr[15] = 0x53;
  set_cstr(r.comm, sizeof r.comm, "resolver");

  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  const SockEvent& e = as_sock(ev);
  EXPECT_EQ(e.kind, SockEvent::Kind::Release);
  EXPECT_EQ(e.how, How::None);
  EXPECT_EQ(e.proto, Proto::Udp);
  EXPECT_EQ(e.family, Family::Ipv6);
  EXPECT_TRUE(e.has(PG_F_TIMEWAIT));
  EXPECT_TRUE(e.has(PG_F_KERNEL));
  EXPECT_FALSE(e.has(PG_F_EPHEMERAL));
  EXPECT_EQ(e.laddr, "::1");
  EXPECT_EQ(e.raddr, "2001:db8::53");
  EXPECT_EQ(e.lport, 5353);
  EXPECT_EQ(e.rport, 53);
  EXPECT_EQ(e.comm, "resolver");
  EXPECT_EQ(e.thread, "");
}

TEST(Decode, ExistingKindAndMappedIpv4Address) {
  pg_sock_event r = raw_sock(PG_KIND_EXISTING);
  r.family = 10;
  r.state = 10;
  r.ino = 31337;
  // ::ffff:10.0.0.1
  r.laddr[10] = 0xff;
  r.laddr[11] = 0xff;
  r.laddr[12] = 10;
  r.laddr[15] = 1;
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  const SockEvent& e = as_sock(ev);
  EXPECT_EQ(e.kind, SockEvent::Kind::Existing);
  EXPECT_EQ(e.state, 10);
  EXPECT_EQ(e.ino, 31337u);
  EXPECT_EQ(e.laddr, "::ffff:10.0.0.1");
  EXPECT_EQ(e.raddr, "") << "unset peer decodes as empty";
}

TEST(Decode, PeerIsEmptyOnlyWhenAddressAndPortAreBothUnset) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  auto none = decode(&r, sizeof r);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(as_sock(none).raddr, "");
  EXPECT_EQ(as_sock(none).laddr, "0.0.0.0");

  r.rport = 80;  // port set, address unspecified
  auto port_only = decode(&r, sizeof r);
  ASSERT_TRUE(port_only.has_value());
  EXPECT_EQ(as_sock(port_only).raddr, "0.0.0.0");

  r.rport = 0;
  set_ipv4(r.raddr, 192, 168, 0, 1);  // address set, port 0
  auto addr_only = decode(&r, sizeof r);
  ASSERT_TRUE(addr_only.has_value());
  EXPECT_EQ(as_sock(addr_only).raddr, "192.168.0.1");
}

TEST(Decode, Ipv4IgnoresBytesBeyondTheFirstFour) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  set_ipv4(r.laddr, 127, 0, 0, 1);
  r.laddr[4] = 0xff;  // garbage after the IPv4 address
  r.raddr[8] = 0xff;  // garbage only beyond the IPv4 address: still unset
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_sock(ev).laddr, "127.0.0.1");
  EXPECT_EQ(as_sock(ev).raddr, "");
}

TEST(Decode, CommWithoutTerminatorIsBoundedByItsArray) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  std::memset(r.comm, 'a', sizeof r.comm);      // 16 chars, no NUL
  std::memset(r.thread, 'b', sizeof r.thread);  // followed by nothing
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_sock(ev).comm, std::string(16, 'a'));
  EXPECT_EQ(as_sock(ev).thread, std::string(16, 'b'));
}

TEST(Decode, EveryHowValue) {
  const std::pair<uint8_t, How> cases[] = {{PG_HOW_NONE, How::None},       {PG_HOW_BIND, How::Bind},
                                           {PG_HOW_CONNECT, How::Connect}, {PG_HOW_LISTEN, How::Listen},
                                           {PG_HOW_SENDMSG, How::Sendmsg}, {PG_HOW_FASTOPEN, How::Fastopen}};
  for (auto [raw, how] : cases) {
    pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
    r.how = raw;
    auto ev = decode(&r, sizeof r);
    ASSERT_TRUE(ev.has_value()) << int(raw);
    EXPECT_EQ(as_sock(ev).how, how);
  }
}

TEST(Decode, LongerRecordIsAccepted) {
  // ring buffer records may carry padding after the struct
  std::vector<uint8_t> buf(sizeof(pg_sock_event) + 8, 0xee);
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  r.lport = 8080;
  std::memcpy(buf.data(), &r, sizeof r);
  auto ev = decode(buf.data(), buf.size());
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(as_sock(ev).lport, 8080);
}

TEST(Decode, TooShortRecordsAreRejected) {
  pg_sock_event s = raw_sock(PG_KIND_ASSIGN);
  EXPECT_FALSE(decode(&s, sizeof s - 1).has_value());
  s.kind = PG_KIND_RELEASE;
  EXPECT_FALSE(decode(&s, sizeof s - 1).has_value());
  s.kind = PG_KIND_EXISTING;
  EXPECT_FALSE(decode(&s, 1).has_value());

  pg_task_event t{};
  t.kind = PG_KIND_FORK;
  EXPECT_FALSE(decode(&t, sizeof t - 1).has_value());
  t.kind = PG_KIND_EXIT;
  EXPECT_FALSE(decode(&t, sizeof t - 1).has_value());
  EXPECT_TRUE(decode(&t, sizeof t).has_value());

  auto x = raw_exec();
  // an exec is sent up to the end of its args: no shorter
  x->args_len = 10;
  EXPECT_FALSE(decode(x.get(), kExecHeadSize + 9).has_value());
  EXPECT_TRUE(decode(x.get(), kExecHeadSize + 10).has_value());
  x->args_len = 0;
  EXPECT_FALSE(decode(x.get(), kExecHeadSize - 1).has_value());
  EXPECT_TRUE(decode(x.get(), kExecHeadSize).has_value());
  // the head of an exec alone (a task-sized record) is not an exec
  EXPECT_FALSE(decode(x.get(), sizeof(pg_task_event)).has_value());
  EXPECT_TRUE(decode(x.get(), sizeof(pg_exec_event)).has_value());

  EXPECT_FALSE(decode(&s, 0).has_value());
  EXPECT_FALSE(decode(nullptr, 128).has_value());
}

TEST(Decode, UnknownKindsAreRejected) {
  for (int kind : {0, 8, 9, 0x7f, 0xff}) {
    pg_sock_event r = raw_sock(static_cast<uint8_t>(kind));
    EXPECT_FALSE(decode(&r, sizeof r).has_value()) << kind;
  }
}

TEST(Decode, InvalidSockFieldsAreRejected) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  r.proto = 33;  // dccp: no port space portghost follows
  EXPECT_FALSE(decode(&r, sizeof r).has_value());
  r = raw_sock(PG_KIND_ASSIGN);
  r.family = 1;  // AF_UNIX
  EXPECT_FALSE(decode(&r, sizeof r).has_value());
  r = raw_sock(PG_KIND_RELEASE);
  r.how = PG_HOW_FASTOPEN + 1;
  EXPECT_FALSE(decode(&r, sizeof r).has_value());
}

TEST(Decode, SctpIsAPortSpace) {
  pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
  r.proto = PG_IPPROTO_SCTP;
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  const auto& e = std::get<SockEvent>(*ev);
  EXPECT_EQ(e.proto, Proto::Sctp);
  EXPECT_EQ(to_string(e.proto), "sctp");
  EXPECT_EQ(proto_from_string("sctp"), Proto::Sctp);
}

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

TEST(Decode, ExhaustedIsASockEvent) {
  pg_sock_event r = raw_sock(PG_KIND_EXHAUSTED);
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  ASSERT_TRUE(std::holds_alternative<SockEvent>(*ev));
  EXPECT_EQ(std::get<SockEvent>(*ev).kind, SockEvent::Kind::Exhausted);
}
