// SPDX-License-Identifier: GPL-2.0
/* tcp connect(), Fast Open and listen(): the port, once known (sockops, every world). */
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

/* A socket whose port sockops reported moves to CLOSE: its release, here as
 * well as in tp_btf/inet_sock_set_state, which the kernel skips when it runs
 * nested on its CPU (a softirq moving a socket to CLOSE while the program
 * runs in process context: the recursion guard of tracing programs, seen
 * only in its recursion_misses). Sockops programs have no such guard. */
static __always_inline void state_cb(struct bpf_sock_ops *ops)
{
	struct pg_sk_state *st;
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	struct sock *ksk;

	if (ops->args[1] != PG_TCP_CLOSE)
		return;
	sk = ops->sk;
	if (!sk)
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	ksk = (struct sock *)tp;
	st = sk_state_find(tp, bpf_get_socket_cookie(ops));
	sk_state_fold(st, bpf_get_socket_cookie(ops));
	if (tcp_close_release_due((struct sock *)tp, st))
		tcp_close_release((struct sock *)tp, st, ops->args[0], bpf_get_socket_cookie(ops));
	/* the socket's end once orphaned, where the tracing program keeps no
	 * state (it ends it otherwise, after this program) */
	if (!targ_sk_tracing && st && ((st->flags & PG_SK_ORPHAN) || BPF_CORE_READ_BITFIELD_PROBED(ksk, sk_kern_sock)))
		sk_state_end(st, bpf_get_socket_cookie(ops));
}

/* tcp connect() / TFO / listen(): the port is known when these run. */
SEC("sockops")
int pg_sockops(struct bpf_sock_ops *ops)
{
	__u32 op = ops->op;
	struct pg_sk_state *st;
	struct bpf_sock *sk;
	struct tcp_sock *tp;

	if (op == BPF_SOCK_OPS_STATE_CB) {
		state_cb(ops);
		return PG_SOCKOPS_DONE;
	}
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return PG_SOCKOPS_DONE;
	if (ops->family != PG_AF_INET && ops->family != PG_AF_INET6)
		return PG_SOCKOPS_DONE;
	sk = ops->sk;
	if (!sk)
		return PG_SOCKOPS_DONE;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return PG_SOCKOPS_DONE;
	st = sk_state_of(sk, bpf_get_socket_cookie(ops));
	tcp_assign((struct sock *)tp, ops, bpf_get_socket_cookie(ops), st,
		   op == BPF_SOCK_OPS_TCP_LISTEN_CB ? PG_HOW_LISTEN : PG_HOW_CONNECT);
	/* its release at CLOSE (state_cb). Only a connecting socket: a
	 * listener moves to CLOSE in process context, where no run of the
	 * tracing program can be nested (and its accepted children would
	 * inherit the flag, a run for each of their state changes) */
	if (st && op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return PG_SOCKOPS_DONE;
}
