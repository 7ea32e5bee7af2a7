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

/* tcp connect() / TFO / listen(): the port is known when these run. */
SEC("sockops")
int pg_sockops(struct bpf_sock_ops *ops)
{
	__u32 op = ops->op;
	struct pg_sk_state *st;
	struct bpf_sock *sk;
	struct tcp_sock *tp;

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
	st = sk_state_of(sk);
	tcp_assign((struct sock *)tp, ops, bpf_get_socket_cookie(ops), st,
		   op == BPF_SOCK_OPS_TCP_LISTEN_CB ? PG_HOW_LISTEN : PG_HOW_CONNECT);
	return PG_SOCKOPS_DONE;
}
