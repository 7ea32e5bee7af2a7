// SPDX-License-Identifier: GPL-2.0
/* A datagram send's autobind: cgroup/sendmsg (syscall-exit world) or the end
 * of every send (tp_btf/sock_send_length, socket-tracepoint world). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "lib/maps.bpf.h"
#include "lib/task.bpf.h"
#include "lib/ring.bpf.h"
#include "lib/sock.bpf.h"
#include "lib/state.bpf.h"
#include "lib/assign.bpf.h"
#include "lib/release.bpf.h"

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
	st = sk_state_of(sk, bpf_get_socket_cookie(ctx));
	/* a connect or bind whose end was deferred (cgroup world): its port,
	 * with its own time and task, before this send is taken for it */
	if (st)
		pending_resolve(kernel_sk(sk), st);
	sk_state_fold(st, bpf_get_socket_cookie(ctx));
	port_given_up(kernel_sk(sk), st, PG_GIVEN_UP_LATER);
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
	st = sk_state_find(sk, sk->__sk_common.skc_cookie.counter);
	if (st) {
		pending_resolve(sk, st);
		port_given_up(sk, st, PG_GIVEN_UP_LATER);
	}
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
		st = sk_state_of(sk, bpf_get_socket_cookie(sk));
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
