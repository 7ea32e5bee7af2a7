/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Attribution: what the current task is, read with CO-RE from task_struct. */
#ifndef PORTGHOST_TASK_BPF_H
#define PORTGHOST_TASK_BPF_H

#include "maps.bpf.h"
#include "core_fixes.bpf.h"

#define PG_PF_KTHREAD 0x00200000 /* include/linux/sched.h */

static __always_inline struct task_struct *current_task(void) { return (struct task_struct *)bpf_get_current_task(); }

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

/* The network namespace of the socket or task: inode and ephemeral range. */
static __always_inline void set_netns(struct pg_sock_event *e, struct net *net)
{
	e->netns = BPF_CORE_READ(net, ns.inum);
	net_port_range(net, &e->range_lo, &e->range_hi);
}

static __always_inline bool task_is_kthread(struct task_struct *t) { return BPF_CORE_READ(t, flags) & PG_PF_KTHREAD; }

/* Fill the attribution fields of x (a pg_sock_event or a pg_task_snap) from
 * the current task. A kernel thread is marked PG_F_KERNEL and left
 * unattributed. The namespace is the socket's, set by the caller: a task may
 * have moved (setns) since it made the socket. Where the kernel hands out the
 * task as a BTF pointer, plain loads (no helper call per field); else CO-RE
 * reads. A task's comm is NUL-padded (set_task_comm), so copying all of it
 * copies the name and nothing else. */
#define fill_task_fields(x)                                                      \
	do {                                                                     \
		struct task_struct *t_;                                          \
		struct task_struct *leader_;                                     \
                                                                                 \
		if (targ_task_btf) {                                             \
			t_ = bpf_get_current_task_btf();                         \
			if (t_->flags & PG_PF_KTHREAD) {                         \
				(x)->flags |= PG_F_KERNEL;                       \
				break;                                           \
			}                                                        \
			leader_ = t_->group_leader;                              \
			(x)->pid = t_->tgid;                                     \
			(x)->tid = t_->pid;                                      \
			(x)->ppid = t_->real_parent->tgid;                       \
			(x)->uid = t_->cred->uid.val;                            \
			(x)->cgroup_id = t_->cgroups->dfl_cgrp->kn->id;          \
			__builtin_memcpy((x)->thread, t_->comm, PG_COMM_LEN);    \
			__builtin_memcpy((x)->comm, leader_->comm, PG_COMM_LEN); \
			break;                                                   \
		}                                                                \
		t_ = current_task();                                             \
		if (task_is_kthread(t_)) {                                       \
			(x)->flags |= PG_F_KERNEL;                               \
			break;                                                   \
		}                                                                \
		leader_ = BPF_CORE_READ(t_, group_leader);                       \
		(x)->pid = BPF_CORE_READ(t_, tgid);                              \
		(x)->tid = BPF_CORE_READ(t_, pid);                               \
		(x)->ppid = BPF_CORE_READ(t_, real_parent, tgid);                \
		(x)->uid = BPF_CORE_READ(t_, cred, uid.val);                     \
		(x)->cgroup_id = task_cgroup_id(t_);                             \
		BPF_CORE_READ_STR_INTO(&(x)->thread, t_, comm);                  \
		BPF_CORE_READ_STR_INTO(&(x)->comm, leader_, comm);               \
	} while (0)

static __always_inline void fill_current_task(struct pg_sock_event *e) { fill_task_fields(e); }

/* The current task, kept for a record that goes out later. */
static __always_inline void snap_current_task(struct pg_task_snap *s)
{
	__builtin_memset(s, 0, sizeof(*s));
	s->ts_ns = bpf_ktime_get_boot_ns();
	fill_task_fields(s);
}

/* A record about something a task did earlier: its time and task. */
static __always_inline void fill_from_snap(struct pg_sock_event *e, const struct pg_task_snap *s)
{
	e->ts_ns = s->ts_ns;
	e->flags |= s->flags & PG_F_KERNEL;
	e->pid = s->pid;
	e->tid = s->tid;
	e->ppid = s->ppid;
	e->uid = s->uid;
	e->cgroup_id = s->cgroup_id;
	__builtin_memcpy(e->comm, s->comm, PG_COMM_LEN);
	__builtin_memcpy(e->thread, s->thread, PG_COMM_LEN);
}

static __always_inline bool comm_matches(const char *comm)
{
	for (int i = 0; i < PG_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return false;
		if (!comm[i])
			return true;
	}
	return true;
}

/* Kernel-side filters, applied when a port is assigned. */
static __always_inline bool assign_passes_filters(const struct pg_sock_event *e)
{
	if (targ_tgid != PG_ANY && e->pid != targ_tgid)
		return false;
	if (targ_proto != PG_ANY && e->proto != targ_proto)
		return false;
	if (targ_family != PG_ANY && e->family != targ_family)
		return false;
	if (e->lport < targ_port_lo || e->lport > targ_port_hi)
		return false;
	if (targ_netns != PG_ANY && e->netns != targ_netns)
		return false;
	if (targ_ephemeral_only && !(e->flags & PG_F_EPHEMERAL))
		return false;
	if (targ_comm_set && !comm_matches(e->comm))
		return false;
	if (targ_cgroup_id != PG_ANY && task_cgroup_ancestor_id(current_task(), targ_cgroup_level) != targ_cgroup_id)
		return false;
	return true;
}

#endif /* PORTGHOST_TASK_BPF_H */
