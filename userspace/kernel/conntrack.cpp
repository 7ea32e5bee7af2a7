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
#include <exception>
#include <unordered_set>

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
struct Dumped {
  const std::function<void(const CtEvent&)>* f = nullptr;
  std::unordered_set<uint32_t> seen;  // a flow translated both ways comes in both dumps
  bool filtered = true;
  CtEvent e;
  std::exception_ptr error;  // thrown by f, rethrown once the library has returned
};

int on_dumped(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto* d = static_cast<Dumped*>(data);
  if (!(nfct_get_attr_u32(ct, ATTR_STATUS) & (IPS_SRC_NAT | IPS_DST_NAT))) {
    d->filtered = false;  // the kernel ignored the filter
    return NFCT_CB_CONTINUE;
  }
  try {  // nothing thrown through the library's C frames
    if (!decode_conntrack(ct, CtEvent::Kind::New, d->e) || (d->e.id && !d->seen.insert(d->e.id).second))
      return NFCT_CB_CONTINUE;
    d->e.read_unix_ns = BootClock::now_unix_ns();
    d->e.read_boot_ns = BootClock::now_boot_ns();
    (*d->f)(d->e);
  } catch (...) {
    d->error = std::current_exception();
    return NFCT_CB_FAILURE;
  }
  return NFCT_CB_CONTINUE;
}
}  // namespace

std::optional<bool> dump_translated(const std::function<void(const CtEvent&)>& f) {
  std::unique_ptr<nfct_handle, int (*)(nfct_handle*)> handle(nfct_open(CONNTRACK, 0), nfct_close);
  nfct_handle* h = handle.get();
  if (!h) return std::nullopt;
  Dumped d;
  d.f = &f;
  bool ok = nfct_callback_register(h, NFCT_T_ALL, on_dumped, &d) == 0;
  for (uint32_t bit : {uint32_t{IPS_SRC_NAT}, uint32_t{IPS_DST_NAT}}) {
    nfct_filter_dump* filter = ok ? nfct_filter_dump_create() : nullptr;
    if (!filter) {
      ok = false;
      break;
    }
    nfct_filter_dump_mark status{bit, bit};
    nfct_filter_dump_set_attr(filter, NFCT_FILTER_DUMP_STATUS, &status);
    nfct_filter_dump_set_attr_u8(filter, NFCT_FILTER_DUMP_L3NUM, AF_UNSPEC);
    ok = nfct_query(h, NFCT_Q_DUMP_FILTER, filter) == 0;
    nfct_filter_dump_destroy(filter);
    // a kernel that ignores the filter handed back the whole table at once
    if (!ok || !d.filtered) break;
  }
  if (d.error) std::rethrow_exception(d.error);
  if (!ok) return std::nullopt;
  return d.filtered;
}

ConntrackQuery::ConntrackQuery() : h_(nfct_open(CONNTRACK, 0)) {}

ConntrackQuery::~ConntrackQuery() {
  if (h_) nfct_close(h_);
}

namespace {
int on_got(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  CtEvent e;
  bool by_status = nfct_get_attr_u32(ct, ATTR_STATUS) & (IPS_SRC_NAT | IPS_DST_NAT);
  bool by_tuples = decode_conntrack(ct, CtEvent::Kind::New, e) && (e.src_translated() || e.dst_translated());
  *static_cast<std::optional<bool>*>(data) = by_status || by_tuples;
  // not NFCT_CB_STOP: the kernel's ACK follows the entry, and left unread it
  // would be the next query's answer (each lookup one behind)
  return NFCT_CB_CONTINUE;
}

// Proto's values are the IP protocol numbers themselves
static_assert(static_cast<uint8_t>(Proto::Tcp) == IPPROTO_TCP && static_cast<uint8_t>(Proto::Udp) == IPPROTO_UDP &&
              static_cast<uint8_t>(Proto::UdpLite) == IPPROTO_UDPLITE &&
              static_cast<uint8_t>(Proto::Sctp) == IPPROTO_SCTP);
}  // namespace

std::optional<bool> ConntrackQuery::translated(const FlowTuple& t) {
  if (!h_) return std::nullopt;
  std::string src(unmapped_ipv4(t.laddr.view())), dst(unmapped_ipv4(t.raddr.view()));
  uint8_t s4[4], d4[4], s6[16], d6[16];
  std::unique_ptr<nf_conntrack, void (*)(nf_conntrack*)> ct(nfct_new(), nfct_destroy);
  if (!ct) return std::nullopt;
  if (inet_pton(AF_INET, src.c_str(), s4) == 1 && inet_pton(AF_INET, dst.c_str(), d4) == 1) {
    nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET);
    nfct_set_attr(ct.get(), ATTR_IPV4_SRC, s4);
    nfct_set_attr(ct.get(), ATTR_IPV4_DST, d4);
  } else if (inet_pton(AF_INET6, src.c_str(), s6) == 1 && inet_pton(AF_INET6, dst.c_str(), d6) == 1) {
    nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET6);
    nfct_set_attr(ct.get(), ATTR_IPV6_SRC, s6);
    nfct_set_attr(ct.get(), ATTR_IPV6_DST, d6);
  } else {
    return std::nullopt;
  }
  nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, static_cast<uint8_t>(t.proto));
  nfct_set_attr_u16(ct.get(), ATTR_PORT_SRC, htons(t.lport));
  nfct_set_attr_u16(ct.get(), ATTR_PORT_DST, htons(t.rport));
  std::optional<bool> found;
  if (nfct_callback_register(h_, NFCT_T_ALL, on_got, &found) != 0) return std::nullopt;
  nfct_query(h_, NFCT_Q_GET, ct.get());  // ENOENT: no entry, found stays empty
  nfct_callback_unregister(h_);
  return found;
}

bool ipvs_loaded() { return access("/proc/net/ip_vs", F_OK) == 0; }

bool ConntrackCount::tracking() {
  // absent (conntrack not loaded): tried again at the next turn
  if (!fd_) fd_.reset(::open("/proc/sys/net/netfilter/nf_conntrack_count", O_RDONLY | O_CLOEXEC));
  if (!fd_) return false;
  char buf[24];
  ssize_t n = ::pread(fd_.get(), buf, sizeof buf, 0);
  return n > 0 && !(buf[0] == '0' && (n == 1 || buf[1] == '\n'));
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
  if (!ipvs_loaded()) filtered_ = keep_only_translated(fd);
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
