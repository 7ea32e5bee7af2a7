// SPDX-License-Identifier: GPL-2.0
/* Process records (exec, fork, exit) on a ring of their own: they feed the
 * consumer's process cache, which names the exe and cmdline of a port's
 * holder even when it lived for a millisecond. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "lib/maps.bpf.h"
#include "lib/task.bpf.h"
#include "lib/ring.bpf.h"

static __always_inline void fill_task_event(struct pg_task_event *e, __u8 kind, struct task_struct *p)
{
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(p, tgid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->uid = BPF_CORE_READ(p, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
}

/* Path of an executable, leaf first: "curl\0bin\0usr\0", up to the root of
 * the task's mount namespace. One bpf_loop step per path component or mount
 * crossed: the verifier checks the step once, not every path through it. */
struct exe_walk {
	struct dentry *d;
	struct mount *mnt;
	__u32 off;
	__u16 flags;
	bool done;
};

static long exe_walk_step(__u32 i, struct exe_walk *w)
{
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct vfsmount *vmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
	struct dentry *root = BPF_CORE_READ(vmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct pg_exec_event *e;
	__u32 zero = 0;
	long n;

	if (d == root || d == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (d != root || up == mnt) {
			w->done = true; /* the root */
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		return 0;
	}
	e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e || w->off >= PG_EXE_LIMIT)
		return 1;
	n = bpf_probe_read_kernel_str(&e->exe[w->off & (PG_EXE_LIMIT - 1)], 256, BPF_CORE_READ(d, d_name.name));
	if (n <= 0) {
		w->done = true;
		return 1;
	}
	w->off += n;
	w->d = parent;
	return 0;
}

static __always_inline __u32 read_exe_path(struct file *file, __u16 *flags)
{
	struct exe_walk w = {};

	w.d = BPF_CORE_READ(file, f_path.dentry);
	w.mnt = (void *)BPF_CORE_READ(file, f_path.mnt) - bpf_core_field_offset(struct mount, mnt);
	bpf_loop(2 * PG_EXE_DEPTH, exe_walk_step, &w, 0);
	if (!w.done)
		*flags |= PG_X_EXE_TRUNCATED;
	return w.off;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(pg_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct pg_exec_event *e = bpf_map_lookup_elem(&exec_scratch, &zero);
	struct mm_struct *mm;
	__u64 start, end, len;
	__u32 exe_len;

	if (!e)
		return 0;
	e->flags = 0;
	fill_task_event(&e->task, PG_KIND_EXEC, p);
	exe_len = read_exe_path(BPF_CORE_READ(bprm, file), &e->flags);
	e->exe_len = exe_len > PG_EXE_BUF ? PG_EXE_BUF : exe_len;
	mm = BPF_CORE_READ(p, mm);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > PG_ARGS_LIMIT - 1) {
		len = PG_ARGS_LIMIT - 1;
		e->flags |= PG_X_ARGS_TRUNCATED;
	}
	len &= PG_ARGS_LIMIT - 1;
	if (len && bpf_probe_read_user(e->args, len, (void *)start)) {
		len = 0;
		e->flags |= PG_X_ARGS_UNREADABLE;
	}
	e->args_len = len;
	if (!pg_armed || pg_stopping)
		return 0;
	/* only what this exec wrote: the scratch holds earlier execs' bytes */
	if (bpf_ringbuf_output(&proc_events, e, sizeof(*e) - PG_ARGS_LIMIT + (len & (PG_ARGS_LIMIT - 1)),
			       BPF_RB_NO_WAKEUP))
		counter_inc(PG_CNT_DROP_PROC);
	else
		counter_inc(PG_CNT_PROC);
	return 0;
}

static __always_inline void task_event_emit(__u8 kind, struct task_struct *p)
{
	struct pg_task_event *e;

	if (!pg_armed || pg_stopping)
		return;
	e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		counter_inc(PG_CNT_DROP_PROC);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_task_event(e, kind, p);
	counter_inc(PG_CNT_PROC);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* new processes (not threads): they inherit exe and cmdline */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(pg_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid)
		return 0;
	task_event_emit(PG_KIND_FORK, child);
	return 0;
}

/* The last thread of a process exits (not its leader: a leader may exit
 * first while other threads go on taking ports). do_exit() counts the
 * thread out of signal->live before this tracepoint. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(pg_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	task_event_emit(PG_KIND_EXIT, p);
	return 0;
}
