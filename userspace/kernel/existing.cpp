#include "kernel/existing.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/procfs.hpp"
#include "common/unique_fd.hpp"

namespace portghost {

std::vector<SockEvent> decode_existing(const std::vector<uint8_t>& raw) {
  std::vector<SockEvent> out;
  for (size_t off = 0; off + sizeof(pg_sock_event) <= raw.size(); off += sizeof(pg_sock_event)) {
    auto ev = decode(raw.data() + off, sizeof(pg_sock_event));
    if (ev && std::holds_alternative<SockEvent>(*ev)) out.push_back(std::get<SockEvent>(*ev));
  }
  return out;
}

std::vector<SockEvent> collect_in_all_netns(const std::function<std::vector<uint8_t>()>& collect,
                                            const std::string& proc) {
  std::vector<uint8_t> raw = collect();  // our own namespace
  struct stat self {};
  uint32_t self_ino = stat((proc + "/self/ns/net").c_str(), &self) == 0 ? static_cast<uint32_t>(self.st_ino) : 0;
  for (const auto& [ino, path] : list_netns(proc)) {
    if (ino == self_ino) continue;
    UniqueFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) continue;  // the namespace went away
    std::vector<uint8_t> part;
    auto ns_ino = ino;  // a structured binding is not captured by every compiler
    // setns() changes only the calling thread: a short-lived thread joins the
    // namespace, runs the iterators there, and exits.
    std::thread t([&] {
      if (setns(ns.get(), CLONE_NEWNET) != 0) {
        spdlog::warn("cannot enter network namespace {}: {}", ns_ino, std::strerror(errno));
        return;
      }
      part = collect();
    });
    t.join();
    raw.insert(raw.end(), part.begin(), part.end());
  }
  return decode_existing(raw);
}

namespace {
// One dump (family, protocol), read to its end.
bool dump_inet_diag(int fd, uint8_t family, uint8_t protocol) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = protocol;
  msg.req.idiag_states = ~0U;  // every state
  if (send(fd, &msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg)) return false;
  alignas(nlmsghdr) char buf[32 * 1024];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    // whole messages only, each within what was received
    auto total = static_cast<size_t>(n);
    for (size_t off = 0; off + sizeof(nlmsghdr) <= total;) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > total - off) break;
      if (h->nlmsg_type == NLMSG_DONE) return true;
      if (h->nlmsg_type == NLMSG_ERROR) return false;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
  }
}
}  // namespace

bool generate_socket_cookies() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) return false;
  bool ok = true;
  for (uint8_t family : {AF_INET, AF_INET6})
    for (uint8_t protocol : {IPPROTO_TCP, IPPROTO_UDP}) ok = dump_inet_diag(fd.get(), family, protocol) && ok;
  return ok;
}

}  // namespace portghost
