// SPDX-License-Identifier: GPL-2.0
/* Sockets that held a port before the trace started (iterators, run once per
 * network namespace), and the liveness walk of reconciliation. */
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

static __always_inline void existing_emit(struct seq_file *seq, struct sock *sk, __u8 proto, __u8 state, __u32 uid)
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
	/* without state in tracing programs (Linux < 5.12), the cookie that
	 * the consumer had the kernel generate (a sock_diag dump) names it */
	if (!targ_sk_tracing) {
		e.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		if (!e.cookie)
			return;
	}
	st = targ_sk_tracing ? sk_state_of(sk, bpf_get_socket_cookie(sk)) : NULL;
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
	if (targ_sk_tracing)
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

/* ---- sk_slots: freeing the slots of sockets gone unseen ----------------------
 * A slot does not go with its socket by itself: a socket whose end no hook
 * saw (a release hook skipped, a delete that met a nested program) keeps it.
 * The slot keeps the socket's address, and the socket is still the slot's
 * while it carries the slot's cookie and holds references (tcp and udp
 * sockets come from caches whose memory stays a socket). Run by userspace
 * (BPF_PROG_TEST_RUN), never attached; returns the slots freed.
 *
 * Slots are reused at once, even while this walk stands on one: a key read
 * here may already be gone, and the value be a newer socket's. So a slot
 * that looks gone is looked up again by its cookie, which only its own
 * socket ever inserts, and checked on what the lookup finds. */
static __always_inline bool slot_alive(__u64 cookie, const struct pg_sk_state *st)
{
	struct sock *sk = (struct sock *)st->sk_addr;
	__u64 now = 0;
	int refs = 0;

	bpf_core_read(&now, sizeof(now), &sk->__sk_common.skc_cookie.counter);
	bpf_core_read(&refs, sizeof(refs), &sk->__sk_common.skc_refcnt.refs.counter);
	return now == cookie && refs > 0;
}

static long sweep_slot(struct bpf_map *map, __u64 *key, struct pg_sk_state *st, __u64 *freed)
{
	__u64 cookie = *key;

	asm volatile("" ::: "memory"); /* the key before the value */
	if (slot_alive(cookie, st))
		return 0;
	st = bpf_map_lookup_elem(&sk_slots, &cookie);
	if (st && !slot_alive(cookie, st) && !bpf_map_delete_elem(&sk_slots, &cookie))
		(*freed)++;
	return 0;
}

SEC("raw_tp")
int pg_sweep_slots(void *ctx)
{
	__u64 freed = 0;

	bpf_for_each_map_elem(&sk_slots, sweep_slot, &freed, 0);
	return (int)freed;
}
