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

#endif /* PORTGHOST_CORE_FIXES_BPF_H */
