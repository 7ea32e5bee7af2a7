/* SPDX-License-Identifier: GPL-2.0 */
/* Building release records, shared by the close, the move to CLOSE (seen by
 * two hooks: tp_btf/inet_sock_set_state for every socket, sockops
 * BPF_SOCK_OPS_STATE_CB for those whose port sockops reported), and the
 * sights of a socket that gave up its port while it stays open. */
#ifndef PORTGHOST_LIB_RELEASE_BPF_H
#define PORTGHOST_LIB_RELEASE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"
#include "ring.bpf.h"
#include "sock.bpf.h"
#include "state.bpf.h"

static __always_inline bool release_due(struct pg_sk_state *st)
{
	if (st->flags & (PG_SK_RELEASED | PG_SK_FILTERED))
		return false;
	return st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING);
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

/* How a port given up without a close was seen. */
enum pg_given_up_sight {
	PG_GIVEN_UP_EXACT = 0, /* at the call that gave it up (its fexit) */
	PG_GIVEN_UP_LATER = 1, /* at the socket's next sight: a send, connect, bind or close */
};

/* A datagram socket that is still open no longer holds the port it was
 * reported with: connect(AF_UNSPEC) or an abort (sock_diag SOCK_DESTROY)
 * unhashed it (__udp_disconnect(), unless the user bound that port), and a
 * later autobind may have taken another. The reported port's release, before
 * anything else of the socket is written. Seen later, it is marked late; in
 * the syscall-exit world the connect's exit may have released it already, so
 * the consumer keeps it only for a socket it still holds with that port. */
static __always_inline void port_given_up(struct sock *sk, struct pg_sk_state *st, enum pg_given_up_sight sight)
{
	struct pg_sock_event *e;
	__u8 proto;

	if (!st || !(st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING)) || (st->flags & PG_SK_RELEASED) || !st->port)
		return;
	if (BPF_CORE_READ(sk, __sk_common.skc_num) == st->port)
		return;
	proto = sk_port_space(sk);
	if (!is_datagram(proto))
		return;
	if (st->flags & PG_SK_FILTERED) {
		st->flags |= PG_SK_RELEASED;
		return;
	}
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e) {
		/* lost, and counted: the port is gone all the same */
		st->flags |= PG_SK_RELEASED;
		return;
	}
	e->proto = proto;
	fill_from_sk(e, sk);
	e->lport = st->port;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	e->flags |= PG_F_DISCONNECT;
	if (sight == PG_GIVEN_UP_LATER)
		e->flags |= targ_connect_exit ? PG_F_LATE | PG_F_UNCHECKED : PG_F_LATE;
	release_commit(e, st);
}

/* A tcp socket moves to CLOSE: is its port's release due now? */
static __always_inline bool tcp_close_release_due(struct sock *sk, struct pg_sk_state *st)
{
	if (!st || !release_due(st))
		return false;
	/* A port bound by the user (SOCK_BINDPORT_LOCK) survives CLOSE while the
	 * socket is open (failed connect, reset, shutdown of a listener): it goes
	 * when the file does, and cgroup/sock_release reports it then. Once the
	 * user has closed it (close() sets the whole shutdown mask first), the
	 * move to CLOSE is the end. A kernel socket (an MPTCP subflow) has no
	 * file and no sock_release hook: CLOSE is the last sight of it. */
	return !((BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK) &&
		 BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) != PG_SHUTDOWN_MASK &&
		 !BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock));
}

/* The release of a tcp socket with state at its move to CLOSE, once
 * tcp_close_release_due(). Both hooks that see the move run in
 * tcp_set_state(), one after the other on one CPU (sockops first): the
 * second finds the port released. sk is a BTF pointer the program may load
 * from directly; the cookie's helper differs by context. */
static __always_inline void tcp_close_release(struct sock *sk, struct pg_sk_state *st, int oldstate, __u64 cookie)
{
	struct pg_sock_event *e;

	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return;
	e->proto = PG_IPPROTO_TCP;
	fill_from_btf_sk(e, sk);
	e->state = oldstate;
	/* The active closer keeps the port in TIME_WAIT. */
	if (oldstate == PG_TCP_FIN_WAIT1 || oldstate == PG_TCP_FIN_WAIT2 || oldstate == PG_TCP_CLOSING)
		e->flags |= PG_F_TIMEWAIT;
	/* tcp_set_state() puts the port (skc_num is 0 by now, or soon) */
	e->lport = st->port;
	e->cookie = cookie;
	if (st->flags & PG_SK_CLOSED) {
		e->flags |= PG_F_CLOSER;
		e->pid = st->closer_pid;
		e->tid = st->closer_tid;
		__builtin_memcpy(e->comm, st->closer_comm, PG_COMM_LEN);
	}
	release_commit(e, st);
}

#endif /* PORTGHOST_LIB_RELEASE_BPF_H */
