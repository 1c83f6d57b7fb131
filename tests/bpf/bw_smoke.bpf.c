// SPDX-License-Identifier: GPL-2.0-only
/* A trivial tc program for the harness smoke tests: counts packets per direction, passes all. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct bw_smoke_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bw_smoke_count);
} bw_smoke_stats SEC(".maps");

SEC("tc")
int bw_smoke(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct bw_smoke_count *c = bpf_map_lookup_elem(&bw_smoke_stats, &k);

	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, skb->len);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
