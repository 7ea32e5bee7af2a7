/* SPDX-License-Identifier: GPL-2.0 */
/* The socket behind a hook's context: its port space, addresses, namespace. */
#ifndef PORTGHOST_LIB_SOCK_BPF_H
#define PORTGHOST_LIB_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"
#include "task.bpf.h"

#define PG_SOCK_BINDPORT_LOCK 8
#define PG_SHUTDOWN_MASK 3 /* RCV_SHUTDOWN | SEND_SHUTDOWN */
#define PG_EADDRINUSE 98
#define PG_EAGAIN 11
#define PG_EEXIST 17

/* The port space of a socket, or 0 for one portghost does not follow (an
 * MPTCP socket itself: its subflows are TCP sockets and are followed). */
static __always_inline __u8 port_space(__u32 family, __u32 proto)
{
	if (family != PG_AF_INET && family != PG_AF_INET6)
		return 0;
	if (proto == PG_IPPROTO_TCP || proto == PG_IPPROTO_UDP || proto == PG_IPPROTO_UDPLITE)
		return proto;
	return 0;
}

static __always_inline bool is_datagram(__u32 proto) { return proto == PG_IPPROTO_UDP || proto == PG_IPPROTO_UDPLITE; }

/* The struct sock behind a bpf_sock (cgroup and sockops contexts), as a plain
 * pointer for CO-RE reads: the verifier forbids arithmetic on socket and
 * context pointers, so the address is copied out as a number first. */
static __always_inline struct sock *kernel_sk(const void *sk)
{
	__u64 addr = 0;

	bpf_probe_read_kernel(&addr, sizeof(addr), &sk);
	return (struct sock *)addr;
}

static __always_inline __u8 sk_proto(struct sock *sk) { return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol); }

/* port_space() of a kernel socket */
static __always_inline __u8 sk_port_space(struct sock *sk)
{
	return port_space(BPF_CORE_READ(sk, __sk_common.skc_family), sk_proto(sk));
}

static __always_inline bool sk_is_mptcp(struct sock *sk)
{
	struct tcp_sock *tp = (void *)sk;

	if (!bpf_core_field_exists(tp->is_mptcp))
		return false;
	return BPF_CORE_READ(tp, is_mptcp);
}

/* The local port that inet_hash_connect() or an autobind set; it outlives
 * the port's release (skc_num is cleared then, inet_sport is not). */
static __always_inline __u16 sk_sport(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* Only what a bpf_sock context cannot give: the namespace, and whether the
 * socket is an MPTCP subflow (e->proto set first). */
static __always_inline void fill_netns_from_sk(struct pg_sock_event *e, struct sock *sk)
{
	set_netns(e, BPF_CORE_READ(sk, __sk_common.skc_net.net));
	if (e->proto == PG_IPPROTO_TCP && sk_is_mptcp(sk))
		e->flags |= PG_F_MPTCP;
}

/* Addresses, ports and namespace of a kernel socket (e->proto set first). */
static __always_inline void fill_from_sk(struct pg_sock_event *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == PG_AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	fill_netns_from_sk(e, sk);
}

/* fill_from_sk() for a socket the program may load from directly (a BTF
 * pointer: a tp_btf or fexit argument, a bpf_skc_to_tcp_sock() result):
 * plain loads, where each CO-RE read would be a helper call. */
static __always_inline void fill_from_btf_sk(struct pg_sock_event *e, struct sock *sk)
{
	e->family = sk->__sk_common.skc_family;
	e->lport = sk->__sk_common.skc_num;
	e->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == PG_AF_INET) {
		__u32 l = sk->__sk_common.skc_rcv_saddr, r = sk->__sk_common.skc_daddr;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		l[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		l[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		l[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		r[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		r[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		r[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		r[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
	fill_netns_from_sk(e, sk);
}

/* Addresses and ports from a bpf_sock (direct loads, no kernel reads). */
static __always_inline void fill_from_bpf_sock(struct pg_sock_event *e, struct bpf_sock *sk)
{
	e->family = sk->family;
	e->lport = sk->src_port;
	e->rport = bpf_ntohs(sk->dst_port);
	if (sk->family == PG_AF_INET) {
		__u32 l = sk->src_ip4, r = sk->dst_ip4;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = sk->src_ip6[0];
		l[1] = sk->src_ip6[1];
		l[2] = sk->src_ip6[2];
		l[3] = sk->src_ip6[3];
		r[0] = sk->dst_ip6[0];
		r[1] = sk->dst_ip6[1];
		r[2] = sk->dst_ip6[2];
		r[3] = sk->dst_ip6[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
}

static __always_inline void clear_peer(struct pg_sock_event *e)
{
	e->rport = 0;
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
}

static __always_inline void fill_from_sock_ops(struct pg_sock_event *e, struct bpf_sock_ops *ops)
{
	e->family = ops->family;
	e->lport = ops->local_port;
	e->rport = bpf_ntohl(ops->remote_port);
	if (ops->family == PG_AF_INET) {
		__u32 l = ops->local_ip4, r = ops->remote_ip4;

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		__u32 l[4], r[4];

		l[0] = ops->local_ip6[0];
		l[1] = ops->local_ip6[1];
		l[2] = ops->local_ip6[2];
		l[3] = ops->local_ip6[3];
		r[0] = ops->remote_ip6[0];
		r[1] = ops->remote_ip6[1];
		r[2] = ops->remote_ip6[2];
		r[3] = ops->remote_ip6[3];
		__builtin_memcpy(e->laddr, l, 16);
		__builtin_memcpy(e->raddr, r, 16);
	}
}

static __always_inline struct sock *sock_of_fd(struct task_struct *t, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	struct socket *so;

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	return so ? BPF_CORE_READ(so, sk) : NULL;
}

#endif /* PORTGHOST_LIB_SOCK_BPF_H */
