/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI between bulwark's BPF programs and userspace: map keys and values, the config
 * record, counter indices and drop events. Included by the bpf/ programs and by userspace/datapath.
 * Every map is BTF-typed, named bw_*, pinned by name under the pin directory, so
 * `bpftool map dump pinned /sys/fs/bpf/bulwark/<map>` prints these field names.
 */
#ifndef BULWARK_ABI_H
#define BULWARK_ABI_H

#include <linux/types.h>

#define BW_PIN_DIR_DEFAULT "/sys/fs/bpf/bulwark"

/* bw_config (array, one entry, key 0): runtime settings, changed by `datapath apply` without reload. */
struct bw_config {
	__u32 wg_ifindex;     /* redirect target for protected traffic; 0: none, so it is dropped */
	__u32 wg_fwmark;      /* skb mark WireGuard puts on its own encrypted packets; 0: unused */
	__u16 wg_port;        /* this node's WireGuard UDP listen port */
	__u16 overlay_port;   /* VXLAN/Geneve UDP port carried between nodes as pod traffic; 0: off */
	__u32 flags;          /* BW_CFG_* */
	__u32 events_per_sec; /* drop events per CPU per second before they are counted as lost */
};
#define BW_CFG_NODE_ENCRYPTION (1u << 0) /* node<->node and node<->pod traffic is protected too */
#define BW_CFG_EVENTS          (1u << 1) /* emit drop events into bw_events */
/*
 * Use the flow cache (bw_flow_v4/v6, bw_flow_gen). Only userspace that bumps bw_flow_gen after
 * every map change sets it: without the bit every packet walks the tries as before.
 */
#define BW_CFG_FLOW_CACHE      (1u << 2)

/* bw_protect_v4/v6 (LPM tries): the cluster's prefixes and what they hold. */
struct bw_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct bw_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};
enum bw_class {
	BW_CLASS_NONE = 0, /* outside the cluster: never enforced */
	BW_CLASS_POD = 1,  /* pod CIDR: always protected */
	BW_CLASS_NODE = 2, /* node addresses: protected only with BW_CFG_NODE_ENCRYPTION */
};
struct bw_prefix {
	__u32 class; /* enum bw_class */
};

/*
 * bw_peer_v4/v6 (hash maps, key bw_lpm_v4/v6 with the host bits zero): remote prefixes reachable
 * through a WireGuard peer. Hashes, not LPM tries: a trie lookup walks a node per branching bit
 * (about 17 with 100,000 host prefixes, ~80 ns), a hash lookup costs the same at any size. The
 * programs ask "does a peer prefix cover daddr?" by probing, for each prefix length in use
 * (bw_peer_lens), daddr masked to that length: the answer is yes or no (which peer does not matter
 * to the datapath), so the probe order is free; longest first.
 */
struct bw_peer {
	__u8 pubkey[32]; /* the peer's WireGuard public key (informational, for operators) */
	__u32 peer_id;   /* controller's id for the peer */
};

/*
 * bw_peer_lens (array, one entry, mmap-able): the prefix lengths in use in bw_peer_v4/v6, a bit
 * per length. Bit i of v4: length 32 - i; bit i of v6[w]: length 128 - (64 * w + i). Userspace
 * sets a length's bit (atomic OR through mmap, so concurrent writers never lose one) *before*
 * the first prefix of that length goes in, and never clears it while the maps live: a stale bit
 * costs one probe, a missing one would hide that length's prefixes (dropped, never passed: the
 * peer answer only chooses between WireGuard and a drop). Anyone adding peer prefixes by other
 * means (bpftool) must set the bit too.
 */
struct bw_peer_lens {
	__u64 v4;
	__u64 v6[3];
};

/* bw_allow (hash): node-to-node bootstrap ports passed in clear when node encryption is on. */
enum bw_dir { BW_DIR_EGRESS = 0, BW_DIR_INGRESS = 1 };
struct bw_allow_key {
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 dir;   /* enum bw_dir, or BW_ALLOW_OVERLAY */
	__u16 port; /* destination port, host byte order */
};
struct bw_allow {
	__u32 hits; /* informational */
};

/*
 * Encapsulation (issue 11; additive). UDP to an overlay port between two cluster addresses carries
 * pods (VXLAN, Geneve...): it is protected like pod traffic. These ports always are, configured or
 * not; bw_config.overlay_port and bw_allow entries {IPPROTO_UDP, BW_ALLOW_OVERLAY, port} (the
 * configuration's OverlayPorts) add more. An overlay entry is never an allowlist entry.
 */
#define BW_OVERLAY_PORT_VXLAN 4789       /* IANA VXLAN */
#define BW_OVERLAY_PORT_VXLAN_LINUX 8472 /* Linux's (and flannel's) VXLAN default */
#define BW_OVERLAY_PORT_GENEVE 6081      /* IANA Geneve */
#define BW_ALLOW_OVERLAY 2               /* bw_allow_key.dir of an overlay port */

/*
 * bw_stats (per-CPU array, key = BW_STAT_KEY(reason, dir)): what happened to packets, and why, per
 * direction. An array's key can only be a plain __u32 in BTF, so each value names its own slot:
 * `reason` and `dir` are written by userspace when the map is created (bw_dp_stats_label), and
 * bpftool prints them as enum names next to the counters (bpf/README.md shows a dump).
 */
enum bw_reason {
	BW_REASON_REDIRECTED = 0,         /* protected, sent into WireGuard */
	BW_REASON_PASSED_ENCRYPTED,       /* already WireGuard (mark or listen port) */
	BW_REASON_PASSED_UNPROTECTED,     /* not protected traffic */
	BW_REASON_DROPPED_NO_PEER,        /* protected, no peer covers the destination */
	BW_REASON_DROPPED_PLAINTEXT_INGRESS, /* protected source arrived in clear */
	BW_REASON_DROPPED_MALFORMED,      /* headers truncated or invalid */
	BW_REASON_ALLOWED_BY_PORT,        /* node-to-node bootstrap port */
	BW_REASON_EVENTS_LOST,            /* drop events rate-limited or ring buffer full */
	BW_REASON_DROPPED_NO_DEVICE,      /* protected, a peer covers it, but no WireGuard device
					   * (wg_ifindex 0: the agent saw the device vanish) */
	BW_REASON_MAX,
};
#define BW_STAT_KEY(reason, dir) ((__u32)(dir) * BW_REASON_MAX + (__u32)(reason))
#define BW_STAT_ENTRIES (2 * BW_REASON_MAX)
struct bw_stat {
	__u64 packets;
	__u64 bytes;
	enum bw_reason reason; /* this slot's reason and direction: labels for bpftool, never counted */
	enum bw_dir dir;
};

/* bw_events (ring buffer): one record per dropped packet, rate-limited per CPU. */
struct bw_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	__u32 ifindex;
	__u32 len;       /* skb length */
	__u8 reason;     /* enum bw_reason */
	__u8 dir;        /* enum bw_dir */
	__u8 family;     /* 4 or 6 */
	__u8 l4proto;    /* IPPROTO_*, 0 when unknown (non-first fragment, truncated) */
	__u16 sport;     /* host byte order; 0 when unknown */
	__u16 dport;
	__u8 saddr[16];  /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

/*
 * bw_flow_v4/v6 (per-CPU arrays, BW_FLOW_SLOTS slots): the flow cache. An address pair's three
 * trie lookups (the class of each address in bw_protect_*, whether a bw_peer_* prefix covers the
 * destination), made once and reused while bw_flow_gen still holds the generation they were made
 * under. Direct-mapped: the pair's slot is bw_flow_slot(); a slot holds one pair, the full pair
 * is compared, a collision is a miss. Per CPU and written only by the program on that CPU (tc
 * runs with bottom halves off, so one CPU never runs two of them at once): no reader ever sees a
 * slot half-written or recycled for another pair. Only addresses are cached: ports, marks and
 * bw_config are evaluated on every packet, so a hit decides exactly as the tries would.
 */
#define BW_FLOW_SLOT_BITS 12
#define BW_FLOW_SLOTS (1u << BW_FLOW_SLOT_BITS)
struct bw_flow_v4 {
	__u64 gen;       /* bw_flow_gen.gen when the lookups were made; 0: empty; other: stale */
	__u8 daddr[4];
	__u8 saddr[4];
	__u8 src_class;  /* enum bw_class of saddr */
	__u8 dst_class;  /* enum bw_class of daddr */
	__u8 peer;       /* 1: a peer prefix covers daddr (looked up only when a class is set) */
	__u8 pad[5];
};
struct bw_flow_v6 {
	__u64 gen;
	__u8 daddr[16];
	__u8 saddr[16];
	__u8 src_class;
	__u8 dst_class;
	__u8 peer;
	__u8 pad[5];
};

/*
 * The slot of an address pair; words = 1 (IPv4) or 4 (IPv6) 32-bit words per address. Every word
 * has its own multiplier, so (a, b) and (b, a) (a request and its reply) land apart.
 */
static inline __attribute__((always_inline)) __u32 bw_flow_slot(const __u8 *daddr, const __u8 *saddr,
								 int words)
{
	__u64 h = 0;

	for (int i = 0; i < words && i < 4; i++) {
		__u32 d, s;

		__builtin_memcpy(&d, daddr + 4 * i, 4);
		__builtin_memcpy(&s, saddr + 4 * i, 4);
		h += (__u64)d * (0x9e3779b97f4a7c15ull + (__u64)i * 0xc2b2ae3d27d4eb4full);
		h += (__u64)s * (0xd6e8feb86659fd93ull + (__u64)i * 0x94d049bb133111ebull);
	}
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	return (__u32)(h >> (64 - BW_FLOW_SLOT_BITS));
}

/*
 * bw_flow_gen (array, one entry, mmap-able): the cache generation. Userspace increments it
 * atomically (through mmap) after every change to bw_protect_*, bw_peer_*, bw_allow or
 * bw_config; programs read it before their trie lookups, so an entry made before a change can
 * never match after the increment. 0 (a fresh map) disables the cache until the first increment.
 */
struct bw_flow_gen {
	__u64 gen;
};

/* bw_ratelimit (per-CPU array, one entry): the event budget of the current second. */
struct bw_ratelimit {
	__u64 window_ns;
	__u32 sent;
	__u32 pad;
};

#endif
