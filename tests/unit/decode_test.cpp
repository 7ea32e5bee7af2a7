// Decoding socket records: every field, and records too short or unknown.
#include "decode_fixture.hpp"

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

TEST(Decode, ExhaustedIsASockEvent) {
  pg_sock_event r = raw_sock(PG_KIND_EXHAUSTED);
  auto ev = decode(&r, sizeof r);
  ASSERT_TRUE(ev.has_value());
  ASSERT_TRUE(std::holds_alternative<SockEvent>(*ev));
  EXPECT_EQ(std::get<SockEvent>(*ev).kind, SockEvent::Kind::Exhausted);
}

// The address spellings the socket table and who compare (common/net).
TEST(Addresses, UnspecifiedAndIpv4Mapped) {
  EXPECT_TRUE(unspecified_addr("0.0.0.0"));
  EXPECT_TRUE(unspecified_addr("::"));
  EXPECT_FALSE(unspecified_addr(""));
  EXPECT_FALSE(unspecified_addr("::1"));
  EXPECT_FALSE(unspecified_addr("0.0.0.1"));
  EXPECT_EQ(unmapped_ipv4("::ffff:198.18.0.2"), "198.18.0.2");
  EXPECT_EQ(unmapped_ipv4("198.18.0.2"), "198.18.0.2");
  EXPECT_EQ(unmapped_ipv4("::ffff:c612:2"), "::ffff:c612:2") << "only the dotted spelling";
  EXPECT_EQ(unmapped_ipv4("::ffff:"), "::ffff:");
  EXPECT_EQ(unmapped_ipv4("2001:db8::ffff:1.2.3.4"), "2001:db8::ffff:1.2.3.4");
}

// One SockEvent decoded into again and again (the hot path): each record's
// addresses are its own, whatever the one before named.
TEST(Decode, IntoTheSameEventEachRecordGetsItsOwnAddresses) {
  SockEvent e{};
  auto into = [&](uint8_t family, const uint8_t(&l)[16], const uint8_t(&rr)[16], uint16_t rport) {
    pg_sock_event r = raw_sock(PG_KIND_ASSIGN);
    r.family = family;
    std::memcpy(r.laddr, l, 16);
    std::memcpy(r.raddr, rr, 16);
    r.rport = rport;
    EXPECT_TRUE(decode_sock_into(&r, sizeof r, e));
  };
  uint8_t a[16] = {127, 0, 0, 1}, b[16] = {10, 1, 2, 3}, zero[16] = {};
  uint8_t v6[16] = {127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};  // IPv4 a's first bytes
  into(PG_AF_INET, a, b, 80);
  EXPECT_EQ(e.laddr, "127.0.0.1");
  EXPECT_EQ(e.raddr, "10.1.2.3");
  into(PG_AF_INET, a, b, 80);
  EXPECT_EQ(e.laddr, "127.0.0.1");
  EXPECT_EQ(e.raddr, "10.1.2.3");
  into(PG_AF_INET, b, a, 80);
  EXPECT_EQ(e.laddr, "10.1.2.3");
  EXPECT_EQ(e.raddr, "127.0.0.1");
  into(PG_AF_INET6, v6, v6, 80);
  EXPECT_EQ(e.laddr, "7f00:1::9");
  EXPECT_EQ(e.raddr, "7f00:1::9");
  uint8_t v6b[16];
  std::memcpy(v6b, v6, 16);
  v6b[15] = 10;  // only the last byte differs
  into(PG_AF_INET6, v6b, v6b, 80);
  EXPECT_EQ(e.laddr, "7f00:1::a");
  EXPECT_EQ(e.raddr, "7f00:1::a");
  into(PG_AF_INET, a, zero, 0);
  EXPECT_EQ(e.laddr, "127.0.0.1");
  EXPECT_TRUE(e.raddr.empty());
  // text written into the event by someone else is not taken for the memo's
  e.laddr = "192.0.2.7";
  into(PG_AF_INET, a, b, 80);
  EXPECT_EQ(e.laddr, "127.0.0.1");
  EXPECT_EQ(e.raddr, "10.1.2.3");
}
