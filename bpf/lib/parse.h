/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Header parsing for uplink programs: the frame's VLAN tags, the network header's addresses
 * always, the transport's ports when the packet carries them, and what a policy needs to see
 * deeper (fragment, routing header, where the transport header is: an ICMP error's quote).
 */
#ifndef BW_LIB_PARSE_H
#define BW_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* IPv6 extension headers followed to find the transport header: a 9th is malformed. */
#define BW_MAX_EXTHDRS 8
/* VLAN tags (802.1Q, 802.1ad) read from the frame: a 3rd cannot be classified and is dropped. */
#define BW_MAX_VLANS 2

enum bw_parse { BW_PARSE_OK = 0, BW_PARSE_NOT_IP = 1, BW_PARSE_MALFORMED = -1 };

struct bw_pkt {
	__u8 family;      /* 4 or 6 */
	__u8 l4proto;     /* transport protocol, valid when l4 != BW_L4_NONE (and for fragments) */
	__u8 l4;          /* enum bw_l4 */
	__u8 icmp_type;   /* ICMP (IPv4) or ICMPv6 type, with l4proto ICMP/ICMPV6 and l4 OTHER */
	__u16 sport;      /* host byte order, valid with BW_L4_PORTS */
	__u16 dport;
	/* 8-aligned: the flow cache hashes and compares them a word at a time (policy.h) */
	__u8 daddr[16] __attribute__((aligned(8)));
	__u8 saddr[16];
	__u8 vlans;       /* VLAN tags in the frame before the network header */
	__u8 frag;        /* a non-first fragment: no transport header */
	__u8 rthdr;       /* IPv6 routing header seen (SRv6 and co: more addresses inside) */
	__u16 l4off;      /* offset of the transport header in the packet */
};

enum bw_l4 {
	BW_L4_NONE = 0,      /* no transport header here: non-first fragment or ESP etc. */
	BW_L4_PORTS,         /* TCP/UDP/SCTP ports read */
	BW_L4_OTHER,         /* transport without ports (ICMP...) */
	BW_L4_TRUNCATED,     /* transport header should be there but is cut short */
};

/*
 * Headers that start in the first BW_DIRECT_WINDOW bytes of the frame are read in place; deeper
 * ones are copied. Why a window at all: an offset that depends on the packet (VLAN tags, IP
 * options, extension headers, an ICMP quote) may only be added to the packet pointer once the
 * verifier knows its upper bound, and masking it with (window - 1) states that bound in one
 * instruction the compiler cannot drop; so the window is a power of two. Why 128: it is the
 * smallest one that holds every header the common path reads, at its deepest: behind the
 * 14-byte Ethernet header and two 4-byte VLAN tags (22 bytes), the ports after an IPv4 header
 * with full options (22 + 60 + 4 = 86), the ports after an IPv6 header (22 + 40 + 4 = 66), an
 * ICMPv6 redirect's destination field (22 + 40 + 24 + 16 = 102) and the ports of an IPv6 packet
 * quoted in an ICMPv6 error (22 + 40 + 8 + 40 + 4 = 114). What lies deeper (IPv6 extension
 * headers, a quote behind IPv4 options) is copied by bpf_skb_load_bytes: one helper call more,
 * the same answer.
 */
#define BW_DIRECT_WINDOW 128

/*
 * A header of len bytes at off: a pointer straight into the linear packet data when it is there
 * (the common case: no helper call, no copy), else copied into buf by bpf_skb_load_bytes
 * (non-linear skbs, headers beyond BW_DIRECT_WINDOW). NULL when the packet is too short either way.
 */
static __always_inline void *bw_hdr(struct __sk_buff *skb, __u32 off, void *buf, __u32 len)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end, *h;

	if (off < BW_DIRECT_WINDOW) {
		/*
		 * Older verifiers (6.1) need the bound on the very register added to the packet
		 * pointer (clang may test a copy), and the check made on the very pointer returned:
		 * o is masked where the compiler cannot fold the mask away, h is pinned before the
		 * comparison.
		 */
		__u32 o = off;

		asm volatile("" : "+r"(o));
		o &= BW_DIRECT_WINDOW - 1;
		h = data + o;
		asm volatile("" : "+r"(h));
		if (h + len <= end)
			return h;
	}
	return bpf_skb_load_bytes(skb, off, buf, len) < 0 ? NULL : buf;
}

static __always_inline void bw_l4_ports(struct __sk_buff *skb, struct bw_pkt *p, __u32 off)
{
	__be16 buf[2], *ports;

	p->l4off = off;
	if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP && p->l4proto != IPPROTO_SCTP &&
	    p->l4proto != IPPROTO_UDPLITE) {
		p->l4 = BW_L4_OTHER;
		if ((p->l4proto == IPPROTO_ICMPV6 || p->l4proto == IPPROTO_ICMP) &&
		    bpf_skb_load_bytes(skb, off, &p->icmp_type, 1) < 0)
			p->l4 = BW_L4_TRUNCATED;
		return;
	}
	if (!(ports = bw_hdr(skb, off, buf, sizeof(buf)))) {
		p->l4 = BW_L4_TRUNCATED;
		return;
	}
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	p->l4 = BW_L4_PORTS;
}

static __always_inline int bw_parse_v4(struct __sk_buff *skb, struct bw_pkt *p, __u32 off)
{
	struct iphdr buf, *ip = bw_hdr(skb, off, &buf, sizeof(buf));

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return BW_PARSE_MALFORMED;
	p->family = 4;
	__builtin_memcpy(p->saddr, &ip->saddr, 4);
	__builtin_memcpy(p->daddr, &ip->daddr, 4);
	p->l4proto = ip->protocol;
	/* A non-first fragment has no transport header: decided by addresses and protocol. */
	if (ip->frag_off & bpf_htons(0x1fff)) {
		p->frag = 1;
		return BW_PARSE_OK;
	}
	bw_l4_ports(skb, p, off + ip->ihl * 4);
	return BW_PARSE_OK;
}

static __always_inline int bw_parse_v6(struct __sk_buff *skb, struct bw_pkt *p, __u32 off)
{
	struct ipv6hdr buf, *ip6 = bw_hdr(skb, off, &buf, sizeof(buf));
	__u8 nexthdr;

	if (!ip6 || ip6->version != 6)
		return BW_PARSE_MALFORMED;
	p->family = 6;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	nexthdr = ip6->nexthdr;
	off += sizeof(*ip6);

	/* BW_MAX_EXTHDRS extension headers, then one more round that meets the transport. */
#pragma unroll
	for (int i = 0; i <= BW_MAX_EXTHDRS; i++) {
		__u8 h[8];

		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
		case IPPROTO_AH:
		case IPPROTO_FRAGMENT:
			if (i == BW_MAX_EXTHDRS) {
				/* Too many extension headers to find the transport: malformed. */
				p->l4 = BW_L4_TRUNCATED;
				return BW_PARSE_OK;
			}
			break;
		case IPPROTO_NONE:
			p->l4proto = nexthdr;
			p->l4 = BW_L4_OTHER;
			return BW_PARSE_OK;
		default:
			p->l4proto = nexthdr;
			bw_l4_ports(skb, p, off);
			return BW_PARSE_OK;
		}
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0) {
			p->l4 = BW_L4_TRUNCATED;
			return BW_PARSE_OK;
		}
		if (nexthdr == IPPROTO_FRAGMENT) {
			/* Fragment offset != 0: no transport header in this packet. */
			if ((h[2] << 8 | h[3]) & 0xfff8) {
				p->l4proto = h[0];
				p->frag = 1;
				return BW_PARSE_OK;
			}
			off += 8;
		} else if (nexthdr == IPPROTO_AH) {
			off += (h[1] + 2) * 4;
		} else {
			if (nexthdr == IPPROTO_ROUTING)
				p->rthdr = 1;
			off += (h[1] + 1) * 8;
		}
		nexthdr = h[0];
	}
	p->l4 = BW_L4_TRUNCATED; /* not reached: the last round returns */
	return BW_PARSE_OK;
}

#define BW_ETH_P_8021Q 0x8100
#define BW_ETH_P_8021AD 0x88a8
#define BW_ETH_P_QINQ1 0x9100 /* pre-standard QinQ, still sent by some switches */

static __always_inline int bw_vlan_proto(__u16 proto)
{
	return proto == BW_ETH_P_8021Q || proto == BW_ETH_P_8021AD || proto == BW_ETH_P_QINQ1;
}

/*
 * Ethertypes that carry IP without being IP: a frame with one of them cannot be classified (its
 * addresses are deeper than this parser reads), so it is dropped rather than passed as "not IP".
 */
static __always_inline int bw_carries_ip(__u16 proto)
{
	switch (proto) {
	case 0x8847: /* MPLS unicast */
	case 0x8848: /* MPLS multicast */
	case 0x8864: /* PPPoE session */
	case 0x88e7: /* 802.1ah provider backbone bridging: a whole Ethernet frame inside */
	case 0x894f: /* NSH */
		return 1;
	}
	return 0;
}

/*
 * Uplinks are Ethernet. The ethertype is read from the frame, not from skb->protocol: a VLAN
 * device with reorder_hdr off (or QinQ) leaves its tags in the frame, where skb->protocol is the
 * tag's type. Up to BW_MAX_VLANS tags are skipped; a deeper stack, or a tagged frame that is not
 * IP nor ARP, cannot be classified and is malformed. A tag the kernel keeps out of the frame
 * (skb->vlan_tci, hardware offload) does not move the network header.
 */
static __always_inline int bw_parse(struct __sk_buff *skb, struct bw_pkt *p)
{
	__be16 buf, *tp = bw_hdr(skb, 12, &buf, sizeof(buf));
	__u32 off = ETH_HLEN;
	__u16 proto;

	if (!tp)
		return BW_PARSE_NOT_IP; /* shorter than an Ethernet header: carries no address */
	proto = bpf_ntohs(*tp);
#pragma unroll
	for (int i = 0; i < BW_MAX_VLANS; i++) {
		if (!bw_vlan_proto(proto))
			break;
		/* TCI, then the encapsulated ethertype */
		if (!(tp = bw_hdr(skb, off + 2, &buf, sizeof(buf))))
			return BW_PARSE_MALFORMED;
		proto = bpf_ntohs(*tp);
		off += 4;
		p->vlans++;
	}
	if (proto == ETH_P_IP)
		return bw_parse_v4(skb, p, off);
	if (proto == ETH_P_IPV6)
		return bw_parse_v6(skb, p, off);
	if (bw_vlan_proto(proto) || bw_carries_ip(proto))
		return BW_PARSE_MALFORMED;
	if (off != ETH_HLEN && proto != ETH_P_ARP)
		return BW_PARSE_MALFORMED;
	return BW_PARSE_NOT_IP;
}

/*
 * The packet an ICMP/ICMPv6 error quotes, right after the 8-byte ICMP header, parsed like any
 * packet of p's family (its VLAN tags are the outer frame's). BW_PARSE_OK or BW_PARSE_MALFORMED.
 */
static __always_inline int bw_parse_quote(struct __sk_buff *skb, const struct bw_pkt *p, struct bw_pkt *q)
{
	return p->family == 4 ? bw_parse_v4(skb, q, p->l4off + 8) : bw_parse_v6(skb, q, p->l4off + 8);
}

/* An ICMPv6 redirect's destination field (RFC 4861 4.5: after the 8-byte header and the target). */
static __always_inline const __u8 *bw_parse_redirect_dst(struct __sk_buff *skb, const struct bw_pkt *p,
							 __u8 buf[16])
{
	return bw_hdr(skb, p->l4off + 24, buf, 16);
}

#endif
