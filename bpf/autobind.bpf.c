// SPDX-License-Identifier: GPL-2.0
/* Autobind and port allocators, where the kernel has fentry/fexit:
 * A failure is seen whatever asked for the port (a syscall, io_uring, a
 * kernel socket). Userspace loads either these or the syscall-exit
 * tracepoints (syscall_exits.bpf.c), never both. */
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
	st = sk_state_of(sk, bpf_get_socket_cookie(sk));
	/* an abort (sock_diag SOCK_DESTROY) unhashed the port reported before */
	port_given_up(sk, st, PG_GIVEN_UP_LATER);
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
