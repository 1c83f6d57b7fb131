// SPDX-License-Identifier: GPL-2.0-only
/*
 * The uplink datapath: both tc programs of every uplink in one object (one skeleton, one load,
 * the maps shared by construction). bpftool and tc show them by their function names.
 */
#include "lib/policy.h"

/* tc egress: protected traffic goes into WireGuard or is dropped. */
SEC("tc")
int bw_egress(struct __sk_buff *skb)
{
	return bw_enforce(skb, BW_DIR_EGRESS);
}

/* tc ingress: protected traffic arriving in plaintext is dropped. */
SEC("tc")
int bw_ingress(struct __sk_buff *skb)
{
	return bw_enforce(skb, BW_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
