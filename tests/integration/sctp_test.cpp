// Root integration tests of SCTP's ports (sctp_do_bind, where fexit works
// and the sctp module is loaded), and of its sockets under reconciliation.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

// Item 3: SCTP binds through its own sk_prot->bind, where no inet bind hook
// runs. Where fexit works and the sctp module was loaded before the start,
// its ports are assigned (bind, and the autobind of a connect) and released
// like any other, and an accepted socket, which shares its listener's port,
// writes nothing; elsewhere the start record says SCTP is not seen.
TEST_F(Holes, SctpPortsAreAssignedAndReleasedWhereFexitSeesThem) {
  const std::string path = "sctp port taken, released or not found";
  ASSERT_TRUE(start()["paths"].contains(path)) << start()["paths"].dump();
  if (!start()["paths"][path].is_string()) {
    EXPECT_TRUE(uncaught_mentions(start(), "sctp")) << start()["uncaught"].dump();
    return;
  }
  int srv = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(srv, 0) << "SCTP is traced here, yet no SCTP socket: " << strerror(errno);
  auto any = loop4(0);
  ASSERT_EQ(bind(srv, sa(any), sizeof any), 0) << strerror(errno);
  uint16_t port = local_port(srv);
  ASSERT_EQ(listen(srv, 4), 0) << strerror(errno);
  int cli = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(cli, 0);
  auto dst = loop4(port);
  ASSERT_EQ(connect(cli, sa(dst), sizeof dst), 0) << strerror(errno);
  uint16_t cport = local_port(cli);
  int acc = accept(srv, nullptr, nullptr);
  ASSERT_GE(acc, 0) << strerror(errno);
  uint16_t fixed = free_tcp_port();
  int fix = socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP);
  ASSERT_GE(fix, 0);
  sockaddr_in6 f6{};
  f6.sin6_family = AF_INET6;
  f6.sin6_port = htons(fixed);
  f6.sin6_addr = in6addr_loopback;
  ASSERT_EQ(bind(fix, sa(f6), sizeof f6), 0) << strerror(errno);
  close(acc);
  close(cli);
  close(srv);
  close(fix);

  auto assign_of = [&](uint16_t p) {
    auto a =
        t().wait_for([&](const Json& j) { return j["type"] == "assign" && j["proto"] == "sctp" && j["lport"] == p; });
    EXPECT_TRUE(a) << "no sctp assign of port " << p;
    return a.value_or(Json::object());
  };
  Json a_srv = assign_of(port), a_cli = assign_of(cport), a_fix = assign_of(fixed);
  EXPECT_EQ(a_srv["how"], "bind");
  EXPECT_EQ(a_srv["ephemeral"], true);
  EXPECT_EQ(a_srv["pid"], getpid());
  EXPECT_EQ(a_srv["family"], "ipv4");
  EXPECT_EQ(a_cli["how"], "connect");
  EXPECT_EQ(a_cli["ephemeral"], true);
  EXPECT_EQ(a_fix["how"], "bind");
  EXPECT_EQ(a_fix["ephemeral"], false);
  EXPECT_EQ(a_fix["family"], "ipv6");
  for (const Json* a : {&a_srv, &a_cli, &a_fix}) {
    if (!a->contains("sock")) continue;
    uint64_t sock = (*a)["sock"].get<uint64_t>();
    Json r = wait("release", sock);
    EXPECT_EQ(r["proto"], "sctp");
    EXPECT_EQ(r["lport"], (*a)["lport"]);
    EXPECT_EQ(of_sock("assign", sock).size(), 1u) << "sock " << sock;
  }
  // the accepted socket shares the listener's port: no record of its own
  auto on_port = t().all([&](const Json& j) {
    return (j["type"] == "assign" || j["type"] == "release") && j["proto"] == "sctp" && j["lport"] == port;
  });
  EXPECT_EQ(on_port.size(), 2u) << "the listener's assign and release only";
}

// Items 3 and 7: SCTP sockets hold no socket storage, which reconciliation
// walks where the kernel allows it: a live SCTP socket is never judged gone.
TEST_F(Holes, ALiveSctpSocketIsNotReconciledAway) {
  if (!start()["paths"]["sctp port taken, released or not found"].is_string()) {
    EXPECT_TRUE(uncaught_mentions(start(), "sctp")) << start()["uncaught"].dump();
    return;
  }
  Tracer tr({"--no-existing", "--reconcile", "1", "--comm", process_comm()});
  ASSERT_TRUE(tr.wait_started()) << tr.stderr_text();
  int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  ASSERT_GE(fd, 0) << strerror(errno);
  auto any = loop4(0);
  ASSERT_EQ(bind(fd, sa(any), sizeof any), 0) << strerror(errno);
  uint16_t port = local_port(fd);
  auto a =
      tr.wait_for([&](const Json& j) { return j["type"] == "assign" && j["proto"] == "sctp" && j["lport"] == port; });
  ASSERT_TRUE(a) << "no sctp assign of port " << port;
  uint64_t sock = (*a)["sock"].get<uint64_t>();
  std::this_thread::sleep_for(3500ms);  // three reconciliations at least
  EXPECT_TRUE(tr.all(is("release", sock)).empty()) << "a live SCTP socket was released";
  close(fd);
  auto r = tr.wait_for(is("release", sock));
  EXPECT_EQ(tr.stop(), 0);
  ASSERT_TRUE(r) << "no release at the close";
  EXPECT_FALSE(r->contains("reason")) << r->dump();
}
