// One flow's conntrack entry looked up by its tuple, against the kernel's
// own table: in a network namespace made for the test (a child process;
// as root, or inside a user namespace of its own), entries are made over
// ctnetlink and looked up one after another. Skipped, saying why, where the
// kernel has no conntrack or the namespaces cannot be made.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "kernel/conntrack.hpp"

using namespace portghost;

namespace {

constexpr int kSkip = 77;

// A TCP entry 10.0.0.1:sport -> 10.0.0.2:80, answered (reply tuple) from
// the peer to `seen_as`: the flow's own source, or a translation of it.
bool make_entry(nfct_handle* h, uint16_t sport, const char* seen_as) {
  nf_conntrack* ct = nfct_new();
  if (!ct) return false;
  nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
  nfct_set_attr_u32(ct, ATTR_IPV4_SRC, inet_addr("10.0.0.1"));
  nfct_set_attr_u32(ct, ATTR_IPV4_DST, inet_addr("10.0.0.2"));
  nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(sport));
  nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(80));
  nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, inet_addr("10.0.0.2"));
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, inet_addr(seen_as));
  nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(80));
  nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(sport));
  nfct_set_attr_u8(ct, ATTR_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, 120);
  bool ok = nfct_query(h, NFCT_Q_CREATE, ct) == 0;
  nfct_destroy(ct);
  return ok;
}

// In the child: the answers as letters (t translated, u not, - no entry).
int child(int out) {
  if (unshare(CLONE_NEWNET) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) return kSkip;
  nfct_handle* h = nfct_open(CONNTRACK, 0);
  if (!h) return kSkip;
  bool made = make_entry(h, 1000, "10.0.0.1") && make_entry(h, 1001, "192.0.2.7");
  nfct_close(h);
  if (!made) return kSkip;  // no conntrack in this kernel (or not for us)
  auto flow = [](uint16_t sport) {
    FlowTuple t;
    t.proto = Proto::Tcp;
    t.laddr = "10.0.0.1";
    t.raddr = "10.0.0.2";
    t.lport = sport;
    t.rport = 80;
    return t;
  };
  ConntrackQuery q;
  std::string answers;
  for (uint16_t sport : {1000, 999, 1001, 1000, 1001, 1001, 999}) {
    auto r = q.translated(flow(sport));
    answers += !r ? '-' : *r ? 't' : 'u';
  }
  return write(out, answers.data(), answers.size()) == static_cast<ssize_t>(answers.size()) ? 0 : 1;
}

}  // namespace

// Each lookup answers for its own flow, however many came before it on the
// same netlink socket (the kernel's acknowledgement of one must never be
// taken for the next one's answer).
TEST(ConntrackQuery, EachLookupAnswersForItsOwnFlow) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(p[0]);
    _exit(child(p[1]));
  }
  close(p[1]);
  char buf[64] = {};
  ssize_t n = read(p[0], buf, sizeof buf);
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == kSkip) GTEST_SKIP() << "no namespace of its own, or no conntrack to make entries in";
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // 1000 untranslated, 999 no entry, 1001 translated, in this order
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "u-tutt-");
}
