/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Differences between kernel versions, in one place (CO-RE flavors). */
#ifndef PORTGHOST_CORE_FIXES_BPF_H
#define PORTGHOST_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* Before 6.2 cgroups kept ancestor ids, not ancestor pointers. */
struct cgroup___ids {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/* Id of the cgroup v2 ancestor of t at depth level (t's own cgroup counts). */
static __always_inline __u64 task_cgroup_ancestor_id(struct task_struct *t, __u32 level)
{
	struct cgroup *cg = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	struct cgroup *anc = NULL;
	__u64 id = 0;

	if (level > 255 || BPF_CORE_READ(cg, level) < (int)level)
		return 0;
	if (bpf_core_field_exists(cg->ancestors)) {
		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]);
		return BPF_CORE_READ(anc, kn, id);
	}
	bpf_core_read(&id, sizeof(id), &((struct cgroup___ids *)cg)->ancestor_ids[level]);
	return id;
}

/* Before 6.3 the ephemeral range was two ints under a seqlock; since, one
 * u32 with the low port in its low half. */
struct local_ports___pair {
	int range[2];
} __attribute__((preserve_access_index));

/* A namespace's ephemeral range, read at the event: exact even for a
 * namespace whose inode number an earlier, gone namespace had. */
static __always_inline void net_port_range(struct net *net, __u16 *lo, __u16 *hi)
{
	struct local_ports *lp = &net->ipv4.ip_local_ports;
	struct local_ports___pair *pair = (void *)lp;

	if (bpf_core_field_exists(lp->range)) {
		__u32 r = BPF_CORE_READ(lp, range);

		*lo = r & 0xffff;
		*hi = r >> 16;
	} else if (bpf_core_field_exists(pair->range)) {
		int r[2] = {};

		bpf_core_read(r, sizeof(r), &pair->range);
		*lo = r[0];
		*hi = r[1];
	}
}

#endif /* PORTGHOST_CORE_FIXES_BPF_H */
