// SPDX-License-Identifier: GPL-2.0-only
/*
 * The benchmark's many-flows rotation (scripts/bench/bench_datapath.c): BPF_PROG_TEST_RUN repeats
 * one packet, so before each run these programs write the next address pair of a prepared table
 * into the packet (pair k, k = 0, 1, ... wrapping at the table's size), then decide it:
 * bw_rot_egress runs the uplink's egress decision (lib/policy.h, the same code as bw_egress),
 * bw_rot_pass returns TC_ACT_OK, the anchor that pays the same rewrite. Not loaded by bulwark.
 */
#include "lib/policy.h"

#define BW_ROT_PAIRS 65536

struct bw_rot_pair {
	__u8 saddr[16]; /* IPv4: the first 4 bytes */
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BW_ROT_PAIRS);
	__type(key, __u32);
	__type(value, struct bw_rot_pair);
} bw_rot_pairs SEC(".maps");

__u32 bw_rot_next;  /* the next pair */
__u32 bw_rot_count; /* pairs in the table (<= BW_ROT_PAIRS) */

/* Write pair k into the packet's address fields (IPv4 or IPv6 after a plain Ethernet header). */
static __always_inline int bw_rot_rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 k = bw_rot_next++;
	struct bw_rot_pair *pr;

	if (bw_rot_next >= bw_rot_count)
		bw_rot_next = 0;
	pr = bpf_map_lookup_elem(&bw_rot_pairs, &k);
	if (!pr || data + 14 + 40 > end)
		return -1;
	if (((struct ethhdr *)data)->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + 14;

		__builtin_memcpy(&ip->saddr, pr->saddr, 4);
		__builtin_memcpy(&ip->daddr, pr->daddr, 4);
	} else {
		struct ipv6hdr *ip6 = data + 14;

		__builtin_memcpy(&ip6->saddr, pr->saddr, 16);
		__builtin_memcpy(&ip6->daddr, pr->daddr, 16);
	}
	return 0;
}

SEC("tc")
int bw_rot_egress(struct __sk_buff *skb)
{
	if (bw_rot_rewrite(skb) < 0)
		return TC_ACT_UNSPEC;
	return bw_enforce(skb, BW_DIR_EGRESS);
}

SEC("tc")
int bw_rot_pass(struct __sk_buff *skb)
{
	if (bw_rot_rewrite(skb) < 0)
		return TC_ACT_UNSPEC;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
