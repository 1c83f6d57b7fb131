/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The enforcement decision shared by both uplink directions. Which flows must be encrypted:
 *
 *   egress:  dst is a pod      -> protected unless src is a node address and node encryption is off
 *            dst is a node     -> protected with node encryption
 *            dst outside       -> passes (pods reaching the world are not pod-to-pod traffic)
 *   ingress: src is a pod      -> protected unless dst is a node address and node encryption is off
 *            src is a node     -> protected with node encryption
 *            src outside       -> passes
 *   overlay (UDP to the overlay port between node addresses): always protected
 *
 * Protected egress goes into WireGuard when a peer covers the destination, else it is dropped;
 * protected ingress on an uplink is plaintext by definition (decrypted packets arrive on the
 * WireGuard device), so it is dropped. WireGuard's own packets pass: by skb mark (egress) or as
 * UDP from/to our listen port whose source is not a pod.
 */
#ifndef BW_LIB_POLICY_H
#define BW_LIB_POLICY_H

#include <linux/pkt_cls.h>
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/stats.h"

#define ICMPV6_ND_FIRST 133 /* router solicitation .. redirect (137): link-local control */
#define ICMPV6_ND_LAST 137

static __always_inline __u32 bw_class(const struct bw_pkt *p, const __u8 *addr)
{
	struct bw_prefix *v;

	if (p->family == 4) {
		struct bw_lpm_v4 k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, addr, 4);
		v = bpf_map_lookup_elem(&bw_protect_v4, &k);
	} else {
		struct bw_lpm_v6 k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, addr, 16);
		v = bpf_map_lookup_elem(&bw_protect_v6, &k);
	}
	return v ? v->class : BW_CLASS_NONE;
}

static __always_inline int bw_has_peer(const struct bw_pkt *p)
{
	if (p->family == 4) {
		struct bw_lpm_v4 k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, p->daddr, 4);
		return bpf_map_lookup_elem(&bw_peer_v4, &k) != NULL;
	} else {
		struct bw_lpm_v6 k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, p->daddr, 16);
		return bpf_map_lookup_elem(&bw_peer_v6, &k) != NULL;
	}
}

/* What the tries say about a packet's addresses: all the policy needs besides ports and config. */
struct bw_addrs {
	__u32 src, dst; /* enum bw_class */
	__u32 peer;     /* a peer prefix covers the destination; only looked up when a class is set */
};

static __always_inline void bw_addrs_lookup(const struct bw_pkt *p, struct bw_addrs *a)
{
	a->src = bw_class(p, p->saddr);
	a->dst = bw_class(p, p->daddr);
	a->peer = (a->src != BW_CLASS_NONE || a->dst != BW_CLASS_NONE) && bw_has_peer(p);
}

static __always_inline int bw_eq4(const __u8 *a, const __u8 *b)
{
	__u32 x, y;

	__builtin_memcpy(&x, a, 4);
	__builtin_memcpy(&y, b, 4);
	return x == y;
}

static __always_inline int bw_eq16(const __u8 *a, const __u8 *b)
{
	__u64 x0, x1, y0, y1;

	__builtin_memcpy(&x0, a, 8);
	__builtin_memcpy(&x1, a + 8, 8);
	__builtin_memcpy(&y0, b, 8);
	__builtin_memcpy(&y1, b + 8, 8);
	return x0 == y0 && x1 == y1;
}

/*
 * One family's cache step (a macro: each family names its own map and slot type, and one map per
 * call site keeps the verifier's inlined lookup). A hit needs the current generation and the
 * whole pair; on a miss the tries decide and the slot is overwritten with their answer.
 */
#define BW_FLOW_STEP(type, map, alen, eq)                                                       \
	do {                                                                                     \
		__u32 slot = bw_flow_slot(p->daddr, p->saddr, (alen) / 4);                        \
		type *f = bpf_map_lookup_elem(&map, &slot);                                       \
                                                                                                 \
		if (f && f->gen == gen && eq(f->daddr, p->daddr) && eq(f->saddr, p->saddr)) {    \
			a->src = f->src_class;                                                   \
			a->dst = f->dst_class;                                                   \
			a->peer = f->peer;                                                       \
			return;                                                                  \
		}                                                                                \
		bw_addrs_lookup(p, a);                                                           \
		if (!f || (a->src == BW_CLASS_NONE && a->dst == BW_CLASS_NONE))                  \
			return;                                                                  \
		f->gen = gen;                                                                    \
		__builtin_memcpy(f->daddr, p->daddr, alen);                                      \
		__builtin_memcpy(f->saddr, p->saddr, alen);                                      \
		f->src_class = a->src;                                                           \
		f->dst_class = a->dst;                                                           \
		f->peer = a->peer;                                                               \
	} while (0)

/*
 * The flow cache in front of the tries (bulwark_abi.h). The generation is read before the slot
 * and the tries: a trie change that the lookups missed is followed by userspace's increment,
 * after which the slot written here cannot match. Slots are this CPU's own, so reading and
 * writing them in place is safe. Only pairs touching the cluster are stored: traffic between
 * outside addresses (forwarded) would only evict useful slots.
 */
static __always_inline void bw_addrs_get(const struct bw_config *cfg, const struct bw_pkt *p,
					 struct bw_addrs *a)
{
	struct bw_flow_gen *g;
	__u32 zero = 0;
	__u64 gen;

	if (!(cfg->flags & BW_CFG_FLOW_CACHE) || !(g = bpf_map_lookup_elem(&bw_flow_gen, &zero)) ||
	    !(gen = *(volatile __u64 *)&g->gen)) {
		bw_addrs_lookup(p, a);
		return;
	}
	if (p->family == 4)
		BW_FLOW_STEP(struct bw_flow_v4, bw_flow_v4, 4, bw_eq4);
	else
		BW_FLOW_STEP(struct bw_flow_v6, bw_flow_v6, 16, bw_eq16);
}

/* Replies match too: the allowed port may be the destination or the source port. */
static __always_inline int bw_allowed(const struct bw_pkt *p, __u32 dir)
{
	struct bw_allow_key k = { .proto = p->l4proto, .dir = dir, .port = p->dport };
	struct bw_allow *a;

	if (p->l4 != BW_L4_PORTS || (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP))
		return 0;
	a = bpf_map_lookup_elem(&bw_allow, &k);
	if (!a) {
		k.port = p->sport;
		a = bpf_map_lookup_elem(&bw_allow, &k);
	}
	if (a)
		__sync_fetch_and_add(&a->hits, 1);
	return a != NULL;
}

static __always_inline int bw_verdict(struct __sk_buff *skb, const struct bw_config *cfg,
				      const struct bw_pkt *p, __u32 reason, __u32 dir)
{
	bw_count(reason, skb->len);
	switch (reason) {
	case BW_REASON_REDIRECTED:
		return bpf_redirect(cfg->wg_ifindex, 0);
	case BW_REASON_DROPPED_NO_PEER:
	case BW_REASON_DROPPED_PLAINTEXT_INGRESS:
	case BW_REASON_DROPPED_MALFORMED:
	case BW_REASON_DROPPED_NO_DEVICE:
		bw_event(skb, cfg, p, reason, dir);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

static __always_inline __u32 bw_reason(struct __sk_buff *skb, const struct bw_config *cfg,
				       struct bw_pkt *p, __u32 dir)
{
	int node_enc = cfg->flags & BW_CFG_NODE_ENCRYPTION;
	__u32 src, dst, peer_side, local_side;
	struct bw_addrs a;
	int protect, udp;

	if (dir == BW_DIR_EGRESS && cfg->wg_fwmark && skb->mark == cfg->wg_fwmark)
		return BW_REASON_PASSED_ENCRYPTED;
	switch (bw_parse(skb, p)) {
	case BW_PARSE_NOT_IP:
		return BW_REASON_PASSED_UNPROTECTED;
	case BW_PARSE_MALFORMED:
		return BW_REASON_DROPPED_MALFORMED;
	}
	udp = p->l4 == BW_L4_PORTS && p->l4proto == IPPROTO_UDP;
	bw_addrs_get(cfg, p, &a);
	src = a.src;
	dst = a.dst;
	if (src == BW_CLASS_NONE && dst == BW_CLASS_NONE)
		return BW_REASON_PASSED_UNPROTECTED;
	if (p->l4 == BW_L4_TRUNCATED)
		return BW_REASON_DROPPED_MALFORMED;
	if (p->family == 6 && p->l4proto == IPPROTO_ICMPV6 && p->l4 == BW_L4_OTHER &&
	    p->icmp6_type >= ICMPV6_ND_FIRST && p->icmp6_type <= ICMPV6_ND_LAST)
		return BW_REASON_PASSED_UNPROTECTED;

	/* The remote end is the destination on egress and the source on ingress. */
	peer_side = dir == BW_DIR_EGRESS ? dst : src;
	local_side = dir == BW_DIR_EGRESS ? src : dst;
	if (udp && cfg->wg_port && src != BW_CLASS_POD &&
	    (dir == BW_DIR_EGRESS ? p->sport : p->dport) == cfg->wg_port)
		return BW_REASON_PASSED_ENCRYPTED;

	if (udp && cfg->overlay_port && p->dport == cfg->overlay_port &&
	    src == BW_CLASS_NODE && dst == BW_CLASS_NODE)
		protect = 1;
	else if (peer_side == BW_CLASS_POD)
		protect = local_side != BW_CLASS_NODE || node_enc;
	else if (peer_side == BW_CLASS_NODE)
		protect = !!node_enc;
	else /* the remote end is outside the cluster: not pod-to-pod traffic */
		protect = 0;
	if (!protect)
		return BW_REASON_PASSED_UNPROTECTED;

	if (node_enc && src == BW_CLASS_NODE && dst == BW_CLASS_NODE &&
	    !(udp && cfg->overlay_port && p->dport == cfg->overlay_port) && bw_allowed(p, dir))
		return BW_REASON_ALLOWED_BY_PORT;
	if (dir == BW_DIR_INGRESS)
		return BW_REASON_DROPPED_PLAINTEXT_INGRESS;
	if (!a.peer)
		return BW_REASON_DROPPED_NO_PEER;
	return cfg->wg_ifindex ? BW_REASON_REDIRECTED : BW_REASON_DROPPED_NO_DEVICE;
}

static __always_inline int bw_enforce(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0;
	struct bw_config *cfg = bpf_map_lookup_elem(&bw_config, &zero);
	struct bw_pkt p = {};

	if (!cfg) /* cannot happen for an array map; never pass when unsure */
		return TC_ACT_SHOT;
	return bw_verdict(skb, cfg, &p, bw_reason(skb, cfg, &p, dir), dir);
}

#endif
