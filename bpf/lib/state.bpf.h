/* SPDX-License-Identifier: GPL-2.0 */
/* Per-socket state (socket storage): one assign and one release per port. */
#ifndef PORTGHOST_LIB_STATE_BPF_H
#define PORTGHOST_LIB_STATE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "portghost.h"
#include "maps.bpf.h"

/* The socket's state, created on first sight. */
static __always_inline struct pg_sk_state *sk_state_of(void *sk)
{
	struct pg_sk_state *st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	/* a first creation can fail where a second one succeeds (seen for one
	 * socket in hundreds while the fexit programs were being attached;
	 * two creators racing on one socket get -EAGAIN): one more try */
	if (!st)
		st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		counter_inc(PG_CNT_DROP_STORAGE);
	return st;
}

/* A connect() whose end a syscall exit reported left its port in
 * connect_done (that program cannot reach socket storage): take it in.
 * A macro, so that the cookie (whose helper differs by context, and which
 * generating costs a global atomic) is computed only for noted sockets. */
#define sk_state_fold(st, cookie_expr)                             \
	do {                                                       \
		if ((st) && ((st)->flags & PG_SK_CONNECTING))      \
			sk_state_fold_cookie((st), (cookie_expr)); \
	} while (0)

static __always_inline void sk_state_fold_cookie(struct pg_sk_state *st, __u64 cookie)
{
	__u16 *port;

	port = bpf_map_lookup_elem(&connect_done, &cookie);
	if (!port)
		return;
	st->port = *port;
	st->flags = (st->flags | PG_SK_ASSIGNED) & ~(PG_SK_RELEASED | PG_SK_FILTERED | PG_SK_CONNECTING);
	bpf_map_delete_elem(&connect_done, &cookie);
}

/* Has the port of this socket already been reported (and not released)? */
static __always_inline bool already_reported(const struct pg_sk_state *st, __u16 port)
{
	return (st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING)) && !(st->flags & PG_SK_RELEASED) && st->port == port;
}

/* Was any port of this socket reported (an assign, or held at start)? */
static __always_inline bool ever_reported(const struct pg_sk_state *st)
{
	return st && (st->flags & (PG_SK_ASSIGNED | PG_SK_EXISTING));
}

#endif /* PORTGHOST_LIB_STATE_BPF_H */
