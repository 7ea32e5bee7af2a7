// SPDX-License-Identifier: GPL-2.0
/*
 * portghost: every local port assignment and release, attributed.
 *
 * Assignments come from hooks that run once the port is known, below the
 * syscall layer so io_uring and in-kernel callers are seen too. In every world:
 *   cgroup/post_bind4/6   bind() that obtained a port (fixed or 0)
 *   sockops TCP_CONNECT   tcp connect() and TCP Fast Open, after autobind
 *   sockops TCP_LISTEN    listen() (autobind when unbound)
 *   cgroup/connect4/6     udp connect(), TFO-deferred tcp connect()
 * Userspace loads one world of the three, by what the kernel allows:
 *   fexit: in the kernel functions themselves
 *     fexit/inet_autobind       any datagram autobind (a send's, even one
 *                               that fails afterwards), or its failure
 *     fexit/inet_dgram_connect  udp connect()'s port
 *     fexit/inet_hash_connect   tcp connect(), TFO-deferred ones at connect()
 *     fexit/inet_csk_get_port, udp_lib_get_port  bind(0) finding no port
 *   socket tracepoints (Linux >= 6.3): nothing on the syscall layer
 *     tp_btf/sock_send_length   a datagram send's port, or its failure; the
 *                               port a connect() took, with the connect's task
 *     a bind(0) finding no port: inferred at the socket's next sight
 *   syscall exits (older kernels without fexit)
 *     cgroup/sendmsg4/6         udp sendto/sendmsg/sendmmsg, after autobind
 *     sys_exit_connect          udp connect() and TFO-deferred tcp connect()
 *     sys_exit_bind, sys_exit_send*  bind(0) and sends finding no port
 * SCTP (fexit only, its module loaded at start): fexit/sctp_do_bind takes
 * every port it assigns, cgroup/sock_release lets it go.
 * A port that no hook saw being taken is recorded at its first sight (a
 * later connect, the move to CLOSE, the release) with PG_F_LATE.
 * Releases, and listen() or tcp connect() finding no port:
 *   tp_btf/inet_sock_set_state  a tcp socket moving to CLOSE
 *   cgroup/sock_release         udp close, and tcp sockets already in CLOSE
 * Per-socket state (sk_storage) keeps one assign and one release per port.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"
#include "task.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define PG_SOCK_BINDPORT_LOCK 8
#define PG_SHUTDOWN_MASK 3 /* RCV_SHUTDOWN | SEND_SHUTDOWN */
#define PG_ALLOW 1 /* cgroup hooks: never change what the socket call does */
#define PG_EADDRINUSE 98
#define PG_EAGAIN 11

/* ---- ring buffer --------------------------------------------------------- */

static __always_inline void *event_reserve(__u64 size)
{
	void *e;

	if (!pg_armed || pg_stopping)
		return NULL;
	e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		counter_inc(PG_CNT_DROP_RINGBUF);
	return e;
}

/* No wakeup per record: the consumer drains on a timer, and is woken when
 * this CPU has produced targ_wakeup_bytes since its last wakeup, or when
 * targ_wakeup_delay_ns passed since the last wakeup by any CPU. The count is
 * per CPU (a program that preempts another on the same CPU may blur it by a
 * record, which is harmless): bpf_ringbuf_query() would read the positions
 * that the other CPUs' reservations keep moving, a shared cache line per
 * record. ts is the record's ts_ns, which every record type sets when it is
 * reserved. */
static __always_inline void event_submit(void *e, __u64 size, __u64 ts)
{
	__u32 zero = 0;
	__u64 *unwoken = bpf_map_lookup_elem(&unwoken_bytes, &zero);
	bool wake = ts - pg_last_wakeup_ns >= targ_wakeup_delay_ns;

	if (unwoken) {
		*unwoken += size + BPF_RINGBUF_HDR_SZ;
		if (*unwoken >= targ_wakeup_bytes)
			wake = true;
		if (wake)
			*unwoken = 0;
	}
	if (wake) {
		pg_last_wakeup_ns = ts;
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		return;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline struct pg_sock_event *sock_event_new(__u8 kind)
{
	struct pg_sock_event *e = event_reserve(sizeof(*e));

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_boot_ns();
	return e;
}

/* The port space of a socket, or 0 for one portghost does not follow (an
 * MPTCP socket itself: its subflows are TCP sockets and are followed). */
static __always_inline __u8 port_space(__u32 family, __u32 proto)
{
	if (family != PG_AF_INET && family != PG_AF_INET6)
		return 0;
	if (proto == PG_IPPROTO_TCP || proto == PG_IPPROTO_UDP || proto == PG_IPPROTO_UDPLITE)
		return proto;
	return 0;
}

static __always_inline bool is_datagram(__u32 proto)
{
	return proto == PG_IPPROTO_UDP || proto == PG_IPPROTO_UDPLITE;
}

/* ---- the kernel socket behind a context ----------------------------------- */

/* The struct sock behind a bpf_sock (cgroup and sockops contexts), as a plain
 * pointer for CO-RE reads: the verifier forbids arithmetic on socket and
 * context pointers, so the address is copied out as a number first. */
static __always_inline struct sock *kernel_sk(const void *sk)
{
	__u64 addr = 0;

	bpf_probe_read_kernel(&addr, sizeof(addr), &sk);
	return (struct sock *)addr;
}

static __always_inline __u8 sk_proto(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
}

/* port_space() of a kernel socket */
static __always_inline __u8 sk_port_space(struct sock *sk)
{
	return port_space(BPF_CORE_READ(sk, __sk_common.skc_family), sk_proto(sk));
}

static __always_inline bool sk_is_mptcp(struct sock *sk)
{
	struct tcp_sock *tp = (void *)sk;

	if (!bpf_core_field_exists(tp->is_mptcp))
		return false;
	return BPF_CORE_READ(tp, is_mptcp);
}

/* The local port that inet_hash_connect() or an autobind set; it outlives
 * the port's release (skc_num is cleared then, inet_sport is not). */
static __always_inline __u16 sk_sport(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* Only what a bpf_sock context cannot give: the namespace, and whether the
 * socket is an MPTCP subflow (e->proto set first). */
static __always_inline void fill_netns_from_sk(struct pg_sock_event *e, struct sock *sk)
{
	set_netns(e, BPF_CORE_READ(sk, __sk_common.skc_net.net));
	if (e->proto == PG_IPPROTO_TCP && sk_is_mptcp(sk))
		e->flags |= PG_F_MPTCP;
}

/* Addresses, ports and namespace of a kernel socket (e->proto set first). */
static __always_inline void fill_from_sk(struct pg_sock_event *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == PG_AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	fill_netns_from_sk(e, sk);
}

/* fill_from_sk() for a socket the program may load from directly (a BTF
 * pointer: a tp_btf or fexit argument, a bpf_skc_to_tcp_sock() result):
 * plain loads, where each CO-RE read would be a helper call. */
static __always_inline void fill_from_btf_sk(struct pg_sock_event *e, struct sock *sk)
{
	e->family = sk->__sk_common.skc_family;
	e->lport = sk->__sk_common.skc_num;
	e->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == PG_AF_INET) {
		__u32 l = sk->__sk_common.skc_rcv_saddr, r = sk->__sk_common.skc_daddr;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		l[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		l[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		l[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		r[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		r[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		r[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		r[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
	fill_netns_from_sk(e, sk);
}

/* Addresses and ports from a bpf_sock (direct loads, no kernel reads). */
static __always_inline void fill_from_bpf_sock(struct pg_sock_event *e, struct bpf_sock *sk)
{
	e->family = sk->family;
	e->lport = sk->src_port;
	e->rport = bpf_ntohs(sk->dst_port);
	if (sk->family == PG_AF_INET) {
		__u32 l = sk->src_ip4, r = sk->dst_ip4;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = sk->src_ip6[0]; l[1] = sk->src_ip6[1];
		l[2] = sk->src_ip6[2]; l[3] = sk->src_ip6[3];
		r[0] = sk->dst_ip6[0]; r[1] = sk->dst_ip6[1];
		r[2] = sk->dst_ip6[2]; r[3] = sk->dst_ip6[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
}

static __always_inline void clear_peer(struct pg_sock_event *e)
{
	e->rport = 0;
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
}

/* ---- socket state ----------------------------------------------------------- */

/* The socket's state, created on first sight. */
static __always_inline struct pg_sk_state *sk_state_of(void *sk)
{
	struct pg_sk_state *st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	/* a first creation can fail where a second one succeeds (seen for one
	 * socket in hundreds while the fexit programs were being attached;
	 * two creators racing on one socket get -EAGAIN): one more try */
	if (!st)
		st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		counter_inc(PG_CNT_DROP_STORAGE);
	return st;
}

/* A connect() whose end a syscall exit reported left its port in
 * connect_done (that program cannot reach socket storage): take it in.
 * A macro, so that the cookie (whose helper differs by context, and which
 * generating costs a global atomic) is computed only for noted sockets. */
#define sk_state_fold(st, cookie_expr)                                         \
	do {                                                                    \
		if ((st) && ((st)->flags & PG_SK_CONNECTING))                    \
			sk_state_fold_cookie((st), (cookie_expr));                \
	} while (0)

static __always_inline void sk_state_fold_cookie(struct pg_sk_state *st, __u64 cookie)
{
	__u16 *port;

	port = bpf_map_lookup_elem(&connect_done, &cookie);
	if (!port)
		return;
	st->port = *port;
	st->flags = (st->flags | PG_SK_ASSIGNED) & ~(PG_SK_RELEASED | PG_SK_FILTERED | PG_SK_CONNECTING);
	bpf_map_delete_elem(&connect_done, &cookie);
}

/* Has the port of this socket already been reported (and not released)? */
static __always_inline bool already_reported(const struct pg_sk_state *st, __u16 port)
{
	return (st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING)) &&
	       !(st->flags & PG_SK_RELEASED) && st->port == port;
}

/* Was any port of this socket reported (an assign, or held at start)? */
static __always_inline bool ever_reported(const struct pg_sk_state *st)
{
	return st && (st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING));
}

/* ---- assign --------------------------------------------------------------- */

/* Produce the assign in e (reserved by the caller) unless the filters hide
 * it; remember in st what was reported. The task is the current one, or the
 * one that took the port earlier (a deferred connect's, from st). */
static __always_inline bool assign_commit(struct pg_sock_event *e, struct pg_sk_state *st)
{
	if (st && (st->flags & PG_SK_DEFERRED)) {
		fill_from_snap(e, &st->conn);
		e->flags &= ~PG_F_LATE;
		st->flags &= ~PG_SK_DEFERRED;
	} else {
		fill_current_task(e);
	}
	if (!assign_passes_filters(e)) {
		counter_inc(PG_CNT_FILTERED);
		if (st) {
			st->flags = (st->flags | PG_SK_ASSIGNED | PG_SK_FILTERED) & ~(PG_SK_RELEASED | PG_SK_CONNECTING);
			st->port = e->lport;
		}
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return false;
	}
	if (st) {
		st->flags = (st->flags | PG_SK_ASSIGNED) & ~(PG_SK_RELEASED | PG_SK_FILTERED | PG_SK_CONNECTING);
		st->port = e->lport;
		st->holder_pid = e->pid;
		st->assigned_ns = e->ts_ns;
	}
	counter_inc(PG_CNT_ASSIGN);
	event_submit(e, sizeof(*e), e->ts_ns);
	return true;
}

/* The ring buffer was full: the assign is lost (and counted), but the socket
 * still holds the port, so its release must still be produced. */
static __always_inline void assign_lost(struct pg_sk_state *st, __u16 port)
{
	if (!st)
		return;
	st->flags = (st->flags | PG_SK_ASSIGNED) & ~(PG_SK_RELEASED | PG_SK_FILTERED | PG_SK_CONNECTING | PG_SK_DEFERRED);
	st->port = port;
}

/* A port that was taken where no hook saw it (a datagram send that failed
 * after its autobind, a connect through the 32-bit syscall ABI or io_uring
 * where the connect's end is seen only at a syscall exit, a TFO-deferred
 * connect closed before writing), seen now for the first time. Not late
 * when the connect() that took it left its task in st (PG_SK_DEFERRED). */
static __always_inline void assign_late(struct sock *sk, __u64 cookie, __u8 proto, __u16 port, __u8 how,
					struct pg_sk_state *st)
{
	struct pg_sock_event *e = sock_event_new(PG_KIND_ASSIGN);

	if (!e) {
		assign_lost(st, port);
		return;
	}
	e->proto = proto;
	fill_from_sk(e, sk);
	e->lport = port;
	e->how = how;
	e->flags |= PG_F_LATE;
	if (!(BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK))
		e->flags |= PG_F_EPHEMERAL;
	e->cookie = cookie;
	assign_commit(e, st);
}

/* ---- no free port ------------------------------------------------------------ */

static __always_inline struct pg_sock_event *exhausted_new(struct sock *sk, __u8 proto, __u8 how)
{
	struct pg_sock_event *e = sock_event_new(PG_KIND_EXHAUSTED);

	if (!e)
		return NULL;
	e->proto = proto;
	fill_from_sk(e, sk);
	e->lport = 0;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	e->how = how;
	return e;
}

/* sk found no free port, now, in the current task's call */
static __always_inline void exhausted_emit(struct sock *sk, __u8 proto, __u8 how)
{
	struct pg_sock_event *e = exhausted_new(sk, proto, how);

	if (!e)
		return;
	fill_current_task(e);
	event_submit(e, sizeof(*e), e->ts_ns);
}

/* ---- what a call left to be seen later (socket-tracepoint world) -------------
 * With no hook at a connect()'s or bind()'s end, its outcome is read at the
 * socket's next sight: a send, a connect, a bind or the release. */

static __always_inline bool sk_has_addr(struct sock *sk)
{
	__u32 a[4] = {};

	if (BPF_CORE_READ(sk, __sk_common.skc_family) == PG_AF_INET)
		return BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	bpf_core_read(a, sizeof(a), &sk->__sk_common.skc_v6_rcv_saddr);
	return a[0] | a[1] | a[2] | a[3];
}

/* A connect() left its task in st (PG_SK_DEFERRED): the port it took is an
 * assign with the connect's time and task, none at all an exhaustion (past
 * the cgroup hook, only the autobind fails without a port). A bind() to
 * port 0 on a wildcard or loopback address (PG_SK_BIND_ANY) that left no
 * port and no address can only have found no free port: an exhaustion at
 * the bind's time, named by the task that now holds the socket. */
static __always_inline void pending_resolve(struct sock *sk, struct pg_sk_state *st)
{
	struct pg_sock_event *e;
	__u16 port;
	__u8 proto;

	if (!(st->flags & (PG_SK_DEFERRED | PG_SK_BIND_ANY)))
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	proto = sk_port_space(sk);
	if (st->flags & PG_SK_DEFERRED) {
		st->flags &= ~PG_SK_BIND_ANY;
		if (port) {
			if (already_reported(st, port))
				st->flags &= ~PG_SK_DEFERRED;
			else
				assign_late(sk, BPF_CORE_READ(sk, __sk_common.skc_cookie.counter), proto, port,
					    proto == PG_IPPROTO_TCP ? PG_HOW_FASTOPEN : PG_HOW_CONNECT, st);
			return;
		}
		st->flags &= ~PG_SK_DEFERRED;
		e = exhausted_new(sk, proto, PG_HOW_CONNECT);
		if (!e)
			return;
		fill_from_snap(e, &st->conn);
		event_submit(e, sizeof(*e), e->ts_ns);
		return;
	}
	st->flags &= ~PG_SK_BIND_ANY;
	if (port || !(st->flags & PG_SK_BIND_PENDING) || st->req_port || sk_has_addr(sk))
		return;
	e = exhausted_new(sk, proto, PG_HOW_BIND);
	if (!e)
		return;
	fill_current_task(e);
	e->ts_ns = st->conn.ts_ns;
	event_submit(e, sizeof(*e), bpf_ktime_get_boot_ns());
}

/* bind(ctx) to an address every namespace has, where a bind to port 0 can
 * fail only for want of a port (an address not local fails first). The
 * family is the hook's: each reads only its own address fields. */
static __always_inline bool bind_addr_is_local(struct bpf_sock_addr *ctx, __u8 family)
{
	if (family == PG_AF_INET) {
		__u32 a = bpf_ntohl(ctx->user_ip4);

		return a == 0 || (a >> 24) == 127;
	}
	return !ctx->user_ip6[0] && !ctx->user_ip6[1] && !ctx->user_ip6[2] &&
	       (!ctx->user_ip6[3] || ctx->user_ip6[3] == bpf_htonl(1));
}

/* bind(): remember the asked port, so post_bind knows who chose it. */
static __always_inline int on_bind(struct bpf_sock_addr *ctx, __u8 family)
{
	struct bpf_sock *sk = ctx->sk;
	struct pg_sk_state *st;

	if (!sk || !port_space(ctx->family, ctx->protocol))
		return PG_ALLOW;
	st = sk_state_of(sk);
	if (!st)
		return PG_ALLOW;
	pending_resolve(kernel_sk(sk), st);
	st->req_port = bpf_ntohs(ctx->user_port);
	st->flags |= PG_SK_BIND_PENDING;
	if (targ_sock_tp && ctx->user_port == 0 && !sk->src_port && bind_addr_is_local(ctx, family)) {
		bpf_get_socket_cookie(ctx); /* an exhaustion record names the socket */
		st->flags |= PG_SK_BIND_ANY;
		st->conn.ts_ns = bpf_ktime_get_boot_ns();
	}
	if (targ_bind_exit && ctx->user_port == 0) {
		__u32 zero = 0;
		struct pg_pending_bind *p = bpf_map_lookup_elem(&pending_bind, &zero);

		if (p) {
			p->cookie = bpf_get_socket_cookie(ctx);
			p->tid = (__u32)bpf_get_current_pid_tgid();
			p->family = ctx->family;
			p->proto = ctx->protocol;
		}
	}
	return PG_ALLOW;
}

SEC("cgroup/bind4")
int pg_bind4(struct bpf_sock_addr *ctx) { return on_bind(ctx, PG_AF_INET); }

SEC("cgroup/bind6")
int pg_bind6(struct bpf_sock_addr *ctx) { return on_bind(ctx, PG_AF_INET6); }

/* post_bind contexts may read only their own family's source fields. */
static __always_inline int on_post_bind(struct bpf_sock *sk, __u8 family)
{
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	__u8 proto = port_space(sk->family, sk->protocol);

	if (!proto || !sk->src_port)
		return PG_ALLOW;
	st = sk_state_of(sk);
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, sk->src_port);
		return PG_ALLOW;
	}
	e->proto = proto;
	fill_netns_from_sk(e, kernel_sk(sk));
	e->family = family;
	e->lport = sk->src_port;
	if (family == PG_AF_INET) {
		__u32 l = sk->src_ip4;

		__builtin_memcpy(e->laddr, &l, 4);
	} else {
		__u32 l[4];

		l[0] = sk->src_ip6[0]; l[1] = sk->src_ip6[1];
		l[2] = sk->src_ip6[2]; l[3] = sk->src_ip6[3];
		__builtin_memcpy(e->laddr, l, 16);
	}
	e->how = PG_HOW_BIND;
	e->cookie = bpf_get_socket_cookie(sk);
	if (st && (st->flags & PG_SK_BIND_PENDING) && st->req_port == 0)
		e->flags |= PG_F_EPHEMERAL;
	if (st)
		st->flags &= ~(PG_SK_BIND_PENDING | PG_SK_BIND_ANY);
	assign_commit(e, st);
	return PG_ALLOW;
}

SEC("cgroup/post_bind4")
int pg_post_bind4(struct bpf_sock *sk) { return on_post_bind(sk, PG_AF_INET); }

SEC("cgroup/post_bind6")
int pg_post_bind6(struct bpf_sock *sk) { return on_post_bind(sk, PG_AF_INET6); }

static __always_inline void fill_from_sock_ops(struct pg_sock_event *e, struct bpf_sock_ops *ops)
{
	e->family = ops->family;
	e->lport = ops->local_port;
	e->rport = bpf_ntohl(ops->remote_port);
	if (ops->family == PG_AF_INET) {
		__u32 l = ops->local_ip4, r = ops->remote_ip4;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = ops->local_ip6[0]; l[1] = ops->local_ip6[1];
		l[2] = ops->local_ip6[2]; l[3] = ops->local_ip6[3];
		r[0] = ops->remote_ip6[0]; r[1] = ops->remote_ip6[1];
		r[2] = ops->remote_ip6[2]; r[3] = ops->remote_ip6[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
}

/* A tcp socket's port, seen where it is known: TCP_CONNECT_CB, TCP_LISTEN_CB
 * (ops: its fields are direct loads) or the end of inet_hash_connect(). In
 * both, sk is a BTF pointer the program may load from directly. */
static __always_inline void tcp_assign(struct sock *sk, struct bpf_sock_ops *ops, __u64 cookie,
				       struct pg_sk_state *st, __u8 how)
{
	struct tcp_sock *tp = (void *)sk;
	struct pg_sock_event *e;
	__u16 port = sk->__sk_common.skc_num;

	if (!port)
		return;
	sk_state_fold(st, cookie);
	if (st && already_reported(st, port))
		return;
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, port);
		return;
	}
	e->proto = PG_IPPROTO_TCP;
	if (ops) {
		fill_from_sock_ops(e, ops);
		fill_netns_from_sk(e, sk);
	} else {
		fill_from_btf_sk(e, sk);
	}
	e->cookie = cookie;
	if (how == PG_HOW_LISTEN)
		clear_peer(e);
	else if (tp->fastopen_req || BPF_CORE_READ_BITFIELD(tp, fastopen_connect))
		how = PG_HOW_FASTOPEN;
	e->how = how;
	/* A port the user bound explicitly carries SOCK_BINDPORT_LOCK. */
	if (!(BPF_CORE_READ_BITFIELD(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK))
		e->flags |= PG_F_EPHEMERAL;
	assign_commit(e, st);
}

/* tcp connect() / TFO / listen(): the port is known when these run. */
SEC("sockops")
int pg_sockops(struct bpf_sock_ops *ops)
{
	__u32 op = ops->op;
	struct pg_sk_state *st;
	struct bpf_sock *sk;
	struct tcp_sock *tp;

	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	if (ops->family != PG_AF_INET && ops->family != PG_AF_INET6)
		return 1;
	sk = ops->sk;
	if (!sk)
		return 1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 1;
	st = sk_state_of(sk);
	tcp_assign((struct sock *)tp, ops, bpf_get_socket_cookie(ops), st,
		   op == BPF_SOCK_OPS_TCP_LISTEN_CB ? PG_HOW_LISTEN : PG_HOW_CONNECT);
	return 1;
}

/* udp sendto/sendmsg/sendmmsg to an address: autobind has already run. */
static __always_inline int on_sendmsg(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	__u16 port;

	if (!sk || !is_datagram(ctx->protocol))
		return PG_ALLOW;
	port = sk->src_port;
	if (!port)
		return PG_ALLOW;
	st = sk_state_of(sk);
	sk_state_fold(st, bpf_get_socket_cookie(ctx));
	if (st && already_reported(st, port))
		return PG_ALLOW;
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, port);
		return PG_ALLOW;
	}
	e->proto = ctx->protocol;
	fill_from_bpf_sock(e, sk);
	fill_netns_from_sk(e, kernel_sk(sk));
	e->lport = port;
	clear_peer(e);
	e->how = PG_HOW_SENDMSG;
	e->flags |= PG_F_EPHEMERAL;
	e->cookie = bpf_get_socket_cookie(ctx);
	assign_commit(e, st);
	return PG_ALLOW;
}

SEC("cgroup/sendmsg4")
int pg_sendmsg4(struct bpf_sock_addr *ctx) { return on_sendmsg(ctx); }

SEC("cgroup/sendmsg6")
int pg_sendmsg6(struct bpf_sock_addr *ctx) { return on_sendmsg(ctx); }

static __always_inline void note_connect(struct bpf_sock_addr *ctx, struct pg_sk_state *st, __u16 port_before)
{
	struct pg_pending_connect p = {};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (st)
		st->flags |= PG_SK_CONNECTING;
	p.cookie = bpf_get_socket_cookie(ctx);
	p.port_before = port_before;
	if (bpf_map_update_elem(&pending_connect, &tid, &p, BPF_ANY))
		counter_inc(PG_CNT_DROP_PENDING);
}

/* socket-tracepoint world: keep the connect's task and time for the socket's
 * next sight, where its port (or its lack of one) is read */
static __always_inline void defer_connect(struct bpf_sock_addr *ctx, struct pg_sk_state *st)
{
	if (!st)
		return;
	bpf_get_socket_cookie(ctx); /* the records name the socket */
	snap_current_task(&st->conn);
	st->flags |= PG_SK_DEFERRED;
}

/* connect(): runs before any autobind; remember the socket until its end. */
static __always_inline int on_connect(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct pg_sk_state *st;
	struct tcp_sock *tp;
	__u16 port;

	if (!sk)
		return PG_ALLOW;
	if (ctx->protocol == PG_IPPROTO_TCP) {
		/* TFO-deferred: the port comes in connect(), TCP_CONNECT_CB only
		 * at the first write; inet_hash_connect's fexit sees it otherwise */
		if ((!targ_connect_exit && !targ_sock_tp) || sk->src_port)
			return PG_ALLOW;
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp || !BPF_CORE_READ_BITFIELD(tp, fastopen_connect))
			return PG_ALLOW;
		st = sk_state_of(sk);
		if (targ_sock_tp)
			defer_connect(ctx, st);
		else
			note_connect(ctx, st, 0);
		return PG_ALLOW;
	}
	if (!is_datagram(ctx->protocol))
		return PG_ALLOW;
	port = sk->src_port;
	st = sk_state_of(sk);
	if (st)
		pending_resolve(kernel_sk(sk), st);
	sk_state_fold(st, bpf_get_socket_cookie(ctx));
	/* a port nobody reported: taken by a send that failed after its autobind */
	if (port && st && !ever_reported(st))
		assign_late(kernel_sk(sk), bpf_get_socket_cookie(ctx), ctx->protocol, port, PG_HOW_SENDMSG, st);
	if (!targ_sock_tp)
		note_connect(ctx, st, port);
	else if (!port)
		defer_connect(ctx, st);
	return PG_ALLOW;
}

SEC("cgroup/connect4")
int pg_connect4(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

SEC("cgroup/connect6")
int pg_connect6(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

static __always_inline struct sock *sock_of_fd(struct task_struct *t, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	struct socket *so;

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	return so ? BPF_CORE_READ(so, sk) : NULL;
}

/* After a noted connect(): if it gave the socket a port, that is the
 * assignment (the port is held even when the connect itself then failed).
 * st is NULL where the program cannot reach socket storage (a syscall exit):
 * the port then goes to connect_done for the next hook that can. */
static __always_inline void connect_done_at(struct sock *sk, struct pg_sk_state *st)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pg_pending_connect *pp, p;
	struct pg_sock_event *e;
	__u8 proto;
	__u16 port;

	pp = bpf_map_lookup_elem(&pending_connect, &tid);
	if (!pp)
		return;
	p = *pp;
	bpf_map_delete_elem(&pending_connect, &tid);
	if (p.port_before)
		return;
	/* The note is this thread's, but an io_uring connect seen only by the
	 * syscall-exit world leaves one with no exit to take it: only the
	 * socket the hook saw may use it. */
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) != p.cookie)
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	proto = sk_port_space(sk);
	if (!port || !proto)
		return;
	if (st && already_reported(st, port))
		return;
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, port);
		return;
	}
	e->proto = proto;
	fill_from_sk(e, sk);
	e->how = proto == PG_IPPROTO_TCP ? PG_HOW_FASTOPEN : PG_HOW_CONNECT;
	e->flags |= PG_F_EPHEMERAL;
	e->cookie = p.cookie;
	assign_commit(e, st);
	if (!st)
		bpf_map_update_elem(&connect_done, &p.cookie, &port, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int pg_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	int fd;

	if (!bpf_map_lookup_elem(&pending_connect, &(__u32){(__u32)bpf_get_current_pid_tgid()}))
		return 0;
	fd = (int)PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(t));
	connect_done_at(sock_of_fd((struct task_struct *)t, fd), NULL);
	return 0;
}

/* The same where the kernel has fexit: any connect, io_uring's too. */
SEC("fexit/inet_dgram_connect")
int BPF_PROG(pg_dgram_connect_exit, struct socket *sock, struct sockaddr *uaddr, int addr_len, int flags, int ret)
{
	struct sock *sk = sock->sk;

	connect_done_at(sk, sk ? sk_state_of(sk) : NULL);
	return 0;
}

/* tcp connect() got its port (TFO-deferred ones too, which reach
 * TCP_CONNECT_CB only at their first write). */
SEC("fexit/inet_hash_connect")
int BPF_PROG(pg_hash_connect_exit, struct inet_timewait_death_row *death_row, struct sock *sk, int ret)
{
	/* a tcp_sock pointer (the verifier checks loads against the pointer's
	 * type, and tcp_assign reads the tcp_sock's Fast Open fields) */
	struct tcp_sock *tp = ret ? NULL : bpf_skc_to_tcp_sock(sk);

	if (!tp)
		return 0;
	tcp_assign((struct sock *)tp, NULL, bpf_get_socket_cookie(sk), sk_state_of(sk), PG_HOW_CONNECT);
	return 0;
}

/* ---- no free port, at the syscall exits (syscall-exit world) ------------------ */

/* bind() to port 0 that found no free port */
SEC("tracepoint/syscalls/sys_exit_bind")
int pg_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct pg_pending_bind *p = bpf_map_lookup_elem(&pending_bind, &zero);
	struct task_struct *t;
	struct sock *sk;
	int fd;

	if (!p || p->tid != tid)
		return 0;
	p->tid = 0;
	if (ctx->ret != -PG_EADDRINUSE)
		return 0;
	t = bpf_get_current_task_btf();
	fd = (int)PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(t));
	sk = sock_of_fd((struct task_struct *)t, fd);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) != p->cookie)
		return 0;
	exhausted_emit(sk, p->proto, PG_HOW_BIND);
	return 0;
}

/* udp send on an unbound socket whose autobind found no free port: -EAGAIN */

static __always_inline int on_send_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t;
	struct sock *sk;
	__u8 proto;
	int fd;

	if (ctx->ret != -PG_EAGAIN)
		return 0;
	t = bpf_get_current_task_btf();
	fd = (int)PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(t));
	sk = sock_of_fd((struct task_struct *)t, fd);
	if (!sk)
		return 0;
	/* a full send buffer gives EAGAIN too, but on a socket with a port */
	proto = sk_port_space(sk);
	if (BPF_CORE_READ(sk, __sk_common.skc_num) || !is_datagram(proto))
		return 0;
	exhausted_emit(sk, proto, PG_HOW_SENDMSG);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int pg_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int pg_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int pg_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }

/* ---- the end of every send (socket-tracepoint world, Linux >= 6.3) -----------
 * Below the syscall layer: io_uring's sends, the 32-bit ABI's and the kernel's
 * own are seen too. A datagram socket's port is reported at the end of the
 * first send that finds it (the send's autobind took it, even when the send
 * then failed), and a send whose autobind found no free port fails -EAGAIN
 * on a socket without a port. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(pg_send_length, struct sock *sk, int ret, int flags)
{
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	__u16 port;
	__u8 proto;

	if (!sk)
		return 0;
	proto = port_space(sk->__sk_common.skc_family, BPF_CORE_READ_BITFIELD(sk, sk_protocol));
	if (!is_datagram(proto))
		return 0;
	st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
	if (st)
		pending_resolve(sk, st);
	port = sk->__sk_common.skc_num;
	if (!port) {
		/* a full send buffer gives EAGAIN too, but on a socket with a port */
		if (ret == -PG_EAGAIN)
			exhausted_emit(sk, proto, PG_HOW_SENDMSG);
		return 0;
	}
	if (st && already_reported(st, port))
		return 0;
	if (!st)
		st = sk_state_of(sk);
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, port);
		return 0;
	}
	e->proto = proto;
	fill_from_btf_sk(e, sk);
	e->how = PG_HOW_SENDMSG;
	if (!(BPF_CORE_READ_BITFIELD(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK))
		e->flags |= PG_F_EPHEMERAL;
	e->cookie = bpf_get_socket_cookie(sk);
	assign_commit(e, st);
	return 0;
}

/* ---- autobind and port allocators, where the kernel has fentry/fexit --------
 * A failure is seen whatever asked for the port (a syscall, io_uring, a
 * kernel socket). Userspace loads either these or the syscall-exit
 * tracepoints above, never both. */

SEC("fentry/inet_autobind")
int BPF_PROG(pg_autobind_enter, struct sock *sk)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 one = 1;

	bpf_map_update_elem(&in_autobind, &tid, &one, BPF_ANY);
	return 0;
}

/* A send or connect on an unbound datagram socket: its port, or no free port */
SEC("fexit/inet_autobind")
int BPF_PROG(pg_autobind_exit, struct sock *sk, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bool connecting = bpf_map_lookup_elem(&pending_connect, &tid);
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	__u8 proto = sk_port_space(sk);
	__u16 port;

	bpf_map_delete_elem(&in_autobind, &tid);
	if (!is_datagram(proto))
		return 0;
	if (ret) {
		/* the cgroup connect hook left a note for this thread's connect() */
		exhausted_emit(sk, proto, connecting ? PG_HOW_CONNECT : PG_HOW_SENDMSG);
		return 0;
	}
	/* a connect's port is reported at its end, with the peer it connected to */
	if (connecting)
		return 0;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	st = sk_state_of(sk);
	if (!port || (st && already_reported(st, port)))
		return 0;
	e = sock_event_new(PG_KIND_ASSIGN);
	if (!e) {
		assign_lost(st, port);
		return 0;
	}
	e->proto = proto;
	fill_from_btf_sk(e, sk);
	clear_peer(e);
	e->how = PG_HOW_SENDMSG;
	e->flags |= PG_F_EPHEMERAL;
	e->cookie = bpf_get_socket_cookie(sk);
	assign_commit(e, st);
	return 0;
}

/* bind() to port 0, or listen() on an unbound socket, found no free port */
static __always_inline void get_port_exit(struct sock *sk, __u16 snum, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 proto;

	if (!ret || snum)
		return; /* a port asked for by number was taken: a conflict */
	if (bpf_map_lookup_elem(&in_autobind, &tid))
		return; /* the autobind's exit reports it */
	proto = sk_port_space(sk);
	if (!proto)
		return;
	/* inet_csk_listen_start() moves to LISTEN before it asks for a port, and
	 * back to CLOSE when none was free: inet_sock_set_state reports that */
	if (proto == PG_IPPROTO_TCP && BPF_CORE_READ(sk, __sk_common.skc_state) == PG_TCP_LISTEN)
		return;
	exhausted_emit(sk, proto, PG_HOW_BIND);
}

SEC("fexit/inet_csk_get_port")
int BPF_PROG(pg_csk_get_port_exit, struct sock *sk, unsigned short snum, int ret)
{
	get_port_exit(sk, snum, ret);
	return 0;
}

SEC("fexit/udp_lib_get_port")
int BPF_PROG(pg_udp_get_port_exit, struct sock *sk, unsigned short snum, unsigned int hash2_nulladdr, int ret)
{
	get_port_exit(sk, snum, ret);
	return 0;
}

/* ---- SCTP, where the kernel allows fexit and the sctp module is loaded --------
 * SCTP binds through its own sk_prot->bind (no inet bind hook runs), and
 * every port it takes, by bind(), bindx or the autobind of an association
 * or a listen(), goes through sctp_do_bind(). Its release is
 * cgroup/sock_release's, for the sockets reported here only (an accepted or
 * peeled-off socket shares its parent's port). */

SEC("fentry/sctp_connect_new_asoc")
int BPF_PROG(pg_sctp_new_asoc, struct sctp_endpoint *ep, const union sctp_addr *daddr)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 sk = (__u64)BPF_CORE_READ(ep, base.sk);

	bpf_map_update_elem(&sctp_connecting, &tid, &sk, BPF_ANY);
	return 0;
}

/* The association's autobind (connect(), or a sendmsg() to a new peer) or
 * anything else (bind(), bindx, listen()'s autobind). */
static __always_inline __u8 sctp_bind_how(struct sock *sk)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *conn = bpf_map_lookup_elem(&sctp_connecting, &tid);

	if (!conn || *conn != (__u64)kernel_sk(sk))
		return PG_HOW_BIND;
	bpf_map_delete_elem(&sctp_connecting, &tid);
	return PG_HOW_CONNECT;
}

/* No socket storage here: Linux 6.1 looks the target of a program that
 * calls bpf_sk_storage_get() up in vmlinux's BTF only, and a module
 * function's id there faults the verifier. The port goes to sctp_ports,
 * where the release finds it. */
SEC("fexit/sctp_do_bind")
int BPF_PROG(pg_sctp_bind_exit, struct sock *sk, union sctp_addr *addr, int len, int ret)
{
	__u8 how = sctp_bind_how(sk);
	struct pg_sock_event *e;
	__u16 asked = 0, port, *known;
	__u64 cookie;

	/* sin_port and sin6_port lie at the same offset */
	bpf_probe_read_kernel(&asked, sizeof(asked), &addr->v4.sin_port);
	if (ret) {
		if (ret == -PG_EADDRINUSE && !asked)
			exhausted_emit(sk, PG_IPPROTO_SCTP, how);
		return 0;
	}
	port = sk->__sk_common.skc_num;
	cookie = bpf_get_socket_cookie(sk);
	known = bpf_map_lookup_elem(&sctp_ports, &cookie);
	if (!port || (known && *known == port))
		return 0; /* bindx adding an address to a bound socket */
	e = sock_event_new(PG_KIND_ASSIGN);
	if (e) {
		e->proto = PG_IPPROTO_SCTP;
		fill_from_btf_sk(e, sk); /* no peer: an SCTP socket keeps it in its association */
		e->how = how;
		if (!asked)
			e->flags |= PG_F_EPHEMERAL;
		e->cookie = cookie;
		if (!assign_commit(e, NULL))
			return 0; /* filtered: so is its release */
	}
	/* written, or lost (and counted): either way its release is due */
	if (bpf_map_update_elem(&sctp_ports, &cookie, &port, BPF_ANY))
		counter_inc(PG_CNT_DROP_STORAGE);
	return 0;
}

/* ---- release --------------------------------------------------------------- */

static __always_inline bool release_due(struct pg_sk_state *st)
{
	if (st->flags & (PG_SK_RELEASED | PG_SK_FILTERED))
		return false;
	return st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING);
}

/* The task that let the port go by closing its last file reference: false
 * for a kernel thread (no process let it go). Its process's name only (a
 * release names no thread): every release pays for this read. */
static __always_inline bool read_closer(__u32 *pid, __u32 *tid, char *comm)
{
	struct task_struct *t = current_task();
	__u64 id;

	if (task_is_kthread(t))
		return false;
	id = bpf_get_current_pid_tgid();
	*pid = id >> 32;
	*tid = (__u32)id;
	bpf_probe_read_kernel_str(comm, PG_COMM_LEN, BPF_CORE_READ(t, group_leader)->comm);
	return true;
}

static __always_inline void fill_closer(struct pg_sock_event *e)
{
	if (read_closer(&e->pid, &e->tid, e->comm))
		e->flags |= PG_F_CLOSER;
}

static __always_inline void release_commit(struct pg_sock_event *e, struct pg_sk_state *st)
{
	if (st) {
		st->flags = (st->flags | PG_SK_RELEASED) & ~PG_SK_CONNECTING;
		e->holder = st->holder_pid;
		e->ino = st->assigned_ns;
	}
	counter_inc(PG_CNT_RELEASE);
	event_submit(e, sizeof(*e), e->ts_ns);
}

/* A tcp socket moves to CLOSE: its port goes (to TIME_WAIT, or free).
 * Sockets without state here were never assigned a port by anyone we saw:
 * accepted children share their listener's port and are skipped. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(pg_set_state, struct sock *sk, int oldstate, int newstate)
{
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	__u16 sport;

	/* an MPTCP socket moves too (its subflows are the TCP sockets) */
	if (newstate != PG_TCP_CLOSE || sk_proto(sk) != PG_IPPROTO_TCP)
		return 0;
	st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
	sk_state_fold(st, bpf_get_socket_cookie(sk));
	if (oldstate == PG_TCP_LISTEN && !ever_reported(st) && !sk_sport(sk) &&
	    !BPF_CORE_READ(sk, __sk_common.skc_num)) {
		/* listen() on an unbound socket found no free port: in listen(),
		 * so the task is its (a listener that had a port keeps its
		 * inet_sport, or its number when the user bound it) */
		exhausted_emit(sk, PG_IPPROTO_TCP, PG_HOW_LISTEN);
		return 0;
	}
	if (oldstate == PG_TCP_SYN_SENT && !ever_reported(st)) {
		sport = sk_sport(sk);
		if (sport) {
			/* it had a port nobody reported: a TFO-deferred connect
			 * closed before writing, where connect()'s end is unseen */
			if (!st)
				st = sk_state_of(sk);
			assign_late(sk, bpf_get_socket_cookie(sk), PG_IPPROTO_TCP, sport, PG_HOW_FASTOPEN, st);
		} else {
			/* connect() found no free local port (inet_hash_connect
			 * failed, EADDRNOTAVAIL): in connect(), so the task is its */
			exhausted_emit(sk, PG_IPPROTO_TCP, PG_HOW_CONNECT);
			return 0;
		}
	}
	if (!st || !release_due(st))
		return 0;
	/* A port bound by the user (SOCK_BINDPORT_LOCK) survives CLOSE while the
	 * socket is open (failed connect, reset, shutdown of a listener): it goes
	 * when the file does, and cgroup/sock_release reports it then. Once the
	 * user has closed it (close() sets the whole shutdown mask first), the
	 * move to CLOSE is the end. A kernel socket (an MPTCP subflow) has no
	 * file and no sock_release hook: CLOSE is the last sight of it. */
	if ((BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK) &&
	    BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) != PG_SHUTDOWN_MASK &&
	    !BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock))
		return 0;
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return 0;
	e->proto = PG_IPPROTO_TCP;
	fill_from_btf_sk(e, sk);
	/* tcp_set_state() has already put the port (skc_num is 0 by now) */
	e->lport = st->port;
	e->state = oldstate;
	e->cookie = bpf_get_socket_cookie(sk);
	/* The active closer keeps the port in TIME_WAIT. */
	if (oldstate == PG_TCP_FIN_WAIT1 || oldstate == PG_TCP_FIN_WAIT2 || oldstate == PG_TCP_CLOSING)
		e->flags |= PG_F_TIMEWAIT;
	if (st->flags & PG_SK_CLOSED) {
		e->flags |= PG_F_CLOSER;
		e->pid = st->closer_pid;
		e->tid = st->closer_tid;
		__builtin_memcpy(e->comm, st->closer_comm, PG_COMM_LEN);
	}
	release_commit(e, st);
	return 0;
}

/* Remember who released a tcp socket's file: its port goes later, at CLOSE. */
static __always_inline void note_closer(struct pg_sk_state *st)
{
	if (read_closer(&st->closer_pid, &st->closer_tid, st->closer_comm))
		st->flags |= PG_SK_CLOSED;
}

/* An SCTP socket whose port fexit/sctp_do_bind reported (an accepted or
 * peeled-off socket shares its parent's port and is in no record). */
static __always_inline void sctp_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct pg_sock_event *e;
	__u16 *port = bpf_map_lookup_elem(&sctp_ports, &cookie);
	__u16 lport;

	if (!port)
		return;
	lport = *port;
	bpf_map_delete_elem(&sctp_ports, &cookie);
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return;
	e->proto = PG_IPPROTO_SCTP;
	e->family = sk->family;
	e->lport = lport;
	e->state = sk->state;
	e->cookie = cookie;
	fill_closer(e);
	release_commit(e, NULL);
}

/* The last reference to the socket file is gone (never called for kernel
 * sockets). The port and addresses come from the kernel socket. */
SEC("cgroup/sock_release")
int pg_sock_release(struct bpf_sock *sk)
{
	__u8 proto = port_space(sk->family, sk->protocol);
	struct pg_sock_event *e;
	struct pg_sk_state *st;
	struct sock *ksk = NULL;
	__u16 port = 0;

	if (!proto) {
		if ((sk->family == PG_AF_INET || sk->family == PG_AF_INET6) && sk->protocol == PG_IPPROTO_SCTP)
			sctp_release(sk);
		return PG_ALLOW;
	}
	st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
	sk_state_fold(st, bpf_get_socket_cookie(sk));
	/* tcp sockets still connected or listening release at CLOSE */
	if (proto == PG_IPPROTO_TCP && sk->state != BPF_TCP_CLOSE) {
		if (st && release_due(st))
			note_closer(st);
		return PG_ALLOW;
	}
	if (st && (st->flags & (PG_SK_DEFERRED | PG_SK_BIND_ANY)))
		pending_resolve(kernel_sk(sk), st);
	if (!ever_reported(st) || !st->port) {
		ksk = kernel_sk(sk);
		port = BPF_CORE_READ(ksk, __sk_common.skc_num);
	}
	if (!ever_reported(st)) {
		/* a port held without a record: a datagram send that failed after
		 * its autobind, a connect whose end no hook saw, a socket bound
		 * before the trace that no iterator lists */
		if (!port)
			return PG_ALLOW;
		if (!st)
			st = sk_state_of(sk);
		assign_late(ksk, bpf_get_socket_cookie(sk), proto, port,
			    !is_datagram(proto) ? PG_HOW_NONE
			    : st && (st->flags & PG_SK_CONNECTING) ? PG_HOW_CONNECT
								   : PG_HOW_SENDMSG,
			    st);
	}
	if (st && !release_due(st))
		return PG_ALLOW;
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return PG_ALLOW;
	/* the local address comes from the consumer's table (this context
	 * cannot read it), the peer from the socket */
	e->proto = proto;
	e->family = sk->family;
	e->rport = bpf_ntohs(sk->dst_port);
	if (sk->family == PG_AF_INET) {
		__u32 r = sk->dst_ip4;

		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 r[4];

		r[0] = sk->dst_ip6[0]; r[1] = sk->dst_ip6[1];
		r[2] = sk->dst_ip6[2]; r[3] = sk->dst_ip6[3];
		__builtin_memcpy(e->raddr, r, 16);
	}
	e->lport = st && st->port ? st->port : port;
	e->state = sk->state;
	e->cookie = bpf_get_socket_cookie(sk);
	fill_closer(e);
	release_commit(e, st);
	return PG_ALLOW;
}

/* ---- existing sockets (iterators, run once per network namespace) ---------- */

static __always_inline void existing_emit(struct seq_file *seq, struct sock *sk, __u8 proto,
					  __u8 state, __u32 uid)
{
	struct pg_sock_event e = {};
	struct pg_sk_state *st;

	if (pg_iter_liveness) {
		/* alive: its cookie is all the consumer needs */
		e.kind = PG_KIND_EXISTING;
		e.proto = proto;
		e.family = BPF_CORE_READ(sk, __sk_common.skc_family);
		e.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		if (e.cookie)
			bpf_seq_write(seq, &e, sizeof(e));
		return;
	}
	st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st) {
		if (st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING))
			return; /* assigned after the probes attached: already reported */
		st->flags |= PG_SK_EXISTING;
	}
	e.kind = PG_KIND_EXISTING;
	e.ts_ns = bpf_ktime_get_boot_ns();
	e.proto = proto;
	fill_from_sk(&e, sk);
	if (st)
		st->port = e.lport;
	e.state = state;
	e.uid = uid;
	e.cookie = bpf_get_socket_cookie(sk);
	e.ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	bpf_seq_write(seq, &e, sizeof(e));
}

SEC("iter/tcp")
int pg_iter_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct pg_listen_key key = {};
	struct tcp_sock *tp;
	__u8 state, one = 1;

	if (!skc)
		return 0;
	state = skc->skc_state;
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV || !skc->skc_num)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	key.netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	key.port = skc->skc_num;
	/* listeners come first: a later socket on a listener's port is its child */
	if (pg_iter_liveness)
		;
	else if (state == TCP_LISTEN)
		bpf_map_update_elem(&iter_listeners, &key, &one, BPF_ANY);
	else if (bpf_map_lookup_elem(&iter_listeners, &key))
		return 0;
	existing_emit(ctx->meta->seq, (struct sock *)tp, PG_IPPROTO_TCP, state, ctx->uid);
	return 0;
}

SEC("iter/udp")
int pg_iter_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *up = ctx->udp_sk;

	if (!up || !up->inet.sk.__sk_common.skc_num)
		return 0;
	existing_emit(ctx->meta->seq, (struct sock *)up, PG_IPPROTO_UDP, 0, ctx->uid);
	return 0;
}

/* ---- reconciliation: the sockets that still hold a recorded port -----------
 * Every socket portghost followed has state in sk_state, and the state goes
 * when the socket is destroyed: this walk lists the live ones, whatever their
 * namespace. The consumer releases what it holds and this list lacks. */
SEC("iter/bpf_sk_storage_map")
int pg_iter_live(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct pg_sk_state *st = ctx->value;
	struct sock *sk = ctx->sk;
	__u64 cookie;

	if (!sk || !st || (st->flags & (PG_SK_RELEASED | PG_SK_FILTERED)))
		return 0;
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (cookie)
		bpf_seq_write(ctx->meta->seq, &cookie, sizeof(cookie));
	return 0;
}

/* ---- process cache feed ----------------------------------------------------- */

static __always_inline void fill_task_event(struct pg_task_event *e, __u8 kind, struct task_struct *p)
{
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(p, tgid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->uid = BPF_CORE_READ(p, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
}

/* Path of an executable, leaf first: "curl\0bin\0usr\0", up to the root of
 * the task's mount namespace. One bpf_loop step per path component or mount
 * crossed: the verifier checks the step once, not every path through it. */
struct exe_walk {
	struct dentry *d;
	struct mount *mnt;
	__u32 off;
	__u16 flags;
	bool done;
};

static long exe_walk_step(__u32 i, struct exe_walk *w)
{
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct vfsmount *vmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
	struct dentry *root = BPF_CORE_READ(vmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct pg_exec_event *e;
	__u32 zero = 0;
	long n;

	if (d == root || d == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (d != root || up == mnt) {
			w->done = true; /* the root */
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		return 0;
	}
	e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e || w->off >= PG_EXE_LIMIT)
		return 1;
	n = bpf_probe_read_kernel_str(&e->exe[w->off & (PG_EXE_LIMIT - 1)], 256,
				      BPF_CORE_READ(d, d_name.name));
	if (n <= 0) {
		w->done = true;
		return 1;
	}
	w->off += n;
	w->d = parent;
	return 0;
}

static __always_inline __u32 read_exe_path(struct file *file, __u16 *flags)
{
	struct exe_walk w = {};

	w.d = BPF_CORE_READ(file, f_path.dentry);
	w.mnt = (void *)BPF_CORE_READ(file, f_path.mnt) - bpf_core_field_offset(struct mount, mnt);
	bpf_loop(2 * PG_EXE_DEPTH, exe_walk_step, &w, 0);
	if (!w.done)
		*flags |= PG_X_EXE_TRUNCATED;
	return w.off;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(pg_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct pg_exec_event *e = bpf_map_lookup_elem(&exec_scratch, &zero);
	struct mm_struct *mm;
	__u64 start, end, len;
	__u32 exe_len;

	if (!e)
		return 0;
	e->flags = 0;
	fill_task_event(&e->task, PG_KIND_EXEC, p);
	exe_len = read_exe_path(BPF_CORE_READ(bprm, file), &e->flags);
	e->exe_len = exe_len > PG_EXE_BUF ? PG_EXE_BUF : exe_len;
	mm = BPF_CORE_READ(p, mm);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > PG_ARGS_LIMIT - 1) {
		len = PG_ARGS_LIMIT - 1;
		e->flags |= PG_X_ARGS_TRUNCATED;
	}
	len &= PG_ARGS_LIMIT - 1;
	if (len && bpf_probe_read_user(e->args, len, (void *)start)) {
		len = 0;
		e->flags |= PG_X_ARGS_UNREADABLE;
	}
	e->args_len = len;
	if (!pg_armed || pg_stopping)
		return 0;
	/* only what this exec wrote: the scratch holds earlier execs' bytes */
	if (bpf_ringbuf_output(&proc_events, e, sizeof(*e) - PG_ARGS_LIMIT + (len & (PG_ARGS_LIMIT - 1)),
			       BPF_RB_NO_WAKEUP))
		counter_inc(PG_CNT_DROP_PROC);
	else
		counter_inc(PG_CNT_PROC);
	return 0;
}

static __always_inline void task_event_emit(__u8 kind, struct task_struct *p)
{
	struct pg_task_event *e;

	if (!pg_armed || pg_stopping)
		return;
	e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		counter_inc(PG_CNT_DROP_PROC);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_task_event(e, kind, p);
	counter_inc(PG_CNT_PROC);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* new processes (not threads): they inherit exe and cmdline */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(pg_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid)
		return 0;
	task_event_emit(PG_KIND_FORK, child);
	return 0;
}

/* The last thread of a process exits (not its leader: a leader may exit
 * first while other threads go on taking ports). do_exit() counts the
 * thread out of signal->live before this tracepoint. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(pg_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	task_event_emit(PG_KIND_EXIT, p);
	return 0;
}
