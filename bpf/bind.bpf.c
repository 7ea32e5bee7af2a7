// SPDX-License-Identifier: GPL-2.0
/* bind(): the port a bind obtained, fixed or chosen (every world). */
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

char LICENSE[] SEC("license") = "GPL";

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
	st = sk_state_of(sk, bpf_get_socket_cookie(ctx));
	if (!st)
		return PG_ALLOW;
	pending_resolve(kernel_sk(sk), st);
	/* bind() again: only a socket whose port was given up can */
	if (is_datagram(ctx->protocol))
		port_given_up(kernel_sk(sk), st, PG_GIVEN_UP_LATER);
	st->req_port = bpf_ntohs(ctx->user_port);
	st->flags |= PG_SK_BIND_PENDING;
	if (targ_defer && ctx->user_port == 0 && !sk->src_port && bind_addr_is_local(ctx, family)) {
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
	st = sk_state_of(sk, bpf_get_socket_cookie(sk));
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

		l[0] = sk->src_ip6[0];
		l[1] = sk->src_ip6[1];
		l[2] = sk->src_ip6[2];
		l[3] = sk->src_ip6[3];
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
