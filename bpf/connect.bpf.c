// SPDX-License-Identifier: GPL-2.0
/* connect(): the cgroup hook notes it; its port is taken at its end (fexit,
 * a syscall exit) or at the socket's next sight (socket-tracepoint world). */
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
	st->conn_txhash = BPF_CORE_READ(kernel_sk(ctx->sk), sk_txhash);
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
		if ((!targ_connect_exit && !targ_defer) || sk->src_port)
			return PG_ALLOW;
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp || !BPF_CORE_READ_BITFIELD(tp, fastopen_connect))
			return PG_ALLOW;
		st = sk_state_of(sk, bpf_get_socket_cookie(ctx));
		if (targ_defer)
			defer_connect(ctx, st);
		else
			note_connect(ctx, st, 0);
		return PG_ALLOW;
	}
	if (!is_datagram(ctx->protocol))
		return PG_ALLOW;
	port = sk->src_port;
	st = sk_state_of(sk, bpf_get_socket_cookie(ctx));
	if (st)
		pending_resolve(kernel_sk(sk), st);
	sk_state_fold(st, bpf_get_socket_cookie(ctx));
	/* the port reported before is gone (a disconnect since) */
	port_given_up(kernel_sk(sk), st, PG_GIVEN_UP_LATER);
	/* a port nobody reported: taken by a send that failed after its autobind */
	if (port && st && !already_reported(st, port))
		assign_late(kernel_sk(sk), bpf_get_socket_cookie(ctx), ctx->protocol, port, PG_HOW_SENDMSG, st);

	if (!targ_defer)
		note_connect(ctx, st, port);
	else if (!port)
		defer_connect(ctx, st);
	return PG_ALLOW;
}

SEC("cgroup/connect4")
int pg_connect4(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

SEC("cgroup/connect6")
int pg_connect6(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

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

/* connect(AF_UNSPEC) on a datagram socket left it without a port: whatever
 * port was reported is given up. This program cannot read socket storage, so
 * the release names no port: the consumer releases the one it holds for the
 * socket, if any (a later sight of the socket releases it again, unchecked,
 * and that one the consumer no longer holds). */
static __always_inline void disconnect_done_at(struct pt_regs *regs, struct task_struct *t)
{
	struct sockaddr *uaddr = (struct sockaddr *)PT_REGS_PARM2_CORE_SYSCALL(regs);
	struct pg_sock_event *e;
	sa_family_t family = PG_AF_INET;
	struct sock *sk;
	__u64 cookie;
	__u8 proto;

	if (bpf_probe_read_user(&family, sizeof(family), &uaddr->sa_family) || family != PG_AF_UNSPEC)
		return;
	sk = sock_of_fd(t, (int)PT_REGS_PARM1_CORE_SYSCALL(regs));
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_num))
		return;
	proto = sk_port_space(sk);
	/* no cookie: no hook of ours ever saw the socket */
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!is_datagram(proto) || !cookie)
		return;
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return;
	e->proto = proto;
	fill_from_sk(e, sk);
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->cookie = cookie;
	e->flags |= PG_F_DISCONNECT | PG_F_UNCHECKED;
	release_commit(e, NULL);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int pg_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);

	if (!bpf_map_lookup_elem(&pending_connect, &(__u32){(__u32)bpf_get_current_pid_tgid()})) {
		if (ctx->ret == 0)
			disconnect_done_at(regs, t);
		return 0;
	}
	connect_done_at(sock_of_fd((struct task_struct *)t, (int)PT_REGS_PARM1_CORE_SYSCALL(regs)), NULL);
	return 0;
}

/* The same where the kernel has fexit: any connect, io_uring's too, and
 * connect(AF_UNSPEC), which no cgroup hook sees: the port it gave up. */
SEC("fexit/inet_dgram_connect")
int BPF_PROG(pg_dgram_connect_exit, struct socket *sock, struct sockaddr *uaddr, int addr_len, int flags, int ret)
{
	struct sock *sk = sock->sk;
	struct pg_sk_state *st;

	if (!sk)
		return 0;
	st = sk_state_of(sk, bpf_get_socket_cookie(sk));
	port_given_up(sk, st, BPF_CORE_READ(uaddr, sa_family) == PG_AF_UNSPEC ? PG_GIVEN_UP_EXACT : PG_GIVEN_UP_LATER);
	connect_done_at(sk, st);
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
	tcp_assign((struct sock *)tp, NULL, bpf_get_socket_cookie(sk), sk_state_of(sk, bpf_get_socket_cookie(sk)),
		   PG_HOW_CONNECT);
	return 0;
}
