/* SPDX-License-Identifier: GPL-2.0 */
/* Records into the ring buffer: reserve, submit (with deliberate wakeups). */
#ifndef PORTGHOST_LIB_RING_BPF_H
#define PORTGHOST_LIB_RING_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"

static __always_inline void *event_reserve(__u64 size)
{
	void *e;

	if (!pg_armed || pg_stopping)
		return NULL;
	e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		counter_inc(PG_CNT_DROP_RINGBUF);
	return e;
}

/* No wakeup per record: the consumer drains on a timer, and is woken when
 * this CPU has produced targ_wakeup_bytes since its last wakeup, or when
 * targ_wakeup_delay_ns passed since the last wakeup by any CPU. The count is
 * per CPU (a program that preempts another on the same CPU may blur it by a
 * record, which is harmless): bpf_ringbuf_query() would read the positions
 * that the other CPUs' reservations keep moving, a shared cache line per
 * record. ts is the record's ts_ns, which every record type sets when it is
 * reserved. */
static __always_inline void event_submit(void *e, __u64 size, __u64 ts)
{
	__u32 zero = 0;
	__u64 *unwoken = bpf_map_lookup_elem(&unwoken_bytes, &zero);
	bool wake = ts - pg_last_wakeup_ns >= targ_wakeup_delay_ns;

	if (unwoken) {
		*unwoken += size + BPF_RINGBUF_HDR_SZ;
		if (*unwoken >= targ_wakeup_bytes)
			wake = true;
		if (wake)
			*unwoken = 0;
	}
	if (wake) {
		pg_last_wakeup_ns = ts;
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		return;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline struct pg_sock_event *sock_event_new(__u8 kind)
{
	struct pg_sock_event *e = event_reserve(sizeof(*e));

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_boot_ns();
	return e;
}

#endif /* PORTGHOST_LIB_RING_BPF_H */
