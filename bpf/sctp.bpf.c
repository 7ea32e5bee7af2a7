// SPDX-License-Identifier: GPL-2.0
/* SCTP, where the kernel allows fexit and the sctp module is loaded:
 * SCTP binds through its own sk_prot->bind (no inet bind hook runs), and
 * every port it takes, by bind(), bindx or the autobind of an association
 * or a listen(), goes through sctp_do_bind(). Its release is
 * cgroup/sock_release's, for the sockets reported here only (an accepted or
 * peeled-off socket shares its parent's port). */
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

SEC("fentry/sctp_connect_new_asoc")
int BPF_PROG(pg_sctp_new_asoc, struct sctp_endpoint *ep, const union sctp_addr *daddr)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 sk = (__u64)BPF_CORE_READ(ep, base.sk);

	bpf_map_update_elem(&sctp_connecting, &tid, &sk, BPF_ANY);
	return 0;
}

/* The association's autobind (connect(), or a sendmsg() to a new peer) or
 * anything else (bind(), bindx, listen()'s autobind). */
static __always_inline __u8 sctp_bind_how(struct sock *sk)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *conn = bpf_map_lookup_elem(&sctp_connecting, &tid);

	if (!conn || *conn != (__u64)kernel_sk(sk))
		return PG_HOW_BIND;
	bpf_map_delete_elem(&sctp_connecting, &tid);
	return PG_HOW_CONNECT;
}

/* No socket storage here: Linux 6.1 looks the target of a program that
 * calls bpf_sk_storage_get() up in vmlinux's BTF only, and a module
 * function's id there faults the verifier. The port goes to sctp_ports,
 * where the release finds it. */
SEC("fexit/sctp_do_bind")
int BPF_PROG(pg_sctp_bind_exit, struct sock *sk, union sctp_addr *addr, int len, int ret)
{
	__u8 how = sctp_bind_how(sk);
	struct pg_sock_event *e;
	__u16 asked = 0, port, *known;
	__u64 cookie;

	/* sin_port and sin6_port lie at the same offset */
	bpf_probe_read_kernel(&asked, sizeof(asked), &addr->v4.sin_port);
	if (ret) {
		if (ret == -PG_EADDRINUSE && !asked)
			exhausted_emit(sk, PG_IPPROTO_SCTP, how);
		return 0;
	}
	port = sk->__sk_common.skc_num;
	cookie = bpf_get_socket_cookie(sk);
	known = bpf_map_lookup_elem(&sctp_ports, &cookie);
	if (!port || (known && *known == port))
		return 0; /* bindx adding an address to a bound socket */
	e = sock_event_new(PG_KIND_ASSIGN);
	if (e) {
		e->proto = PG_IPPROTO_SCTP;
		fill_from_btf_sk(e, sk); /* no peer: an SCTP socket keeps it in its association */
		e->how = how;
		if (!asked)
			e->flags |= PG_F_EPHEMERAL;
		e->cookie = cookie;
		if (!assign_commit(e, NULL))
			return 0; /* filtered: so is its release */
	}
	/* written, or lost (and counted): either way its release is due */
	if (bpf_map_update_elem(&sctp_ports, &cookie, &port, BPF_ANY))
		counter_inc(PG_CNT_DROP_STORAGE);
	return 0;
}
