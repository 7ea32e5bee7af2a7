/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Records shared by the BPF programs and the userspace consumer.
 *
 * Plain C types only (__u8 .. __u64, fixed arrays): this header is compiled
 * both by clang -target bpf (with vmlinux.h) and by the C++ consumer (with
 * <linux/types.h>). The C++ side static_asserts sizes and offsets, so a layout
 * change here fails the build instead of silently misdecoding the stream.
 */
#ifndef PORTGHOST_H
#define PORTGHOST_H

#define PG_COMM_LEN 16
/* exe: path components leaf first, each NUL terminated ("curl\0bin\0usr\0"). */
#define PG_EXE_LIMIT 512 /* power of two: offsets are masked with it */
#define PG_EXE_BUF (PG_EXE_LIMIT + 256)
#define PG_EXE_DEPTH 24
/* args: the raw argv block (NUL separated), as /proc/PID/cmdline has it. */
#define PG_ARGS_LIMIT 4096 /* power of two */

/* Numbers both sides use (the kernel's uapi values). */
#define PG_AF_UNSPEC 0
#define PG_AF_INET 2
#define PG_AF_INET6 10
/* pg_sock_event.proto: the port space the port is in. MPTCP subflows take
 * their ports from TCP's (proto TCP, flag PG_F_MPTCP). */
#define PG_IPPROTO_TCP 6
#define PG_IPPROTO_UDP 17
#define PG_IPPROTO_SCTP 132
#define PG_IPPROTO_UDPLITE 136
#define PG_IPPROTO_MPTCP 262 /* sk_protocol of an MPTCP socket (not a port space) */
/* TCP states (include/net/tcp_states.h) */
#define PG_TCP_ESTABLISHED 1
#define PG_TCP_SYN_SENT 2
#define PG_TCP_SYN_RECV 3
#define PG_TCP_FIN_WAIT1 4
#define PG_TCP_FIN_WAIT2 5
#define PG_TCP_TIME_WAIT 6
#define PG_TCP_CLOSE 7
#define PG_TCP_CLOSE_WAIT 8
#define PG_TCP_LAST_ACK 9
#define PG_TCP_LISTEN 10
#define PG_TCP_CLOSING 11
#define PG_TCP_NEW_SYN_RECV 12
/* What the hooks return: a cgroup socket hook lets the call go on, a sockops
 * program leaves the socket's callbacks as they are. portghost observes and
 * never changes what a socket call does. */
#define PG_ALLOW 1
#define PG_SOCKOPS_DONE 1

/* Record kinds: first byte of every record. */
enum pg_kind {
	PG_KIND_ASSIGN = 1,
	PG_KIND_RELEASE = 2,
	PG_KIND_EXISTING = 3, /* written by the socket iterators, not the ring buffer */
	PG_KIND_EXEC = 4,
	PG_KIND_FORK = 5,
	PG_KIND_EXIT = 6,
	PG_KIND_EXHAUSTED = 7, /* an automatic port assignment failed */
};

/* How a socket obtained its local port. */
enum pg_how {
	PG_HOW_NONE = 0,
	PG_HOW_BIND = 1,
	PG_HOW_CONNECT = 2,
	PG_HOW_LISTEN = 3,
	PG_HOW_SENDMSG = 4,
	PG_HOW_FASTOPEN = 5,
};

/* pg_sock_event.flags */
enum pg_sock_flags {
	PG_F_EPHEMERAL = 1 << 0,  /* the kernel chose the port */
	PG_F_KERNEL = 1 << 1,	  /* assigned in kernel context, no user process */
	PG_F_TIMEWAIT = 1 << 2,	  /* release: the port lives on in TIME_WAIT */
	PG_F_LATE = 1 << 3,	  /* assign: the port was taken earlier, unseen; this is
				  * its first sight (ts and task are the sighting's);
				  * release: given up earlier (PG_F_DISCONNECT) */
	PG_F_MPTCP = 1 << 4,	  /* the socket is an MPTCP subflow */
	PG_F_CLOSER = 1 << 5,	  /* release: pid, tid, comm, thread name the task whose
				  * close() let the port go */
	PG_F_UNCHECKED = 1 << 6,  /* release: the kernel could not tell whether the
				  * port was reported; the consumer keeps it only
				  * for a socket it holds (Linux < 5.12), with that
				  * port when lport is set */
	PG_F_DISCONNECT = 1 << 7, /* release: the socket gave its port up and
				   * stays open (a UDP connect(AF_UNSPEC));
				   * with PG_F_LATE, seen at its next sight */
};

/* pg_exec_event.flags */
enum pg_exec_flags {
	PG_X_EXE_TRUNCATED = 1 << 0,
	PG_X_ARGS_TRUNCATED = 1 << 1,
	PG_X_ARGS_UNREADABLE = 1 << 2,
};

/* Per-CPU counters (index into the "counters" map). */
enum pg_counter {
	PG_CNT_ASSIGN = 0,     /* assign records produced */
	PG_CNT_RELEASE,	       /* release records produced */
	PG_CNT_PROC,	       /* exec/fork/exit records produced */
	PG_CNT_DROP_RINGBUF,   /* records lost: ring buffer full */
	PG_CNT_DROP_STORAGE,   /* socket storage could not be allocated */
	PG_CNT_DROP_PENDING,   /* udp connect could not be remembered until syscall exit */
	PG_CNT_FILTERED,       /* assignments hidden by the kernel-side filters */
	PG_CNT_DROP_PROC,      /* exec/fork/exit records lost: their ring was full */
	PG_CNT_UNSEEN_CONNECT, /* a udp connect()'s port given up before any hook
				* could read it (socket and cgroup worlds) */
	PG_CNT_SLOTS_FULL,     /* socket state put in socket storage: sk_slots full */
	PG_CNT_MAX,
};

/* assign / release / existing: 128 bytes. Ports in host order. */
struct pg_sock_event {
	__u8 kind;   /* pg_kind */
	__u8 how;    /* pg_how */
	__u8 proto;  /* PG_IPPROTO_TCP, _UDP, _UDPLITE or _SCTP: the port space */
	__u8 family; /* AF_INET or AF_INET6 */
	__u16 flags; /* pg_sock_flags */
	__u8 state;  /* TCP state: current (existing) or previous (release) */
	__u8 _pad0;
	__u64 ts_ns;	 /* CLOCK_BOOTTIME */
	__u64 cookie;	 /* socket cookie */
	__u64 cgroup_id; /* cgroup v2 id of the task */
	__u32 pid;	 /* tgid; release: the closer's, with PG_F_CLOSER */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 netns; /* the socket's network namespace inode */
	__u16 lport;
	__u16 rport;
	__u64 ino;	/* existing: socket inode; release: its assign's ts_ns (0: unknown) */
	__u8 laddr[16]; /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	char comm[PG_COMM_LEN];	  /* thread-group leader */
	char thread[PG_COMM_LEN]; /* the task itself */
	__u16 range_lo;		  /* the namespace's ephemeral range (ip_local_port_range) */
	__u16 range_hi;		  /* at the event; 0 when not read */
	__u32 holder;		  /* release: the pid its assign named (0: unknown, or a kernel thread) */
};

/* Per-socket state, kept by the kernel side in sk_slots (or socket storage);
 * read by userspace only to list the sockets that hold a recorded port. */
enum pg_sk_flags {
	PG_SK_ASSIGNED = 1 << 0,     /* an assign was produced for .port */
	PG_SK_EXISTING = 1 << 1,     /* held its port before the trace started */
	PG_SK_RELEASED = 1 << 2,     /* the release was produced */
	PG_SK_BIND_PENDING = 1 << 3, /* bind() in progress, .req_port is the asked port */
	PG_SK_FILTERED = 1 << 4,     /* hidden by the filters: its release is hidden too */
	PG_SK_CONNECTING = 1 << 5,   /* connect() noted; its end may be in connect_done */
	PG_SK_CLOSED = 1 << 6,	     /* the file was released: closer_* name who did it */
	PG_SK_DEFERRED = 1 << 7,     /* a connect() whose port is not seen yet: .conn is its task */
	PG_SK_BIND_ANY = 1 << 8,     /* bind() to port 0 on a wildcard or loopback address: if
				     * no port follows, none was free (.conn.ts_ns: when) */
	PG_SK_ORPHAN = 1 << 9,	     /* tcp: the file is gone, CLOSE is the socket's end */
};

/* The task behind a port whose number is seen only after its call returned. */
struct pg_task_snap {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u16 flags; /* PG_F_KERNEL */
	__u16 _pad[3];
	char comm[PG_COMM_LEN];
	char thread[PG_COMM_LEN];
};

struct pg_sk_state {
	__u16 port;	/* the port the last assign reported */
	__u16 req_port; /* the port the last bind() asked for */
	__u16 flags;	/* pg_sk_flags */
	__u16 _pad;
	/* what the assign said, so that a release still names it when the
	 * consumer's table no longer holds the socket */
	__u32 holder_pid;
	/* the socket's sk_txhash when a deferred connect() began: every
	 * connect() that succeeds draws a new one, which no disconnect undoes */
	__u32 conn_txhash;
	__u64 assigned_ns;
	/* tcp: who released the file, for the release at CLOSE (often later,
	 * in softirq, where the current task is anyone's) */
	__u32 closer_pid;
	__u32 closer_tid;
	char closer_comm[PG_COMM_LEN];
	struct pg_task_snap conn; /* with PG_SK_DEFERRED or PG_SK_BIND_ANY */
	/* in sk_slots: the struct sock, so that the liveness walk can tell a
	 * socket gone without its end seen (same cookie, references left) */
	__u64 sk_addr;
};

/* fork / exit, and the head of exec. */
struct pg_task_event {
	__u8 kind;
	__u8 _pad0[3];
	__u32 pid; /* tgid */
	__u64 ts_ns;
	__u32 ppid;
	__u32 uid;
	char comm[PG_COMM_LEN];
};

/* Sent only up to args + args_len: no byte of an earlier exec goes out. */
struct pg_exec_event {
	struct pg_task_event task;
	__u16 exe_len;	/* bytes used in exe */
	__u16 args_len; /* bytes used in args */
	__u16 flags;	/* pg_exec_flags */
	__u16 _pad0;
	char exe[PG_EXE_BUF];
	char args[PG_ARGS_LIMIT];
};

#endif /* PORTGHOST_H */
