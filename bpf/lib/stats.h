/* SPDX-License-Identifier: GPL-2.0-only */
/* Counters by reason and direction, and rate-limited drop events. */
#ifndef BW_LIB_STATS_H
#define BW_LIB_STATS_H

#include "lib/maps.h"
#include "lib/parse.h"

#define BW_EVENTS_PER_SEC_DEFAULT 1000
#define BW_NSEC_PER_SEC 1000000000ull

static __always_inline void bw_count(__u32 reason, __u32 dir, __u32 len)
{
	__u32 key = BW_STAT_KEY(reason, dir);
	struct bw_stat *s = bpf_map_lookup_elem(&bw_stats, &key);

	/* Per-CPU values: no atomics needed. */
	if (s) {
		s->packets++;
		s->bytes += len;
	}
}

/* A per-CPU budget of events per second, so a flood of drops cannot eat the CPU. */
static __always_inline int bw_event_allowed(const struct bw_config *cfg)
{
	__u32 zero = 0, limit = cfg->events_per_sec ? cfg->events_per_sec : BW_EVENTS_PER_SEC_DEFAULT;
	struct bw_ratelimit *rl = bpf_map_lookup_elem(&bw_ratelimit, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!rl)
		return 0;
	if (now - rl->window_ns >= BW_NSEC_PER_SEC) {
		rl->window_ns = now;
		rl->sent = 0;
	}
	if (rl->sent >= limit)
		return 0;
	rl->sent++;
	return 1;
}

static __always_inline void bw_event(struct __sk_buff *skb, const struct bw_config *cfg,
				     const struct bw_pkt *p, __u32 reason, __u32 dir)
{
	struct bw_event *e;

	if (!(cfg->flags & BW_CFG_EVENTS))
		return;
	if (!bw_event_allowed(cfg))
		goto lost;
	e = bpf_ringbuf_reserve(&bw_events, sizeof(*e), 0);
	if (!e)
		goto lost;
	e->ts_ns = bpf_ktime_get_ns();
	e->ifindex = skb->ifindex;
	e->len = skb->len;
	e->reason = reason;
	e->dir = dir;
	e->family = p->family;
	e->l4proto = p->l4 == BW_L4_NONE ? 0 : p->l4proto;
	e->sport = p->l4 == BW_L4_PORTS ? p->sport : 0;
	e->dport = p->l4 == BW_L4_PORTS ? p->dport : 0;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	bpf_ringbuf_submit(e, 0);
	return;
lost:
	bw_count(BW_REASON_EVENTS_LOST, dir, 0);
}

#endif
