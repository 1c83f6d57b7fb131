/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The enforcement decision shared by both uplink directions: the single statement of policy.
 *
 * The rule: no pod's packet crosses an uplink in clear, at any depth (outer header, the inner
 * header of an encapsulation, the packet quoted in an ICMP error). A packet is protected when
 * any of its layers is:
 *
 *   pair rule, per layer, "remote" being dst on egress and src on ingress:
 *     remote is a pod   -> protected unless the local end is a node address and node encryption is off
 *     remote is a node  -> protected with node encryption
 *     remote outside    -> not protected (pods reaching the world are not pod-to-pod traffic)
 *   encapsulation between two cluster addresses (pod or node, either class): always protected.
 *     IPIP, IPv6-in-IP (6in4/SIT, 4in6, 6in6, SRv6), GRE/GRETAP/ip6gre, EtherIP, L2TP, MPLS-in-IP,
 *     Ethernet-in-IPv6, any IPv6 routing header, UDP to an overlay port (4789, 8472, 6081 and the
 *     configured ones), and every non-first UDP fragment (no ports: it may be an overlay's).
 *   ICMP/ICMPv6 error: the quoted packet is a layer too. It travelled the other way, so the pair
 *     rule applies with the direction reversed; a quoted encapsulation between cluster addresses
 *     is protected; a quoted WireGuard datagram (UDP to/from our port, no pod) is ciphertext.
 *     Egress toward an address outside the cluster: protected when the quote holds a pod address
 *     (so dropped: the world learns nothing about pods from a node). ICMPv4 redirects count as
 *     errors; an egress ICMPv6 redirect is protected when its destination field is a pod.
 *     A quote that cannot be read, with a cluster address around, is malformed.
 *
 * Exemptions, checked before protection:
 *   egress: skb mark == WireGuard fwmark; or UDP from our WireGuard port, sent by this node (not
 *           forwarded: no ingress device) from a non-pod address
 *   ingress: UDP to our WireGuard port from a non-pod address to a non-pod address
 *   both: IPv6 neighbour discovery (ICMPv6 133-136, and 137 redirects unless named above); not IP
 *         (ARP, untagged non-IP ethertypes)
 *   node<->node with node encryption: allowlisted TCP/UDP ports, never an encapsulation
 *
 * Protected egress goes into WireGuard when a peer covers the (outer) destination, else it is
 * dropped; protected ingress on an uplink is plaintext by definition (decrypted packets arrive
 * on the WireGuard device), so it is dropped. Frames the parser cannot classify (a third VLAN
 * tag, a tagged non-IP frame, MPLS/PPPoE/PBB/NSH frames, headers cut short around cluster
 * addresses) are dropped as malformed.
 */
#ifndef BW_LIB_POLICY_H
#define BW_LIB_POLICY_H

#include <linux/pkt_cls.h>
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/stats.h"

#define ICMPV6_ND_FIRST 133 /* router solicitation .. redirect (137): link-local control */
#define ICMPV6_ND_LAST 137
#define ICMPV6_REDIRECT 137

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

/* The index of the one bit set in b (b = x & -x): a branch-free popcount of b - 1. */
static __always_inline __u32 bw_bit_index(__u64 b)
{
	__u64 x = b - 1;

	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (__u32)((x * 0x0101010101010101ull) >> 56);
}

/* Does an IPv4 peer prefix cover a (host byte order)? One probe per length in use, longest first. */
static __always_inline int bw_peer_covers_v4(const struct bw_peer_lens *l, __u32 a)
{
	struct bw_lpm_v4 k;
	__u64 x = l->v4;

	for (int i = 0; i <= 32 && x; i++) {
		__u64 b = x & -x;
		__u32 len = 32 - bw_bit_index(b), m;

		x ^= b;
		if (len > 32) /* a bit no length has: not ours to probe */
			break;
		m = len ? bpf_htonl(a & (0xffffffffu << (32 - len))) : 0;
		k.prefixlen = len;
		__builtin_memcpy(k.addr, &m, 4);
		if (bpf_map_lookup_elem(&bw_peer_v4, &k))
			return 1;
	}
	return 0;
}

/* The same for IPv6, the address as two host-order halves, masked per length. */
static __always_inline int bw_peer_covers_v6(const struct bw_peer_lens *l, __u64 hi, __u64 lo)
{
	struct bw_lpm_v6 k;

	for (int w = 0; w < 3; w++) {
		__u64 x = l->v6[w];

		for (int i = 0; i < 64 && x; i++) {
			__u64 b = x & -x, mh, ml;
			__u32 len = 128 - (64 * w + bw_bit_index(b));

			x ^= b;
			if (len > 128)
				break;
			if (len > 64) {
				mh = hi;
				ml = lo & (~0ull << (128 - len));
			} else {
				mh = len ? hi & (~0ull << (64 - len)) : 0;
				ml = 0;
			}
			mh = bpf_cpu_to_be64(mh);
			ml = bpf_cpu_to_be64(ml);
			k.prefixlen = len;
			__builtin_memcpy(k.addr, &mh, 8);
			__builtin_memcpy(k.addr + 8, &ml, 8);
			if (bpf_map_lookup_elem(&bw_peer_v6, &k))
				return 1;
		}
	}
	return 0;
}

/*
 * Does a peer prefix cover the address (family 4: hi holds it; 6: hi and lo, host order)? A
 * global function, not inlined: the verifier checks it once, on its own, instead of again at
 * every call site with every caller's state (the loops over up to 193 length bits, inlined at
 * each site, are more than Debian 6.1's verifier explores within its 1M-instruction budget).
 * No bw_peer_lens (cannot happen): no peer, so the packet is dropped.
 */
__attribute__((noinline)) int bw_peer_covers(__u32 family, __u64 hi, __u64 lo)
{
	__u32 zero = 0;
	const struct bw_peer_lens *l = bpf_map_lookup_elem(&bw_peer_lens, &zero);

	if (!l)
		return 0;
	return family == 4 ? bw_peer_covers_v4(l, (__u32)hi) : bw_peer_covers_v6(l, hi, lo);
}

/* A peer prefix covers the destination. */
static __always_inline int bw_has_peer(const struct bw_pkt *p)
{
	__u64 hi, lo = 0;
	__u32 a;

	if (p->family == 4) {
		__builtin_memcpy(&a, p->daddr, 4);
		return bw_peer_covers(4, bpf_ntohl(a), 0);
	}
	__builtin_memcpy(&hi, p->daddr, 8);
	__builtin_memcpy(&lo, p->daddr + 8, 8);
	return bw_peer_covers(6, bpf_be64_to_cpu(hi), bpf_be64_to_cpu(lo));
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
	bw_count(reason, dir, skb->len);
	switch (reason) {
	case BW_REASON_REDIRECTED:
		/*
		 * WireGuard is a layer-3 device: the MAC header goes on the way in, but VLAN tags in
		 * the frame would be read as the IP header. Pop them (skb_vlan_pop: a tag held out of
		 * the frame first, then one in the frame per call, the next moving out of it).
		 */
#pragma unroll
		for (int i = 0; i <= BW_MAX_VLANS; i++)
			if ((p->vlans || skb->vlan_present) && bpf_skb_vlan_pop(skb) < 0)
				return TC_ACT_SHOT;
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

/* The pair rule for one layer's classes seen from dir (the table at the top). */
static __always_inline int bw_pair_protected(__u32 src, __u32 dst, __u32 dir, int node_enc)
{
	__u32 remote = dir == BW_DIR_EGRESS ? dst : src, local = dir == BW_DIR_EGRESS ? src : dst;

	if (remote == BW_CLASS_POD)
		return local != BW_CLASS_NODE || node_enc;
	if (remote == BW_CLASS_NODE)
		return node_enc;
	return 0;
}

static __always_inline int bw_overlay_port(const struct bw_config *cfg, __u16 port)
{
	struct bw_allow_key k = { .proto = IPPROTO_UDP, .dir = BW_ALLOW_OVERLAY, .port = port };

	if (port == BW_OVERLAY_PORT_VXLAN || port == BW_OVERLAY_PORT_VXLAN_LINUX ||
	    port == BW_OVERLAY_PORT_GENEVE || (cfg->overlay_port && port == cfg->overlay_port))
		return 1;
	return bpf_map_lookup_elem(&bw_allow, &k) != NULL;
}

/* Does this layer carry another packet, or addresses beyond its own (the encapsulation row)? */
static __always_inline int bw_encap(const struct bw_config *cfg, const struct bw_pkt *p)
{
	if (p->rthdr)
		return 1;
	switch (p->l4proto) {
	case 4:   /* IPIP, 4in6 */
	case 41:  /* IPv6-in-IP: 6in4/SIT, 6in6, SRv6 */
	case 47:  /* GRE, GRETAP, ip6gre, ERSPAN */
	case 97:  /* EtherIP */
	case 115: /* L2TPv3 over IP */
	case 137: /* MPLS-in-IP */
	case 143: /* Ethernet-in-IPv6 (SRv6 L2) */
		return 1;
	case IPPROTO_UDP:
		if (p->frag)
			return 1;
		return p->l4 == BW_L4_PORTS && bw_overlay_port(cfg, p->dport);
	}
	return 0;
}

static __always_inline int bw_icmp_error(const struct bw_pkt *p)
{
	__u8 t = p->icmp_type;

	if (p->l4 != BW_L4_OTHER)
		return 0;
	if (p->family == 4 && p->l4proto == IPPROTO_ICMP)
		return t == 3 || t == 4 || t == 5 || t == 11 || t == 12; /* unreach, quench, redirect, time, param */
	return p->family == 6 && p->l4proto == IPPROTO_ICMPV6 && t < 128; /* RFC 4443: < 128 are errors */
}

/* A layer's WireGuard datagram: UDP to or from our port, no pod address (ciphertext inside). */
static __always_inline int bw_wg_datagram(const struct bw_config *cfg, const struct bw_pkt *p,
					   __u32 src, __u32 dst)
{
	return cfg->wg_port && p->l4 == BW_L4_PORTS && p->l4proto == IPPROTO_UDP &&
	       (p->sport == cfg->wg_port || p->dport == cfg->wg_port) && src != BW_CLASS_POD &&
	       dst != BW_CLASS_POD;
}

/*
 * The packet an ICMP error quotes (it follows the 8-byte ICMP header): 1 protected, 0 not,
 * -1 unreadable while it involves the cluster. The quote travelled against dir.
 */
static __always_inline int bw_quote(struct __sk_buff *skb, const struct bw_config *cfg,
				    const struct bw_pkt *p, __u32 dir, int node_enc, __u32 outer_dst)
{
	struct bw_pkt q = {};
	__u32 qs, qd;

	if (bw_parse_quote(skb, p, &q) != BW_PARSE_OK)
		return -1;
	qs = bw_class(&q, q.saddr);
	qd = bw_class(&q, q.daddr);
	if (qs == BW_CLASS_NONE && qd == BW_CLASS_NONE)
		return 0;
	if (q.l4 == BW_L4_TRUNCATED)
		return -1;
	if (bw_wg_datagram(cfg, &q, qs, qd))
		return 0;
	/* A node tells the world nothing about pods: not even what the world sent them. */
	if (dir == BW_DIR_EGRESS && outer_dst == BW_CLASS_NONE && (qs == BW_CLASS_POD || qd == BW_CLASS_POD))
		return 1;
	if (bw_pair_protected(qs, qd, dir == BW_DIR_EGRESS ? BW_DIR_INGRESS : BW_DIR_EGRESS, node_enc))
		return 1;
	return qs != BW_CLASS_NONE && qd != BW_CLASS_NONE && bw_encap(cfg, &q);
}

/*
 * The decision for a frame bw_parse has read (parsed: its enum bw_parse): the table at the top,
 * in order. Reads deeper into the packet only through parse.h (an ICMP quote, a redirect's
 * destination), and only when the outer layer does not already decide.
 */
static __always_inline __u32 bw_decide(struct __sk_buff *skb, const struct bw_config *cfg,
				       const struct bw_pkt *p, int parsed, __u32 dir)
{
	int node_enc = cfg->flags & BW_CFG_NODE_ENCRYPTION;
	struct bw_addrs a;
	int protect, err, redirect6, q;
	__u32 src, dst;

	switch (parsed) {
	case BW_PARSE_NOT_IP:
		return BW_REASON_PASSED_UNPROTECTED;
	case BW_PARSE_MALFORMED:
		return BW_REASON_DROPPED_MALFORMED;
	}
	bw_addrs_get(cfg, p, &a);
	src = a.src;
	dst = a.dst;
	err = bw_icmp_error(p);
	/* An ICMPv6 redirect names the redirected packet's destination (and quotes the packet). */
	redirect6 = dir == BW_DIR_EGRESS && p->family == 6 && p->l4proto == IPPROTO_ICMPV6 &&
		    p->l4 == BW_L4_OTHER && p->icmp_type == ICMPV6_REDIRECT;
	if (src == BW_CLASS_NONE && dst == BW_CLASS_NONE && !err && !redirect6)
		return BW_REASON_PASSED_UNPROTECTED;
	if (p->l4 == BW_L4_TRUNCATED)
		return BW_REASON_DROPPED_MALFORMED;
	if (p->family == 6 && p->l4proto == IPPROTO_ICMPV6 && p->l4 == BW_L4_OTHER &&
	    p->icmp_type >= ICMPV6_ND_FIRST && p->icmp_type <= ICMPV6_ND_LAST && !redirect6)
		return BW_REASON_PASSED_UNPROTECTED;

	/*
	 * WireGuard's own datagrams. Egress: only what this node sent (no ingress device: not
	 * forwarded), so a forwarded packet cannot borrow the port. Ingress: only toward a node.
	 */
	if (bw_wg_datagram(cfg, p, src, dst) &&
	    (dir == BW_DIR_EGRESS ? p->sport == cfg->wg_port && !skb->ingress_ifindex
				  : p->dport == cfg->wg_port))
		return BW_REASON_PASSED_ENCRYPTED;

	protect = bw_pair_protected(src, dst, dir, node_enc);
	if (!protect && src != BW_CLASS_NONE && dst != BW_CLASS_NONE)
		protect = bw_encap(cfg, p);
	if (!protect && redirect6) {
		__u8 buf[16];
		const __u8 *d = bw_parse_redirect_dst(skb, p, buf);

		if (!d)
			return BW_REASON_DROPPED_MALFORMED;
		protect = bw_class(p, d) == BW_CLASS_POD;
	}
	if (!protect && err) {
		if ((q = bw_quote(skb, cfg, p, dir, node_enc, dst)) < 0)
			return src == BW_CLASS_NONE && dst == BW_CLASS_NONE ? BW_REASON_PASSED_UNPROTECTED
									      : BW_REASON_DROPPED_MALFORMED;
		protect = q;
	}
	if (!protect)
		return BW_REASON_PASSED_UNPROTECTED;

	if (node_enc && src == BW_CLASS_NODE && dst == BW_CLASS_NODE && !bw_encap(cfg, p) &&
	    bw_allowed(p, dir))
		return BW_REASON_ALLOWED_BY_PORT;
	if (dir == BW_DIR_INGRESS)
		return BW_REASON_DROPPED_PLAINTEXT_INGRESS;
	if (!a.peer)
		return BW_REASON_DROPPED_NO_PEER;
	return cfg->wg_ifindex ? BW_REASON_REDIRECTED : BW_REASON_DROPPED_NO_DEVICE;
}

/* One uplink packet: exempt by its mark, else parse (parse.h), decide (above), act. */
static __always_inline int bw_enforce(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0, reason;
	struct bw_config *cfg = bpf_map_lookup_elem(&bw_config, &zero);
	struct bw_pkt p = {};

	if (!cfg) /* cannot happen for an array map; never pass when unsure */
		return TC_ACT_SHOT;
	/* WireGuard's own packets, by the mark it sets: no header needs reading. */
	if (dir == BW_DIR_EGRESS && cfg->wg_fwmark && skb->mark == cfg->wg_fwmark)
		reason = BW_REASON_PASSED_ENCRYPTED;
	else
		reason = bw_decide(skb, cfg, &p, bw_parse(skb, &p), dir);
	return bw_verdict(skb, cfg, &p, reason, dir);
}

#endif
