// SPDX-License-Identifier: GPL-2.0-only
/* tc ingress on every uplink: protected traffic arriving in plaintext is dropped. */
#include "lib/policy.h"

SEC("tc")
int bw_ingress(struct __sk_buff *skb)
{
	return bw_enforce(skb, BW_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
