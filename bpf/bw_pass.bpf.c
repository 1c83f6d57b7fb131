// SPDX-License-Identifier: GPL-2.0-only
/* A pass-through tc program: the benchmark's anchor (same attach point, no work). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int bw_pass(struct __sk_buff *skb)
{
	(void)skb;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
