// SPDX-License-Identifier: GPL-2.0
/* Releases: a tcp socket moving to CLOSE (tp_btf/inet_sock_set_state) and
 * the last close of a socket's file (cgroup/sock_release), which also names
 * the closer. Each recorded port is released once. */
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

/* A tcp socket moves to CLOSE: its port goes (to TIME_WAIT, or free).
 * Sockets without state here were never assigned a port by anyone we saw:
 * accepted children share their listener's port and are skipped. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(pg_set_state, struct sock *sk, int oldstate, int newstate)
{
	struct pg_sock_event *e;
	struct pg_sk_state *st = NULL;
	__u64 cookie = 0;
	__u16 sport = 0;

	/* an MPTCP socket moves too (its subflows are the TCP sockets) */
	if (newstate != PG_TCP_CLOSE || sk_proto(sk) != PG_IPPROTO_TCP)
		return 0;
	if (targ_sk_tracing) {
		st = sk_state_find(sk, BPF_CORE_READ(sk, __sk_common.skc_cookie.counter));
		sk_state_fold(st, bpf_get_socket_cookie(sk));
	}
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
		if (!sport) {
			/* connect() found no free local port (inet_hash_connect
			 * failed, EADDRNOTAVAIL): in connect(), so the task is its */
			exhausted_emit(sk, PG_IPPROTO_TCP, PG_HOW_CONNECT);
			return 0;
		}
		if (targ_sk_tracing) {
			/* it had a port nobody reported: a TFO-deferred connect
			 * closed before writing, where connect()'s end is unseen */
			if (!st)
				st = sk_state_of(sk, bpf_get_socket_cookie(sk));
			assign_late(sk, bpf_get_socket_cookie(sk), PG_IPPROTO_TCP, sport, PG_HOW_FASTOPEN, st);
		}
	}
	if (targ_sk_tracing) {
		/* also run by sockops BPF_SOCK_OPS_STATE_CB for the sockets whose
		 * port sockops reported: this program is skipped when it runs
		 * nested on its CPU (a softirq moving a socket to CLOSE while
		 * it runs in process context: the kernel's recursion guard for
		 * tracing programs, counted only in recursion_misses) */
		if (tcp_close_release_due(sk, st))
			tcp_close_release(sk, st, oldstate, bpf_get_socket_cookie(sk));
		/* the socket's end: its file is gone, or it never had one */
		if (st && ((st->flags & PG_SK_ORPHAN) || BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock)))
			sk_state_end(st, BPF_CORE_READ(sk, __sk_common.skc_cookie.counter));
		return 0;
	}
	/* A port bound by the user (SOCK_BINDPORT_LOCK) survives CLOSE while the
	 * socket is open: cgroup/sock_release reports it then (see
	 * tcp_close_release_due) */
	if ((BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & PG_SOCK_BINDPORT_LOCK) &&
	    BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) != PG_SHUTDOWN_MASK &&
	    !BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock))
		return 0;
	/* no cookie: no hook of ours saw the socket (an accepted child),
	 * so the consumer holds nothing of it */
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	sport = sk_sport(sk);
	if (!sport || !cookie)
		return 0;
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return 0;
	e->proto = PG_IPPROTO_TCP;
	fill_from_btf_sk(e, sk);
	e->state = oldstate;
	/* The active closer keeps the port in TIME_WAIT. */
	if (oldstate == PG_TCP_FIN_WAIT1 || oldstate == PG_TCP_FIN_WAIT2 || oldstate == PG_TCP_CLOSING)
		e->flags |= PG_F_TIMEWAIT;
	/* no state: the port the socket still names (tcp_set_state()
	 * has put it, but inet_sport stays), and a cookie that any
	 * hook that saw the socket generated */
	e->lport = sport;
	e->cookie = cookie;
	e->flags |= PG_F_UNCHECKED;
	release_commit(e, NULL);
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

/* A socket that holds no tcp connection lets its port go with its last file
 * reference. Returns the state it used (none is made here, even for a port
 * held without a record), which ends with the socket. */
static __always_inline struct pg_sk_state *release_at_close(struct bpf_sock *sk, struct pg_sk_state *st, __u8 proto)
{
	struct pg_sock_event *e;
	struct sock *ksk = NULL;
	__u16 port = 0;

	if (st && (st->flags & (PG_SK_DEFERRED | PG_SK_BIND_ANY)))
		pending_resolve(kernel_sk(sk), st);
	if (st && is_datagram(proto))
		port_given_up(kernel_sk(sk), st, PG_GIVEN_UP_LATER);
	/* a datagram socket may hold another port than the one reported (that
	 * one was given up, and released just now) */
	if (!ever_reported(st) || !st->port || is_datagram(proto)) {
		ksk = kernel_sk(sk);
		port = BPF_CORE_READ(ksk, __sk_common.skc_num);
	}
	if (!ever_reported(st) || (port && !already_reported(st, port))) {
		/* a port held without a record: a datagram send that failed after
		 * its autobind, a connect whose end no hook saw, a socket bound
		 * before the trace that no iterator lists */
		if (!port)
			return st;
		/* no state is made for it at the socket's end (its release
		 * follows at once), unless the filters hide it */
		if (!assign_late(ksk, bpf_get_socket_cookie(sk), proto, port,
				 !is_datagram(proto)			? PG_HOW_NONE
				 : st && (st->flags & PG_SK_CONNECTING) ? PG_HOW_CONNECT
									: PG_HOW_SENDMSG,
				 st) &&
		    !st)
			return st;
	}
	if (st && !release_due(st))
		return st;
	e = sock_event_new(PG_KIND_RELEASE);
	if (!e)
		return st;
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

		r[0] = sk->dst_ip6[0];
		r[1] = sk->dst_ip6[1];
		r[2] = sk->dst_ip6[2];
		r[3] = sk->dst_ip6[3];
		__builtin_memcpy(e->raddr, r, 16);
	}
	e->lport = st && st->port ? st->port : port;
	e->state = sk->state;
	e->cookie = bpf_get_socket_cookie(sk);
	/* without state in tracing programs, CLOSE may have released it
	 * already: the consumer knows */
	if (!targ_sk_tracing && proto == PG_IPPROTO_TCP)
		e->flags |= PG_F_UNCHECKED;
	fill_closer(e);
	release_commit(e, st);
	return st;
}

/* The socket's end, once its state is found: a tcp socket still connected or
 * listening releases at CLOSE (which is then its end), any other at once. */
static __always_inline int release_with_state(struct bpf_sock *sk, struct pg_sk_state *st, __u64 cookie, __u8 proto)
{
	sk_state_fold(st, cookie);
	if (proto == PG_IPPROTO_TCP && sk->state != BPF_TCP_CLOSE) {
		if (st && release_due(st))
			note_closer(st);
		if (st)
			st->flags |= PG_SK_ORPHAN;
		return PG_ALLOW;
	}
	sk_state_end(release_at_close(sk, st, proto), cookie);
	return PG_ALLOW;
}

/* With socket slots, a state is a slot or socket storage: two pointer types
 * the verifier never merges, so that inline, each path after the lookup
 * would be verified for both (once the largest share of the programs' load
 * time). A global function is verified once, for any state. (Linux >= 5.12
 * takes a pointer argument; the slots need 5.13.) */
__noinline int release_slots_tail(struct bpf_sock *sk, struct pg_sk_state *st, __u64 cookie, __u32 proto)
{
	return release_with_state(sk, st, cookie, proto);
}

/* The last reference to the socket file is gone (never called for kernel
 * sockets). The port and addresses come from the kernel socket. */
static __always_inline int on_sock_release(struct bpf_sock *sk, bool slots)
{
	__u8 proto = port_space(sk->family, sk->protocol);
	struct pg_sk_state *st;
	__u64 cookie;

	if (!proto) {
		if ((sk->family == PG_AF_INET || sk->family == PG_AF_INET6) && sk->protocol == PG_IPPROTO_SCTP)
			sctp_release(sk);
		return PG_ALLOW;
	}
	cookie = bpf_get_socket_cookie(sk);
	st = sk_state_find(sk, cookie);
	if (slots)
		return release_slots_tail(sk, st, cookie, proto);
	return release_with_state(sk, st, cookie, proto);
}

/* State in socket storage only (Linux < 5.13, or --socket-slots 0) */
SEC("cgroup/sock_release")
int pg_sock_release(struct bpf_sock *sk) { return on_sock_release(sk, false); }

/* State in a slot, or in socket storage once the slots are full */
SEC("cgroup/sock_release")
int pg_sock_release_slots(struct bpf_sock *sk) { return on_sock_release(sk, true); }
