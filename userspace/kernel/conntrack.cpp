#include "kernel/conntrack.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
