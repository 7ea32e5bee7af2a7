// SPDX-License-Identifier: GPL-2.0
/* No free port, at the syscall exits (syscall-exit world). */
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

/* bind() to port 0 that found no free port */
SEC("tracepoint/syscalls/sys_exit_bind")
int pg_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct pg_pending_bind *p = bpf_map_lookup_elem(&pending_bind, &zero);
	struct task_struct *t;
	struct sock *sk;
	int fd;

	if (!p || p->tid != tid)
		return 0;
	p->tid = 0;
	if (ctx->ret != -PG_EADDRINUSE)
		return 0;
	t = bpf_get_current_task_btf();
	fd = (int)PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(t));
	sk = sock_of_fd((struct task_struct *)t, fd);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) != p->cookie)
		return 0;
	exhausted_emit(sk, p->proto, PG_HOW_BIND);
	return 0;
}

/* udp send on an unbound socket whose autobind found no free port: -EAGAIN */

static __always_inline int on_send_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t;
	struct sock *sk;
	__u8 proto;
	int fd;

	if (ctx->ret != -PG_EAGAIN)
		return 0;
	t = bpf_get_current_task_btf();
	fd = (int)PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(t));
	sk = sock_of_fd((struct task_struct *)t, fd);
	if (!sk)
		return 0;
	/* a full send buffer gives EAGAIN too, but on a socket with a port */
	proto = sk_port_space(sk);
	if (BPF_CORE_READ(sk, __sk_common.skc_num) || !is_datagram(proto))
		return 0;
	exhausted_emit(sk, proto, PG_HOW_SENDMSG);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int pg_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int pg_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int pg_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx) { return on_send_exit(ctx); }
