#include "kernel/conntrack.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/filter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/clock.hpp"
#include "common/errors.hpp"
#include "kernel/events.hpp"

namespace portghost {

namespace {

// The socket's buffer: at 100 ms between reads, room for about 400k events
// of a busy NAT host (an event is about 200 bytes).
constexpr int kReceiveBuffer = 64 << 20;

void put_end(const nf_conntrack* ct, Family f, enum nf_conntrack_attr v4, enum nf_conntrack_attr v6,
             enum nf_conntrack_attr port, CtEnd& out) {
  uint8_t bytes[16] = {};
  if (f == Family::Ipv4) {
    uint32_t a = nfct_get_attr_u32(ct, v4);
    std::memcpy(bytes, &a, 4);
  } else {
    std::memcpy(bytes, nfct_get_attr(ct, v6), 16);
  }
  format_addr_to(out.addr, f, bytes);
  out.port = ntohs(nfct_get_attr_u16(ct, port));
}

}  // namespace

bool decode_conntrack(const void* nf_ct, CtEvent::Kind kind, CtEvent& out) {
  const auto* ct = static_cast<const nf_conntrack*>(nf_ct);
  uint8_t l3 = nfct_get_attr_u8(ct, ATTR_L3PROTO);
  uint8_t l4 = nfct_get_attr_u8(ct, ATTR_L4PROTO);
  if (l3 != AF_INET && l3 != AF_INET6) return false;
  switch (l4) {
    case IPPROTO_TCP: out.proto = Proto::Tcp; break;
    case IPPROTO_UDP: out.proto = Proto::Udp; break;
    case IPPROTO_UDPLITE: out.proto = Proto::UdpLite; break;
    case IPPROTO_SCTP: out.proto = Proto::Sctp; break;
    default: return false;
  }
  out.kind = kind;
  out.family = l3 == AF_INET ? Family::Ipv4 : Family::Ipv6;
  out.id = nfct_attr_is_set(ct, ATTR_ID) > 0 ? nfct_get_attr_u32(ct, ATTR_ID) : 0;
  put_end(ct, out.family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, ATTR_ORIG_PORT_SRC, out.orig_src);
  put_end(ct, out.family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, ATTR_ORIG_PORT_DST, out.orig_dst);
  put_end(ct, out.family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, ATTR_REPL_PORT_SRC, out.reply_src);
  put_end(ct, out.family, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, ATTR_REPL_PORT_DST, out.reply_dst);
  return true;
}

struct ConntrackEvents::Handle {
  nfct_handle* nfct = nullptr;
  const std::function<void(const CtEvent&)>* f = nullptr;
  CtEvent scratch;
  ~Handle() {
    if (nfct) nfct_close(nfct);
  }
};

namespace {
int on_conntrack(enum nf_conntrack_msg_type type, struct nf_conntrack* ct, void* data) {
  auto* h = static_cast<ConntrackEvents::Handle*>(data);
  CtEvent::Kind kind = type == NFCT_T_DESTROY ? CtEvent::Kind::Destroy : CtEvent::Kind::New;
  if ((type == NFCT_T_NEW || type == NFCT_T_DESTROY) && decode_conntrack(ct, kind, h->scratch)) {
    h->scratch.read_unix_ns = BootClock::now_unix_ns();
    h->scratch.read_boot_ns = BootClock::now_boot_ns();
    (*h->f)(h->scratch);
  }
  return NFCT_CB_CONTINUE;
}
}  // namespace

namespace {
int on_dumped(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  if (!(nfct_get_attr_u32(ct, ATTR_STATUS) & (IPS_SRC_NAT | IPS_DST_NAT))) return NFCT_CB_CONTINUE;
  *static_cast<bool*>(data) = true;
  return NFCT_CB_STOP;
}
}  // namespace

bool conntrack_has_nat() {
  nfct_handle* h = nfct_open(CONNTRACK, 0);
  if (!h) return false;
  bool found = false;
  uint32_t family = AF_UNSPEC;
  if (nfct_callback_register(h, NFCT_T_ALL, on_dumped, &found) == 0) nfct_query(h, NFCT_Q_DUMP, &family);
  nfct_close(h);
  return found;
}

namespace {
// A classic BPF filter on the event socket: only the events of translated
// flows (status IPS_SRC_NAT or IPS_DST_NAT, in CTA_STATUS) are queued. The
// kernel still builds an event for every flow it confirms or destroys, but
// the others are dropped there: no wakeup, no copy, no decoding for flows
// nobody translates (on a container host, nearly all of them: loopback,
// host-to-host). The same walk of the attributes as libnetfilter_conntrack's
// own filters (the SKF_AD_NLATTR ancillary load).
bool keep_only_translated(int fd) {
  constexpr uint32_t kFirstAttr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_IMM, kFirstAttr),   // A: where the attributes begin
      BPF_STMT(BPF_LDX | BPF_IMM, CTA_STATUS),  // X: the attribute wanted
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS,
               static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_NLATTR)),            // A: its offset, 0 if none
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),                           // none: drop
      BPF_STMT(BPF_MISC | BPF_TAX, 0),                                        // X: its offset
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, NLA_HDRLEN),                         // A: the status (big-endian)
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, IPS_SRC_NAT | IPS_DST_NAT, 1, 0),  // translated: keep
      BPF_STMT(BPF_RET | BPF_K, 0),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) == 0;
}
}  // namespace

ConntrackEvents::ConntrackEvents() : h_(std::make_unique<Handle>()) {
  h_->nfct = nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_DESTROY);
  if (!h_->nfct) throw FatalError(errno_text("conntrack events (ctnetlink)", errno));
  int fd = nfct_fd(h_->nfct);
  int size = kReceiveBuffer;
  // as root past net.core.rmem_max; unprivileged, as much as that allows
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) throw FatalError(errno_text("conntrack events", errno));
  // IPVS (kube-proxy's IPVS mode among others) rewrites a flow's reply
  // tuple without the NAT status bits the filter keys on: where it is
  // loaded in this namespace, every event is read and the join decides
  if (access("/proc/net/ip_vs", F_OK) != 0) filtered_ = keep_only_translated(fd);
  if (nfct_callback_register(h_->nfct, NFCT_T_ALL, on_conntrack, h_.get()) != 0)
    throw FatalError(errno_text("conntrack events", errno));
}

ConntrackEvents::~ConntrackEvents() = default;
ConntrackEvents::ConntrackEvents(ConntrackEvents&&) noexcept = default;
ConntrackEvents& ConntrackEvents::operator=(ConntrackEvents&&) noexcept = default;

int ConntrackEvents::fd() const { return nfct_fd(h_->nfct); }

uint64_t ConntrackEvents::read(const std::function<void(const CtEvent&)>& f) {
  h_->f = &f;
  uint64_t overruns = 0;
  // nfct_catch reads until the socket is empty (EAGAIN); an overrun
  // (ENOBUFS) is reported once, and reading goes on after it
  for (int i = 0; i < 64; i++) {
    if (nfct_catch(h_->nfct) >= 0) continue;
    if (errno == ENOBUFS) {
      overruns++;
      continue;
    }
    if (errno == EINTR) continue;
    break;  // EAGAIN: empty
  }
  h_->f = nullptr;
  return overruns;
}

}  // namespace portghost
