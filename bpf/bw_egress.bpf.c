// SPDX-License-Identifier: GPL-2.0-only
/* tc egress on every uplink: protected traffic goes into WireGuard or is dropped. */
#include "lib/policy.h"

SEC("tc")
int bw_egress(struct __sk_buff *skb)
{
	return bw_enforce(skb, BW_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
