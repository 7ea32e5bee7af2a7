/* SPDX-License-Identifier: GPL-2.0 */
/* Building assign and exhausted records, shared by every path that takes a port. */
#ifndef PORTGHOST_LIB_ASSIGN_BPF_H
#define PORTGHOST_LIB_ASSIGN_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"
#include "task.bpf.h"
#include "ring.bpf.h"
#include "sock.bpf.h"
#include "state.bpf.h"

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
			st->flags =
				(st->flags | PG_SK_ASSIGNED | PG_SK_FILTERED) & ~(PG_SK_RELEASED | PG_SK_CONNECTING);
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
	st->flags =
		(st->flags | PG_SK_ASSIGNED) & ~(PG_SK_RELEASED | PG_SK_FILTERED | PG_SK_CONNECTING | PG_SK_DEFERRED);
	st->port = port;
}

/* A port that was taken where no hook saw it (a datagram send that failed
 * after its autobind, a connect through the 32-bit syscall ABI or io_uring
 * where the connect's end is seen only at a syscall exit, a TFO-deferred
 * connect closed before writing), seen now for the first time. Not late
 * when the connect() that took it left its task in st (PG_SK_DEFERRED).
 * False when the filters hid it: its release is hidden too. */
static __always_inline bool assign_late(struct sock *sk, __u64 cookie, __u8 proto, __u16 port, __u8 how,
					struct pg_sk_state *st)
{
	struct pg_sock_event *e = sock_event_new(PG_KIND_ASSIGN);

	if (!e) {
		assign_lost(st, port);
		return true;
	}
	e->proto = proto;
	fill_from_sk(e, sk);
	e->lport = port;
	e->how = how;
	e->flags |= PG_F_LATE;
	if (!(BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK))
		e->flags |= PG_F_EPHEMERAL;
	e->cookie = cookie;
	return assign_commit(e, st);
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
		if (is_datagram(proto) && BPF_CORE_READ(sk, sk_txhash) != st->conn_txhash &&
		    BPF_CORE_READ(sk, __sk_common.skc_state) != PG_TCP_ESTABLISHED) {
			/* the connect() succeeded (it drew a new txhash) and was
			 * undone since (connect(AF_UNSPEC), an abort): the port it
			 * took is gone unread, and the socket's port now, if any,
			 * is a later one's. Counted, never pinned on the connect. */
			st->flags &= ~PG_SK_DEFERRED;
			counter_inc(PG_CNT_UNSEEN_CONNECT);
			return;
		}
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

/* A tcp socket's port, seen where it is known: TCP_CONNECT_CB, TCP_LISTEN_CB
 * (ops: its fields are direct loads) or the end of inet_hash_connect(). In
 * both, sk is a BTF pointer the program may load from directly. */
static __always_inline void tcp_assign(struct sock *sk, struct bpf_sock_ops *ops, __u64 cookie, struct pg_sk_state *st,
				       __u8 how)
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

#endif /* PORTGHOST_LIB_ASSIGN_BPF_H */
