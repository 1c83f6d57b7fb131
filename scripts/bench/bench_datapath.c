// SPDX-License-Identifier: GPL-2.0-only
/*
 * ns/packet of the uplink egress program vs a pass-through tc program, both through
 * BPF_PROG_TEST_RUN in the same run, IPv4 and IPv6, with 10 / 1,000 / 100,000 peer prefixes.
 * The packet is pod -> pod with a peer: the full path (parse, two class lookups, peer lookup,
 * redirect verdict). Three figures per row:
 *   hit       one flow repeated (BPF_PROG_TEST_RUN's repeat): after its first packet every packet
 *             hits the flow cache. Anchor: bw_pass repeated the same way.
 *   no-cache  the same with BW_CFG_FLOW_CACHE cleared: every packet walks the lookups, nothing
 *             is stored.
 *   rotation  65,536 distinct address pairs (each its own source address, destinations spread
 *             over the peer prefixes), one BPF_PROG_TEST_RUN call per packet (repeat 1), round
 *             after round: with 4,096 cache slots per CPU every packet is a miss (the pair's slot
 *             has been taken by ~16 other pairs since its last turn): the miss path, with the
 *             cache lookup and the slot write, over a working set that does not sit in L1.
 *             Anchor: bw_pass over the same packets, called the same way (so the per-call
 *             timing overhead is in both and cancels in the difference).
 * Each figure is the best of several runs (the machine is shared).  usage: bench_datapath [repeat]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bulwark_abi.h"
#include "datapath/datapath.h"
#include "bw_uplink.skel.h"
#include "bw_pass.skel.h"
#include "bw_bench_rot.skel.h"

#define ROT_PAIRS 65536
#define ROT_ROUNDS 4

static unsigned char pkt4[14 + 20 + 20], pkt6[14 + 40 + 20];
static unsigned char (*rot4)[sizeof(pkt4)], (*rot6)[sizeof(pkt6)];

/* Peer prefix i: IPv4 /32 hosts counting down from 198.19.255.255, IPv6 /64s fd00:11:iiii:ii00::/64; *host is in it. */
static void peer_prefix(int fam, int i, struct bw_cidr *c, unsigned char host[16])
{
	memset(c, 0, sizeof(*c));
	c->family = fam;
	if (fam == 4) {
		uint32_t a = htonl(0xc613ffffu - (uint32_t)i);

		memcpy(c->addr, &a, 4);
		c->len = 32;
		memcpy(host, c->addr, 4);
		return;
	}
	inet_pton(AF_INET6, "fd00:11::", c->addr);
	c->addr[4] = (uint8_t)(i >> 16), c->addr[5] = (uint8_t)(i >> 8), c->addr[6] = (uint8_t)i;
	c->len = 64;
	memcpy(host, c->addr, 16);
	host[15] = 5;
}

static void build(void)
{
	struct iphdr *ip = (void *)(pkt4 + 14);
	struct ipv6hdr *ip6 = (void *)(pkt6 + 14);

	((struct ethhdr *)pkt4)->h_proto = htons(ETH_P_IP);
	ip->version = 4, ip->ihl = 5, ip->ttl = 64, ip->protocol = IPPROTO_TCP;
	ip->tot_len = htons(40);
	inet_pton(AF_INET, "198.18.0.1", &ip->saddr);
	inet_pton(AF_INET, "198.19.255.255", &ip->daddr); /* peer prefix 0 */
	pkt4[14 + 20 + 12] = 0x50;
	((struct ethhdr *)pkt6)->h_proto = htons(ETH_P_IPV6);
	ip6->version = 6, ip6->hop_limit = 64, ip6->nexthdr = IPPROTO_TCP;
	ip6->payload_len = htons(20);
	inet_pton(AF_INET6, "fd00:10::1", &ip6->saddr);
	inet_pton(AF_INET6, "fd00:11::5", &ip6->daddr); /* in peer prefix 0 */
	pkt6[14 + 40 + 12] = 0x50;
}

/* The rotation's packets for n peer prefixes: pair k is pod source k -> peer prefix k mod n. */
static void build_rotation(int n)
{
	for (int k = 0; k < ROT_PAIRS; k++) {
		struct iphdr *ip = (void *)(rot4[k] + 14);
		struct ipv6hdr *ip6 = (void *)(rot6[k] + 14);
		uint32_t src = htonl(0xc6120000u + (uint32_t)k); /* 198.18.0.0 + k: a pod */
		unsigned char host[16];
		struct bw_cidr c;

		memcpy(rot4[k], pkt4, sizeof(pkt4));
		memcpy(rot6[k], pkt6, sizeof(pkt6));
		peer_prefix(4, k % n, &c, host);
		memcpy(&ip->saddr, &src, 4);
		memcpy(&ip->daddr, host, 4);
		peer_prefix(6, k % n, &c, host);
		memcpy(&ip6->daddr, host, 16);
		ip6->saddr.s6_addr[12] = (uint8_t)(k >> 24), ip6->saddr.s6_addr[13] = (uint8_t)(k >> 16);
		ip6->saddr.s6_addr[14] = (uint8_t)(k >> 8), ip6->saddr.s6_addr[15] = (uint8_t)k;
	}
}

/* Peer prefixes [from, to) through the library (it keeps bw_peer_lens and the cache right). */
static void fill(struct bw_dp *dp, int from, int to)
{
	struct bw_peer v = { .peer_id = 1 };

	for (int i = from; i < to; i++)
		for (int fam = 4; fam <= 6; fam += 2) {
			unsigned char host[16];
			struct bw_cidr c;

			peer_prefix(fam, i, &c, host);
			if (bw_dp_peer_set(dp, &c, &v) < 0) {
				fprintf(stderr, "cannot add a peer prefix\n");
				exit(1);
			}
		}
}

static void one(int fd, const void *p, size_t len, int repeat, int want, __u32 *dur)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p, .data_size_in = len, .repeat = repeat);

	if (bpf_prog_test_run_opts(fd, &o) || (int)o.retval != want) {
		fprintf(stderr, "test run failed (retval %d)\n", (int)o.retval);
		exit(1);
	}
	*dur = o.duration;
}

static double run(int fd, const void *p, size_t len, int repeat, int want)
{
	double best = 1e9;

	/* Best of 5: the machine is shared; the minimum is the program's cost. */
	for (int i = 0; i < 5; i++) {
		__u32 d;

		one(fd, p, len, repeat, want, &d);
		if (d < best)
			best = d;
	}
	return best;
}

/*
 * The rotation: bw_rot_* write pair k of the table into the packet before deciding it, k
 * advancing each run; ROT_ROUNDS rounds over the table in one call, best of 5.
 */
static double rotate(struct bw_bench_rot *rot, int prog_fd, int fam, int want)
{
	const void *p = fam == 4 ? pkt4 : pkt6;
	size_t len = fam == 4 ? sizeof(pkt4) : sizeof(pkt6);
	int fd = bpf_map__fd(rot->maps.bw_rot_pairs);

	for (__u32 k = 0; k < ROT_PAIRS; k++) {
		struct { unsigned char s[16], d[16]; } pr;

		memset(&pr, 0, sizeof(pr));
		const unsigned char *pk = fam == 4 ? rot4[k] : rot6[k];

		if (fam == 4)
			memcpy(pr.s, pk + 14 + 12, 4), memcpy(pr.d, pk + 14 + 16, 4);
		else
			memcpy(pr.s, pk + 14 + 8, 16), memcpy(pr.d, pk + 14 + 24, 16);
		if (bpf_map_update_elem(fd, &k, &pr, BPF_ANY)) {
			fprintf(stderr, "cannot fill the rotation table\n");
			exit(1);
		}
	}
	rot->bss->bw_rot_count = ROT_PAIRS;
	rot->bss->bw_rot_next = 0;
	return run(prog_fd, p, len, ROT_PAIRS * ROT_ROUNDS, want);
}

static char pin[64];

/* The pin directory goes on every exit, a failed run's too. */
static void unpin(void)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", pin);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", pin);
}

int main(int argc, char **argv)
{
	int repeat = argc > 1 ? atoi(argv[1]) : 1000000, sizes[] = { 10, 1000, 100000 }, done = 0;
	struct bw_pass *pass = bw_pass__open_and_load();

	rot4 = calloc(ROT_PAIRS, sizeof(*rot4));
	rot6 = calloc(ROT_PAIRS, sizeof(*rot6));
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/bw-bench-%d", getpid());
	mkdir(pin, 0700);
	atexit(unpin);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin);
	struct bw_uplink *up = bw_uplink__open_opts(&opts);
	struct bw_bench_rot *rot = NULL;
	if (!pass || !up || !rot4 || !rot6 || bw_uplink__load(up) || !(rot = bw_bench_rot__open_opts(&opts)) ||
	    bw_bench_rot__load(rot)) {
		fprintf(stderr, "cannot load programs (root? bpffs on /sys/fs/bpf?)\n");
		return 1;
	}
	struct bw_config cfg = { .wg_ifindex = 1, .wg_fwmark = 0x1e00, .wg_port = 51820, .flags = BW_CFG_FLOW_CACHE };
	struct bw_dp *dp = NULL;
	struct bw_prefix pod = { BW_CLASS_POD };
	struct bw_lpm_v4 p4 = { .prefixlen = 15 };
	struct bw_lpm_v6 p6 = { .prefixlen = 8 };
	__u32 zero = 0;
	inet_pton(AF_INET, "198.18.0.0", p4.addr);
	inet_pton(AF_INET6, "fd00::", p6.addr);
	bpf_map_update_elem(bpf_map__fd(up->maps.bw_config), &zero, &cfg, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(up->maps.bw_protect_v4), &p4, &pod, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(up->maps.bw_protect_v6), &p6, &pod, BPF_ANY);
	if (bw_dp_open(pin, &dp) < 0) {
		fprintf(stderr, "cannot open the pinned maps\n");
		return 1;
	}
	build();

	/* the no-cache anchor is the same pass-through run as the cache hit's ("pass") */
	printf("%-6s %8s | %27s | %20s | %34s\n", "", "", "one flow (cache hit)", "no cache (vs pass)",
	       "65,536 pairs in rotation (misses)");
	printf("%-6s %8s | %6s %6s %6s %6s | %6s %6s %6s | %7s %7s %7s %8s\n", "family", "prefixes", "ours", "pass",
	       "diff", "ratio", "ours", "diff", "ratio", "ours", "pass", "diff", "ratio");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(dp, done, sizes[i]);
		done = sizes[i];
		bw_dp_flow_invalidate(dp); /* the protect maps changed behind the library's back */
		build_rotation(sizes[i]);
		for (int fam = 4; fam <= 6; fam += 2) {
			const void *p = fam == 4 ? pkt4 : pkt6;
			size_t len = fam == 4 ? sizeof(pkt4) : sizeof(pkt6);
			int eg_fd = bpf_program__fd(up->progs.bw_egress), pass_fd = bpf_program__fd(pass->progs.bw_pass);
			double ours, uncached, base, many, many_base;

			cfg.flags = 0;
			bw_dp_config_set(dp, &cfg);
			uncached = run(eg_fd, p, len, repeat, TC_ACT_REDIRECT);
			cfg.flags = BW_CFG_FLOW_CACHE;
			bw_dp_config_set(dp, &cfg);
			ours = run(eg_fd, p, len, repeat, TC_ACT_REDIRECT);
			base = run(pass_fd, p, len, repeat, TC_ACT_OK);
			many = rotate(rot, bpf_program__fd(rot->progs.bw_rot_egress), fam, TC_ACT_REDIRECT);
			many_base = rotate(rot, bpf_program__fd(rot->progs.bw_rot_pass), fam, TC_ACT_OK);
			printf("ipv%-3d %8d | %6.1f %6.1f %6.1f %5.2fx | %6.1f %6.1f %5.2fx | %7.1f %7.1f %7.1f %7.2fx\n", fam,
			       sizes[i], ours, base, ours - base, ours / base, uncached, uncached - base, uncached / base,
			       many, many_base, many - many_base, many / many_base);
			fflush(stdout);
		}
	}
	bw_dp_close(dp);
	bw_uplink__destroy(up);
	bw_bench_rot__destroy(rot);
	bw_pass__destroy(pass);
	free(rot4);
	free(rot6);
	return 0;
}
