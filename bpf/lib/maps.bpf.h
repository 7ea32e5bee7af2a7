/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The single place for maps and load-time knobs (rodata, targ_ prefix).
 * Every program file includes it: each definition is __weak, so that the
 * linker (bpftool gen object) keeps one of each. */
#ifndef PORTGHOST_MAPS_BPF_H
#define PORTGHOST_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "portghost.h"

/* ---- knobs, set by userspace between open and load ---------------------- */
#define PG_ANY 0 /* sentinel for "no filter" on numeric knobs */

__weak const volatile __u32 targ_tgid = PG_ANY;
__weak const volatile __u8 targ_proto = PG_ANY;	 /* PG_IPPROTO_TCP / _UDP / _UDPLITE */
__weak const volatile __u8 targ_family = PG_ANY; /* AF_INET / AF_INET6 */
__weak const volatile __u16 targ_port_lo = 0;
__weak const volatile __u16 targ_port_hi = 65535;
__weak const volatile __u32 targ_netns = PG_ANY;
__weak const volatile __u64 targ_cgroup_id = PG_ANY; /* only tasks in this cgroup or below */
__weak const volatile __u32 targ_cgroup_level = 0;   /* depth of targ_cgroup_id */
__weak const volatile bool targ_ephemeral_only = false;
__weak const volatile bool targ_comm_set = false;
__weak const volatile char targ_comm[PG_COMM_LEN] = {};
/* Wake the consumer once a CPU has produced this many bytes since its last
 * wakeup (counted per CPU: reading the ring's shared positions on every
 * record costs more than the record itself when CPUs contend); it also
 * drains on a timer. */
__weak const volatile __u64 targ_wakeup_bytes = 256 * 1024;
/* ... or once a record comes this long after the last wakeup: under a steady
 * trickle a record waits at most about this long, not a whole timer period. */
__weak const volatile __u64 targ_wakeup_delay_ns = 50ULL * 1000 * 1000;

/* The end of a connect() is seen at the syscall's exit (no fexit here): the
 * cgroup connect hook then also notes TCP Fast Open connects, whose port
 * comes in connect() but whose TCP_CONNECT_CB waits for the first write. */
__weak const volatile bool targ_connect_exit = false;
/* The ends of connect() and bind() are seen late (the socket-tracepoint
 * world, and the cgroup world of kernels whose syscall exits cannot read
 * their socket): a connect()'s port is taken at the socket's next sight (a
 * send, connect, bind or its release), with the connect's time and task
 * kept in its socket storage; a bind() to port 0 that found no free port is
 * inferred there too. */
__weak const volatile bool targ_defer = false;
/* sys_exit_bind is attached (syscall-exit world): bind() fills pending_bind */
__weak const volatile bool targ_bind_exit = false;
/* bpf_get_current_task_btf() is allowed in every program type that names a
 * task (probed by userspace): the task is read with plain loads */
__weak const volatile bool targ_task_btf = false;
/* Tracing programs (tp_btf, iterators) may use socket storage and
 * bpf_get_socket_cookie() (Linux >= 5.12). Without it (5.10), the move to
 * CLOSE cannot tell whether a socket's port was reported: its release goes
 * out marked PG_F_UNCHECKED, with the cookie read from the socket, and the
 * consumer keeps it only for a socket it holds. */
__weak const volatile bool targ_sk_tracing = true;
/* Socket state lives in sk_slots (preallocated, keyed by the socket cookie)
 * and only when that is full in socket storage: false keeps it in storage. */
__weak const volatile bool targ_sk_slots = true;

/* Set by userspace once every program is attached: before, none produces a
 * record, so no assign can go out while its release hook is not yet live. */
__weak volatile bool pg_armed = false;
/* Set by userspace around a run of the tcp/udp iterators that only lists
 * which sockets are alive (reconciliation): no state is touched then. */
__weak volatile bool pg_iter_liveness = false;
/* Set by userspace when it stops: from then on nothing new is produced, so
 * its final drain ends even under a flood (faster than detaching hooks). */
__weak volatile bool pg_stopping = false;
/* Boot time of the last wakeup forced by a record (racy by design: two CPUs
 * may both wake the consumer, which is harmless). */
__weak __u64 pg_last_wakeup_ns = 0;

/* ---- per-socket state (struct pg_sk_state: portghost.h) ------------------ */
/* The state of a socket, from the first hook that needs it to the socket's
 * end (its last file reference, or a tcp socket's CLOSE once orphaned).
 * Preallocated: no allocation per socket (socket storage costs about 570 ns
 * to create, and an RCU free at the socket's end). When it is full, or an
 * insert meets a nested program on its CPU, the state goes to socket
 * storage instead (counted: PG_CNT_SLOTS_FULL); an entry whose socket's end
 * no hook saw is found by the liveness walk and removed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by userspace before load */
	__type(key, __u64);	    /* socket cookie */
	__type(value, struct pg_sk_state);
} sk_slots __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pg_sk_state);
} sk_state __weak SEC(".maps");

/* ---- the event stream ---------------------------------------------------- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by userspace before load */
} events __weak SEC(".maps");

/* exec / fork / exit: their own ring, so that no amount of exec traffic can
 * crowd a port record out of the events ring. Never wakes the consumer: it
 * reads this ring before every port record it takes. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024); /* resized by userspace before load */
} proc_events __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PG_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters __weak SEC(".maps");

/* udp connect(): what the cgroup hook saw, until the syscall returns. */
struct pg_pending_connect {
	__u64 cookie;
	__u16 port_before;
	__u16 _pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct pg_pending_connect);
} pending_connect __weak SEC(".maps");

/* Ports reported at a syscall exit, which cannot reach socket storage: the
 * next hook that holds the socket's state folds the entry into it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* socket cookie */
	__type(value, __u16); /* the port reported */
} connect_done __weak SEC(".maps");

/* Threads inside inet_autobind (fexit world), so that the port allocator's
 * failure under it is reported once, as the autobind's. By thread: lock_sock
 * may sleep and migrate (not per CPU), and threads may share a socket (not
 * on the socket). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, __u8);
} in_autobind __weak SEC(".maps");

/* Threads setting up an SCTP association (connect(), or a sendmsg() to a
 * new peer), with the socket: an autobind under it is the association's.
 * LRU: a setup that needed no autobind leaves its entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);   /* tid */
	__type(value, __u64); /* the socket's address */
} sctp_connecting __weak SEC(".maps");

/* SCTP sockets whose port was reported (written, or lost to a full ring),
 * until their release: the SCTP programs cannot use socket storage. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);   /* socket cookie */
	__type(value, __u16); /* the port reported */
} sctp_ports __weak SEC(".maps");

/* bind() to port 0: what the cgroup hook saw, until the syscall returns, so
 * that a failure (no free port) can be reported. One slot per CPU, not a hash
 * by thread: bind(0) is hot (every UDP client that binds first), and a slot
 * costs a fraction of a hash update. The slot names its thread; if the thread
 * moved to another CPU inside bind() (it may sleep on the socket lock), the
 * exit finds no slot of its own and that one failure goes unreported. */
struct pg_pending_bind {
	__u64 cookie;
	__u32 tid; /* 0: empty */
	__u8 family;
	__u8 proto;
	__u8 _pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_pending_bind);
} pending_bind __weak SEC(".maps");

/* listeners seen by the tcp iterator: their accepted children are skipped. */
struct pg_listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pg_listen_key);
	__type(value, __u8);
} iter_listeners __weak SEC(".maps");

/* bytes this CPU produced since it last woke the consumer */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unwoken_bytes __weak SEC(".maps");

/* scratch for exec records (too big for the stack) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_exec_event);
} exec_scratch __weak SEC(".maps");

static __always_inline void counter_inc(enum pg_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&counters, &key);

	/* programs on one CPU may preempt each other (migrate_disable only) */
	if (v)
		__sync_fetch_and_add(v, 1);
}

#endif /* PORTGHOST_MAPS_BPF_H */
