// SPDX-License-Identifier: GPL-2.0-only
/*
 * The uplink programs against the host kernel with BPF_PROG_TEST_RUN: one crafted packet per
 * verdict and reason, IPv4 and IPv6; counters and ring-buffer events checked.
 *
 * Cluster used throughout:  pods 198.18.0.0/16, fd00:10::/32    nodes 198.19.0.0/24, fd00:20::/64
 * peer (remote node B pods): 198.18.2.0/24, fd00:10:2::/48       no peer: 198.18.3.0/24, fd00:10:3::/48
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <sys/stat.h>
#include <cmocka.h>
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* positional flow literals */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bulwark_abi.h"
#include "datapath/datapath.h"
#include "datapath/internal.h"
#include "bw_uplink.skel.h"

#define WG_IFINDEX 1 /* lo: test runs never deliver the redirect, only its verdict */
#define WG_MARK 0x1e00
#define WG_PORT 51820
#define OVERLAY_PORT 8472

static struct bw_uplink *up; /* both programs, one object: the maps are shared by construction */
static char pin_dir[64];
static int nr_cpus;
static struct bw_dp *dp;      /* the library's view of the same pins: its writes bump the cache */
static __u32 base_flags;      /* BW_CFG_FLOW_CACHE in the cached group, 0 in the uncached one */

/* ---- packet building ---- */
struct pkt {
	unsigned char align[2]; /* puts the IP header (b + 14) on a 4-byte boundary, as in an skb */
	unsigned char b[512];
	size_t len;
} __attribute__((aligned(4)));

struct flow {
	int family;
	const char *src, *dst;
	int proto;                 /* IPPROTO_TCP/UDP/ICMPV6/... */
	unsigned sport, dport;
	unsigned frag_offset;      /* in 8-byte units; non-zero: non-first fragment */
	int ext_hdrs;              /* IPv6: HOPOPTS/DSTOPTS headers before the transport */
	int icmp6_type;
};

static void build(struct pkt *p, const struct flow *f)
{
	struct ethhdr *eth = (void *)p->b;
	size_t off = sizeof(*eth), l4len = f->proto == IPPROTO_TCP ? sizeof(struct tcphdr) : 8;
	unsigned char *l4;

	memset(p, 0, sizeof(*p));
	if (f->family == 4) {
		struct iphdr *ip = (void *)(p->b + off);
		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = f->proto;
		ip->frag_off = htons(f->frag_offset);
		inet_pton(AF_INET, f->src, &ip->saddr);
		inet_pton(AF_INET, f->dst, &ip->daddr);
		ip->tot_len = htons(sizeof(*ip) + l4len);
		off += sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = (void *)(p->b + off);
		unsigned char *nh = &ip6->nexthdr;
		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->hop_limit = 64;
		inet_pton(AF_INET6, f->src, &ip6->saddr);
		inet_pton(AF_INET6, f->dst, &ip6->daddr);
		off += sizeof(*ip6);
		for (int i = 0; i < f->ext_hdrs; i++) {
			*nh = i == 0 ? IPPROTO_HOPOPTS : IPPROTO_DSTOPTS;
			nh = p->b + off;
			p->b[off + 1] = 0; /* 8 bytes */
			off += 8;
		}
		if (f->frag_offset) {
			*nh = IPPROTO_FRAGMENT;
			nh = p->b + off;
			p->b[off + 2] = (f->frag_offset << 3) >> 8;
			p->b[off + 3] = (f->frag_offset << 3) & 0xff;
			off += 8;
		}
		*nh = f->proto;
		ip6->payload_len = htons(off - sizeof(*eth) - sizeof(*ip6) + l4len);
	}
	l4 = p->b + off;
	if (f->proto == IPPROTO_ICMPV6) {
		l4[0] = f->icmp6_type;
	} else {
		l4[0] = f->sport >> 8; l4[1] = f->sport & 0xff;
		l4[2] = f->dport >> 8; l4[3] = f->dport & 0xff;
	}
	if (f->proto == IPPROTO_TCP)
		((struct tcphdr *)l4)->doff = 5;
	p->len = off + l4len;
}

/* ---- map helpers ---- */
/*
 * A peer prefix length's bit in bw_peer_lens, as bpftool users must set it (bulwark_abi.h);
 * the library sets it through mmap with an atomic OR.
 */
static void peer_len_set(int family, int len)
{
	int fd = bpf_map__fd(up->maps.bw_peer_lens);
	struct bw_peer_lens l;
	__u32 zero = 0;

	assert_int_equal(bpf_map_lookup_elem(fd, &zero, &l), 0);
	if (family == 4)
		l.v4 |= 1ull << (32 - len);
	else
		l.v6[(128 - len) / 64] |= 1ull << ((128 - len) % 64);
	assert_int_equal(bpf_map_update_elem(fd, &zero, &l, BPF_ANY), 0);
}

/* A write behind the library's back: the flow cache does not hear of it. */
static void add_prefix_raw(int fd, int family, const char *cidr, const void *val)
{
	char a[64];
	int len;
	const char *slash = strchr(cidr, '/');

	memcpy(a, cidr, slash - cidr);
	a[slash - cidr] = 0;
	len = atoi(slash + 1);
	if (fd == bpf_map__fd(up->maps.bw_peer_v4) || fd == bpf_map__fd(up->maps.bw_peer_v6))
		peer_len_set(family, len);
	if (family == 4) {
		struct bw_lpm_v4 k = { .prefixlen = len };
		assert_int_equal(inet_pton(AF_INET, a, k.addr), 1);
		assert_int_equal(bpf_map_update_elem(fd, &k, val, BPF_ANY), 0);
	} else {
		struct bw_lpm_v6 k = { .prefixlen = len };
		assert_int_equal(inet_pton(AF_INET6, a, k.addr), 1);
		assert_int_equal(bpf_map_update_elem(fd, &k, val, BPF_ANY), 0);
	}
}

static void del_prefix_raw(int fd, int family, const char *cidr)
{
	char a[64];
	const char *slash = strchr(cidr, '/');

	memcpy(a, cidr, slash - cidr);
	a[slash - cidr] = 0;
	if (family == 4) {
		struct bw_lpm_v4 k = { .prefixlen = atoi(slash + 1) };
		inet_pton(AF_INET, a, k.addr);
		bpf_map_delete_elem(fd, &k);
	} else {
		struct bw_lpm_v6 k = { .prefixlen = atoi(slash + 1) };
		inet_pton(AF_INET6, a, k.addr);
		bpf_map_delete_elem(fd, &k);
	}
}

/* Raw writes followed by the invalidation every map writer owes the cache. */
static void add_prefix(int fd, int family, const char *cidr, const void *val)
{
	add_prefix_raw(fd, family, cidr, val);
	assert_int_equal(bw_dp_flow_invalidate(dp), 0);
}

static void del_prefix(int fd, int family, const char *cidr)
{
	del_prefix_raw(fd, family, cidr);
	assert_int_equal(bw_dp_flow_invalidate(dp), 0);
}

static void set_config(__u32 flags, __u32 events_per_sec)
{
	struct bw_config c = {
		.wg_ifindex = WG_IFINDEX, .wg_fwmark = WG_MARK, .wg_port = WG_PORT,
		.overlay_port = OVERLAY_PORT, .flags = flags | base_flags, .events_per_sec = events_per_sec,
	};
	__u32 zero = 0;
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(up->maps.bw_config), &zero, &c, BPF_ANY), 0);
}

/* One (reason, direction) slot summed over CPUs; its labels must name it on every CPU. */
static struct bw_stat stat_dir(__u32 reason, __u32 dir)
{
	struct bw_stat per[nr_cpus], sum = { 0 };
	__u32 key = BW_STAT_KEY(reason, dir);

	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(up->maps.bw_stats), &key, per), 0);
	for (int i = 0; i < nr_cpus; i++) {
		sum.packets += per[i].packets;
		sum.bytes += per[i].bytes;
		assert_int_equal(per[i].reason, reason);
		assert_int_equal(per[i].dir, dir);
	}
	return sum;
}

static struct bw_stat stat_of(__u32 reason)
{
	struct bw_stat e = stat_dir(reason, BW_DIR_EGRESS), i = stat_dir(reason, BW_DIR_INGRESS);

	return (struct bw_stat){ .packets = e.packets + i.packets, .bytes = e.bytes + i.bytes };
}

static void reset_stats(void)
{
	struct bw_stat zero[nr_cpus];
	struct bw_ratelimit rl[nr_cpus];
	__u32 k0 = 0;

	memset(zero, 0, sizeof(zero));
	memset(rl, 0, sizeof(rl));
	for (__u32 r = 0; r < BW_STAT_ENTRIES; r++)
		assert_int_equal(bpf_map_update_elem(bpf_map__fd(up->maps.bw_stats), &r, zero, BPF_ANY), 0);
	assert_int_equal(bw_dp_stats_label(bpf_map__fd(up->maps.bw_stats)), 0);
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(up->maps.bw_ratelimit), &k0, rl, BPF_ANY), 0);
}

/* ---- events ---- */
static struct bw_event events[64];
static int n_events;

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len == sizeof(struct bw_event) && n_events < (int)ARRAY_SIZE(events))
		memcpy(&events[n_events++], data, len);
	return 0;
}

static int drain_events(void)
{
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(up->maps.bw_events), on_event, NULL, NULL);

	assert_non_null(rb);
	n_events = 0;
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return n_events;
}

/* ---- running ---- */
static __u32 run_iif; /* the skb's ingress device: non-zero for a forwarded packet */

static int run(int dir, const struct pkt *p, __u32 mark, int repeat)
{
	struct __sk_buff ctx = { .mark = mark, .ingress_ifindex = run_iif };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = p->len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = repeat);
	int fd = dir == BW_DIR_EGRESS ? bpf_program__fd(up->progs.bw_egress)
				      : bpf_program__fd(up->progs.bw_ingress);

	assert_int_equal(bpf_prog_test_run_opts(fd, &o), 0);
	return (int)o.retval;
}

/* Run a flow once; assert the verdict, that exactly this reason counted it, and the event. */
static void expect(int dir, const struct flow *f, __u32 mark, int verdict, __u32 reason)
{
	struct pkt p;

	build(&p, f);
	reset_stats();
	drain_events();
	assert_int_equal(run(dir, &p, mark, 1), verdict);
	/* Counted once, under its reason and the direction it was seen in, nowhere else. */
	for (__u32 d = 0; d < 2; d++)
		for (__u32 r = 0; r < BW_REASON_MAX; r++) {
			struct bw_stat s = stat_dir(r, d);
			bool mine = r == reason && d == (__u32)dir;
			if (s.packets != (mine ? 1u : 0u))
				fail_msg("reason %u dir %u counted %llu packets, expected reason %u dir %d", r, d,
					 (unsigned long long)s.packets, reason, dir);
			if (mine)
				assert_int_equal(s.bytes, p.len);
		}
	if (verdict == TC_ACT_SHOT) {
		unsigned char sa[16] = { 0 };
		assert_int_equal(drain_events(), 1);
		assert_int_equal(events[0].reason, reason);
		assert_int_equal(events[0].dir, dir);
		assert_int_equal(events[0].family, f->family);
		assert_int_equal(events[0].len, p.len);
		inet_pton(f->family == 4 ? AF_INET : AF_INET6, f->src, sa);
		assert_memory_equal(events[0].saddr, sa, f->family == 4 ? 4 : 16);
		if (!f->frag_offset && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) &&
		    reason != BW_REASON_DROPPED_MALFORMED) {
			assert_int_equal(events[0].sport, f->sport);
			assert_int_equal(events[0].dport, f->dport);
		}
	} else {
		assert_int_equal(drain_events(), 0);
	}
}

/* Address book, indexed by family. */
struct addrs { const char *pod_a, *pod_b, *pod_nopeer, *node_a, *node_b, *outside, *peer_b, *node_b_host; };
static const struct addrs A4 = { "198.18.1.5", "198.18.2.7", "198.18.3.9", "198.19.0.1", "198.19.0.2",
				 "198.19.255.1", "198.18.2.0/24", "198.19.0.2/32" };
static const struct addrs A6 = { "fd00:10:1::5", "fd00:10:2::7", "fd00:10:3::9", "fd00:20::1", "fd00:20::2",
				 "fd00:30::1", "fd00:10:2::/48", "fd00:20::2/128" };
#define AD(fam) ((fam) == 4 ? &A4 : &A6)
#define EACH_FAMILY for (int fam = 4; fam <= 6; fam += 2)

static int setup(void **state)
{
	struct bw_prefix pod = { BW_CLASS_POD }, node = { BW_CLASS_NODE };
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;

	nr_cpus = libbpf_num_possible_cpus();
	/* The runner finds what a test left by its BW_ID. */
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/bw-test-dp-%s-%d", getenv("BW_ID") ? getenv("BW_ID") : "x", getpid());
	mkdir(pin_dir, 0700);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	up = bw_uplink__open_opts(&opts);
	if (!up || bw_uplink__load(up) || bw_dp_open(pin_dir, &dp) ||
	    bw_dp_stats_label(bpf_map__fd(up->maps.bw_stats)))
		return -1;
	add_prefix(bpf_map__fd(up->maps.bw_protect_v4), 4, "198.18.0.0/16", &pod);
	add_prefix(bpf_map__fd(up->maps.bw_protect_v4), 4, "198.19.0.0/24", &node);
	add_prefix(bpf_map__fd(up->maps.bw_protect_v6), 6, "fd00:10::/32", &pod);
	add_prefix(bpf_map__fd(up->maps.bw_protect_v6), 6, "fd00:20::/64", &node);
	add_prefix(bpf_map__fd(up->maps.bw_peer_v4), 4, A4.peer_b, &peer);
	add_prefix(bpf_map__fd(up->maps.bw_peer_v6), 6, A6.peer_b, &peer);
	set_config(BW_CFG_EVENTS, 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	bw_dp_close(dp);
	bw_uplink__destroy(up);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pin_dir);
	return system(cmd);
}

static void maps_are_shared_through_pins(void **state)
{
	struct bpf_map_info a = { 0 }, b = { 0 };
	__u32 la = sizeof(a), lb = sizeof(b);
	char path[128];
	(void)state;

	assert_int_equal(bpf_obj_get_info_by_fd(bpf_map__fd(up->maps.bw_peer_v4), &a, &la), 0);
	assert_int_equal(bpf_obj_get_info_by_fd(bpf_map__fd(up->maps.bw_peer_v4), &b, &lb), 0);
	assert_int_equal(a.id, b.id);
	snprintf(path, sizeof(path), "%s/bw_peer_v4", pin_dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_true(a.btf_id != 0 && a.btf_value_type_id != 0);
}

static void redirect_pod_to_peer(void **state)
{
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		f.proto = IPPROTO_UDP;
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
	}
}

static void drop_no_peer(void **state)
{
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_nopeer, IPPROTO_TCP, 40000, 443 };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	}
}

static void pass_encrypted_by_mark(void **state)
{
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->node_a, AD(fam)->node_b, IPPROTO_UDP, 33333, WG_PORT };
		expect(BW_DIR_EGRESS, &f, WG_MARK, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
		/* Even a pod-addressed packet: WireGuard itself emitted it. */
		struct flow g = { fam, AD(fam)->pod_a, AD(fam)->pod_nopeer, IPPROTO_TCP, 1, 2 };
		expect(BW_DIR_EGRESS, &g, WG_MARK, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
		/* Another mark is not WireGuard's. */
		expect(BW_DIR_EGRESS, &g, WG_MARK + 1, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	}
}

static void pass_encrypted_by_port(void **state)
{
	(void)state;
	set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->node_a, AD(fam)->node_b, IPPROTO_UDP, WG_PORT, WG_PORT };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
		expect(BW_DIR_INGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
		/* A pod cannot borrow the listen port to leave in clear. */
		struct flow g = { fam, AD(fam)->pod_a, AD(fam)->pod_nopeer, IPPROTO_UDP, WG_PORT, WG_PORT };
		expect(BW_DIR_EGRESS, &g, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_INGRESS, &g, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
	}
	set_config(BW_CFG_EVENTS, 0);
}

static void pass_unprotected(void **state)
{
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow f = { fam, a->outside, "198.19.255.2", IPPROTO_TCP, 1, 2 };
		if (fam == 6)
			f.dst = "fd00:30::2";
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_INGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		/* A pod talking to the world (e.g. not masqueraded) is not pod-to-pod traffic. */
		struct flow g = { fam, a->pod_a, a->outside, IPPROTO_TCP, 1, 2 };
		expect(BW_DIR_EGRESS, &g, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		/* ...and the world answering a pod passes too. */
		struct flow h = { fam, a->outside, a->pod_a, IPPROTO_TCP, 2, 1 };
		expect(BW_DIR_INGRESS, &h, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	}
}

static void drop_plaintext_ingress(void **state)
{
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_b, AD(fam)->pod_a, IPPROTO_TCP, 80, 40000 };
		expect(BW_DIR_INGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		f.proto = IPPROTO_UDP;
		expect(BW_DIR_INGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
	}
}

/* README's flow table, node-encryption off and on, rows involving node addresses. */
static void node_flows_follow_node_encryption(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow node_to_pod = { fam, a->node_a, a->pod_b, IPPROTO_TCP, 1, 2 };
		struct flow pod_to_node = { fam, a->pod_a, a->node_b, IPPROTO_TCP, 1, 2 };
		struct flow node_to_node = { fam, a->node_a, a->node_b, IPPROTO_TCP, 1, 22 };
		struct flow pod_from_node = { fam, a->node_b, a->pod_a, IPPROTO_TCP, 2, 1 };
		struct flow node_from_pod = { fam, a->pod_b, a->node_a, IPPROTO_TCP, 2, 1 };
		int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);

		set_config(BW_CFG_EVENTS, 0);
		expect(BW_DIR_EGRESS, &node_to_pod, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_EGRESS, &pod_to_node, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_EGRESS, &node_to_node, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_INGRESS, &pod_from_node, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_INGRESS, &node_from_pod, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_INGRESS, &node_to_node, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);

		set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
		expect(BW_DIR_EGRESS, &node_to_pod, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		expect(BW_DIR_EGRESS, &pod_to_node, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_EGRESS, &node_to_node, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		add_prefix(peerfd, fam, a->node_b_host, &peer);
		expect(BW_DIR_EGRESS, &pod_to_node, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		expect(BW_DIR_EGRESS, &node_to_node, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		del_prefix(peerfd, fam, a->node_b_host);
		expect(BW_DIR_INGRESS, &pod_from_node, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		expect(BW_DIR_INGRESS, &node_from_pod, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		expect(BW_DIR_INGRESS, &node_to_node, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
	}
	set_config(BW_CFG_EVENTS, 0);
}

static void allowlist(void **state)
{
	struct bw_allow_key eg_k = { IPPROTO_TCP, BW_DIR_EGRESS, 6443 }, in_k = { IPPROTO_TCP, BW_DIR_INGRESS, 6443 };
	struct bw_allow v = { 0 };
	int fd = bpf_map__fd(up->maps.bw_allow);
	(void)state;

	set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow req = { fam, a->node_a, a->node_b, IPPROTO_TCP, 40000, 6443 };
		struct flow reply = { fam, a->node_b, a->node_a, IPPROTO_TCP, 6443, 40000 };
		struct flow pod = { fam, a->pod_a, a->pod_nopeer, IPPROTO_TCP, 40000, 6443 };

		expect(BW_DIR_EGRESS, &req, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		assert_int_equal(bpf_map_update_elem(fd, &eg_k, &v, BPF_ANY), 0);
		assert_int_equal(bpf_map_update_elem(fd, &in_k, &v, BPF_ANY), 0);
		expect(BW_DIR_EGRESS, &req, 0, TC_ACT_OK, BW_REASON_ALLOWED_BY_PORT);
		expect(BW_DIR_INGRESS, &reply, 0, TC_ACT_OK, BW_REASON_ALLOWED_BY_PORT);
		/* The allowlist is for node-to-node bootstrap only, never for pods. */
		expect(BW_DIR_EGRESS, &pod, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		/* Another protocol on the same port is not allowed. */
		req.proto = IPPROTO_UDP;
		expect(BW_DIR_EGRESS, &req, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		bpf_map_delete_elem(fd, &eg_k);
		bpf_map_delete_elem(fd, &in_k);
	}
	set_config(BW_CFG_EVENTS, 0);
}

static void overlay_is_pod_traffic(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow vx = { fam, a->node_a, a->node_b, IPPROTO_UDP, 55555, OVERLAY_PORT };
		struct flow vx_in = { fam, a->node_b, a->node_a, IPPROTO_UDP, 55555, OVERLAY_PORT };
		int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);

		/* Without node encryption node traffic passes, but the overlay carries pods. */
		expect(BW_DIR_EGRESS, &vx, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_INGRESS, &vx_in, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		add_prefix(peerfd, fam, a->node_b_host, &peer);
		expect(BW_DIR_EGRESS, &vx, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		del_prefix(peerfd, fam, a->node_b_host);
		/* Another UDP port between nodes is plain node traffic. */
		vx.dport = 4790;
		expect(BW_DIR_EGRESS, &vx, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	}
}

static void truncated_headers(void **state)
{
	struct pkt p;
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow f = { fam, a->pod_a, a->pod_b, IPPROTO_TCP, 40000, 80 };
		size_t l3 = fam == 4 ? 20 : 40;

		/* A network header that is not what the ethertype says: could be anything, dropped.
		 * (BPF_PROG_TEST_RUN refuses packets shorter than Ethernet + IP header, so a cut IP
		 * header is exercised through its version field instead.) */
		build(&p, &f);
		p.b[ETH_HLEN] = (p.b[ETH_HLEN] & 0x0f) | (fam == 4 ? 0x60 : 0x40);
		reset_stats();
		drain_events();
		assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_SHOT);
		assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 1);
		assert_int_equal(drain_events(), 1);
		assert_int_equal(events[0].reason, BW_REASON_DROPPED_MALFORMED);

		/* Ports cut short on protected addresses: dropped (ports decide exemptions). */
		build(&p, &f);
		p.len = ETH_HLEN + l3 + 3;
		reset_stats();
		assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_SHOT);
		assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 1);
		assert_int_equal(run(BW_DIR_INGRESS, &p, 0, 1), TC_ACT_SHOT);
		assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 2);

		/* ...but the same cut on traffic outside the cluster is none of our business. */
		struct flow g = { fam, a->outside, a->outside, IPPROTO_TCP, 1, 2 };
		build(&p, &g);
		p.len = ETH_HLEN + l3 + 3;
		reset_stats();
		assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_OK);
		assert_int_equal(stat_of(BW_REASON_PASSED_UNPROTECTED).packets, 1);
	}
	/* A bad IPv4 header length. */
	struct flow f = { 4, A4.pod_a, A4.pod_b, IPPROTO_TCP, 1, 2 };
	build(&p, &f);
	((struct iphdr *)(p.b + ETH_HLEN))->ihl = 4;
	reset_stats();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_SHOT);
	assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 1);
}

static void fragments_by_address(void **state)
{
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		/* Non-first fragments have no ports: address decides. */
		struct flow f = { fam, a->pod_a, a->pod_b, IPPROTO_UDP, 0, 0, .frag_offset = 100 };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		f.dst = a->pod_nopeer;
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		struct flow g = { fam, a->pod_b, a->pod_a, IPPROTO_UDP, 0, 0, .frag_offset = 100 };
		expect(BW_DIR_INGRESS, &g, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		/* A non-first fragment cannot claim the WireGuard port exemption. */
		set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
		struct flow h = { fam, a->node_b, a->node_a, IPPROTO_UDP, 0, 0, .frag_offset = 100 };
		expect(BW_DIR_INGRESS, &h, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		set_config(BW_CFG_EVENTS, 0);
	}
}

static void ipv6_extension_headers(void **state)
{
	struct pkt p;
	(void)state;

	set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
	/* The WireGuard port is found behind extension headers. */
	struct flow f = { 6, A6.node_a, A6.node_b, IPPROTO_UDP, WG_PORT, WG_PORT, .ext_hdrs = 2 };
	expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
	/* So is the allowlisted port... and a non-first fragment behind them has no ports. */
	struct flow g = { 6, A6.node_a, A6.node_b, IPPROTO_UDP, WG_PORT, WG_PORT, .ext_hdrs = 2, .frag_offset = 9 };
	expect(BW_DIR_EGRESS, &g, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	set_config(BW_CFG_EVENTS, 0);

	/* Pod traffic behind extension headers is still pod traffic. */
	struct flow h = { 6, A6.pod_a, A6.pod_b, IPPROTO_TCP, 1, 2, .ext_hdrs = 2 };
	expect(BW_DIR_EGRESS, &h, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);

	/* Exactly BW_MAX_EXTHDRS (8) extension headers are followed... */
	struct flow e8 = { 6, A6.pod_a, A6.pod_b, IPPROTO_TCP, 1, 2, .ext_hdrs = 8 };
	expect(BW_DIR_EGRESS, &e8, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
	/* ...a 9th is more than the bounded walk follows: malformed when protected. */
	struct flow k = { 6, A6.pod_a, A6.pod_b, IPPROTO_TCP, 1, 2, .ext_hdrs = 9 };
	build(&p, &k);
	reset_stats();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_SHOT);
	assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 1);

	/* An extension header cut short. */
	build(&p, &h);
	p.len = ETH_HLEN + 40 + 4;
	reset_stats();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_SHOT);
	assert_int_equal(stat_of(BW_REASON_DROPPED_MALFORMED).packets, 1);
}

static void neighbour_discovery_and_non_ip_pass(void **state)
{
	struct pkt p;
	(void)state;

	set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
	struct flow na = { 6, A6.node_a, A6.node_b, IPPROTO_ICMPV6, .icmp6_type = 136 };
	expect(BW_DIR_EGRESS, &na, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	expect(BW_DIR_INGRESS, &na, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	/* An echo request between nodes is protected like any node traffic. */
	struct flow echo = { 6, A6.node_a, A6.node_b, IPPROTO_ICMPV6, .icmp6_type = 128 };
	expect(BW_DIR_EGRESS, &echo, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	set_config(BW_CFG_EVENTS, 0);

	memset(&p, 0, sizeof(p));
	((struct ethhdr *)p.b)->h_proto = htons(ETH_P_ARP);
	p.len = 60;
	reset_stats();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 1), TC_ACT_OK);
	assert_int_equal(stat_of(BW_REASON_PASSED_UNPROTECTED).packets, 1);
}

static void events_are_rate_limited(void **state)
{
	struct pkt p;
	struct flow f = { 4, A4.pod_a, A4.pod_nopeer, IPPROTO_TCP, 1, 2 };
	(void)state;

	set_config(BW_CFG_EVENTS, 5);
	build(&p, &f);
	reset_stats();
	drain_events();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 40), TC_ACT_SHOT);
	assert_int_equal(stat_of(BW_REASON_DROPPED_NO_PEER).packets, 40);
	assert_int_equal(drain_events(), 5);
	assert_int_equal(stat_of(BW_REASON_EVENTS_LOST).packets, 35);

	/* Events off: drops still counted, nothing emitted, nothing lost. */
	set_config(0, 0);
	reset_stats();
	assert_int_equal(run(BW_DIR_EGRESS, &p, 0, 3), TC_ACT_SHOT);
	assert_int_equal(stat_of(BW_REASON_DROPPED_NO_PEER).packets, 3);
	assert_int_equal(drain_events(), 0);
	assert_int_equal(stat_of(BW_REASON_EVENTS_LOST).packets, 0);
	set_config(BW_CFG_EVENTS, 0);
}

/*
 * wg_ifindex 0 (none configured yet, or the agent saw the device vanish): a peer's traffic is
 * dropped and counted as dropped-no-device, with an event, never passed and never "redirected".
 */
static void no_wireguard_device_fails_closed(void **state)
{
	struct bw_config c = { .flags = BW_CFG_EVENTS | base_flags };
	__u32 zero = 0;
	(void)state;

	assert_int_equal(bpf_map_update_elem(bpf_map__fd(up->maps.bw_config), &zero, &c, BPF_ANY), 0);
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 1, 2 };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_DEVICE);
	}
	set_config(BW_CFG_EVENTS, 0);
}


/* ---- every layer a packet carries (issue 11): VLAN tags, encapsulations, ICMP quotes ---- */

/* Run a hand-built packet once; assert the verdict, that only this reason counted it, one event
 * per drop. */
#define expect_pkt(dir, p, verdict, reason) expect_pkt_at(__LINE__, dir, p, verdict, reason)
static void expect_pkt_at(int line, int dir, const struct pkt *p, int verdict, __u32 reason)
{
	int got;

	reset_stats();
	drain_events();
	if ((got = run(dir, p, 0, 1)) != verdict)
		fail_msg("line %d: verdict %d, expected %d", line, got, verdict);
	for (__u32 r = 0; r < BW_REASON_MAX; r++) {
		struct bw_stat s = stat_of(r);
		if (s.packets != (r == reason ? 1u : 0u))
			fail_msg("line %d: reason %u counted %llu packets, expected reason %u", line, r,
				 (unsigned long long)s.packets, reason);
	}
	assert_int_equal(drain_events(), verdict == TC_ACT_SHOT ? 1 : 0);
	if (verdict == TC_ACT_SHOT)
		assert_int_equal(events[0].reason, reason);
}

/* The IP packet of a flow (no Ethernet header), built as build() does. */
static size_t ip_of(const struct flow *f, unsigned char *out)
{
	struct pkt t;

	build(&t, f);
	memcpy(out, t.b + ETH_HLEN, t.len - ETH_HLEN);
	return t.len - ETH_HLEN;
}

static void put16(unsigned char *b, unsigned v)
{
	b[0] = v >> 8;
	b[1] = v & 0xff;
}

/*
 * A frame: Ethernet, vlans tags (outermost 802.1ad when there are two), an IP header from src
 * to dst with protocol proto (frag: fragment offset in 8-byte units), then payload.
 */
static void wrap(struct pkt *p, int vlans, int fam, const char *src, const char *dst, int proto,
		 unsigned frag, const unsigned char *payload, size_t plen)
{
	size_t off = 12;

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < vlans; i++) {
		put16(p->b + off, i == 0 && vlans > 1 ? 0x88a8 : 0x8100);
		put16(p->b + off + 2, 100 + i); /* TCI: VLAN id */
		off += 4;
	}
	put16(p->b + off, fam == 4 ? ETH_P_IP : ETH_P_IPV6);
	off += 2;
	if (fam == 4) {
		struct iphdr *ip = (void *)(p->b + off);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = proto;
		ip->frag_off = htons(frag);
		ip->tot_len = htons(sizeof(*ip) + plen);
		inet_pton(AF_INET, src, &ip->saddr);
		inet_pton(AF_INET, dst, &ip->daddr);
		off += sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = (void *)(p->b + off);
		ip6->version = 6;
		ip6->hop_limit = 64;
		inet_pton(AF_INET6, src, &ip6->saddr);
		inet_pton(AF_INET6, dst, &ip6->daddr);
		off += sizeof(*ip6);
		if (frag) {
			ip6->nexthdr = IPPROTO_FRAGMENT;
			p->b[off] = proto;
			put16(p->b + off + 2, frag << 3);
			off += 8;
		} else {
			ip6->nexthdr = proto;
		}
		ip6->payload_len = htons(off - ETH_HLEN - 2 - sizeof(*ip6) + plen);
	}
	assert_true(off + plen <= sizeof(p->b));
	memcpy(p->b + off, payload, plen);
	p->len = off + plen;
}

/* A flow's packet with vlans tags in the frame. */
static void build_tagged(struct pkt *p, const struct flow *f, int vlans)
{
	unsigned char in[256];
	struct pkt t;
	size_t n;

	build(&t, f);
	n = t.len - ETH_HLEN;
	memcpy(in, t.b + ETH_HLEN, n);
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < vlans; i++) {
		put16(p->b + 12 + 4 * i, i == 0 && vlans > 1 ? 0x88a8 : 0x8100);
		put16(p->b + 14 + 4 * i, 100 + i);
	}
	put16(p->b + 12 + 4 * vlans, f->family == 4 ? ETH_P_IP : ETH_P_IPV6);
	memcpy(p->b + ETH_HLEN + 4 * vlans, in, n);
	p->len = ETH_HLEN + 4 * vlans + n;
}

static void vlan_tags_in_the_frame(void **state)
{
	struct pkt p;
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow f = { fam, a->pod_a, a->pod_b, IPPROTO_TCP, 40000, 80 };
		struct flow nopeer = { fam, a->pod_a, a->pod_nopeer, IPPROTO_UDP, 40000, 53 };
		struct flow back = { fam, a->pod_b, a->pod_a, IPPROTO_TCP, 80, 40000 };
		struct flow world = { fam, a->outside, fam == 4 ? "198.19.255.2" : "fd00:30::2", IPPROTO_TCP, 1, 2 };

		for (int vlans = 1; vlans <= 2; vlans++) {
			build_tagged(&p, &f, vlans);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
			/* What goes into WireGuard has no tags left: an Ethernet header, then IP. */
			{
				unsigned char out[sizeof(p.b)];
				LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = p.len,
					    .data_out = out, .data_size_out = sizeof(out));
				assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(up->progs.bw_egress), &o), 0);
				assert_int_equal(o.retval, TC_ACT_REDIRECT);
				assert_int_equal(o.data_size_out, p.len - 4 * vlans);
				assert_int_equal(out[12] << 8 | out[13], fam == 4 ? ETH_P_IP : ETH_P_IPV6);
				assert_memory_equal(out + ETH_HLEN, p.b + ETH_HLEN + 4 * vlans, p.len - ETH_HLEN - 4 * vlans);
			}
			build_tagged(&p, &nopeer, vlans);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			assert_int_equal(events[0].family, fam);
			assert_int_equal(events[0].dport, 53);
			build_tagged(&p, &back, vlans);
			expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
			build_tagged(&p, &world, vlans);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		}
		/* A third tag is deeper than the parser reads: the packet cannot be classified. */
		build_tagged(&p, &f, 3);
		expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_MALFORMED);
		expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_MALFORMED);
	}
	/* Tagged ARP passes; a tagged frame of another type could hide IP: dropped. */
	memset(&p, 0, sizeof(p));
	put16(p.b + 12, 0x8100);
	put16(p.b + 16, ETH_P_ARP);
	p.len = 64;
	expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	put16(p.b + 16, 0x88b5); /* IEEE local experimental */
	expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_MALFORMED);
	/* Untagged: ethertypes that carry IP are dropped, others (LLDP) pass. */
	memset(&p, 0, sizeof(p));
	p.len = 64;
	const unsigned carriers[] = { 0x8847, 0x8848, 0x8864, 0x88e7, 0x894f };
	for (size_t i = 0; i < ARRAY_SIZE(carriers); i++) {
		put16(p.b + 12, carriers[i]);
		p.b[14] = 0x45; /* what follows looks like IPv4 */
		expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_MALFORMED);
		expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_MALFORMED);
	}
	put16(p.b + 12, 0x88cc);
	expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
}

/* The encapsulations a kernel sends between two nodes, each carrying a pod packet. */
enum encap { E_IPIP, E_SIT, E_GRE4, E_GRE6, E_GRETAP, E_VXLAN, E_VXLAN_LINUX, E_GENEVE,
	     E_OVERLAY_CONF, E_SRV6, E_ETHERIP, E_MPLS, E_COUNT };
static const char *const encap_name[E_COUNT] = {
	"ipip/4in6", "sit/6in6", "gre (IPv4 inside)", "gre (IPv6 inside)", "gretap", "vxlan 4789",
	"vxlan 8472", "geneve 6081", "udp to a configured overlay port", "srv6 routing header",
	"etherip", "mpls-in-ip",
};
#define CONF_OVERLAY_PORT 7777

/* Outer family fam, node src -> node dst, carrying inner (a pod packet); fills p. */
static void build_encap(struct pkt *p, enum encap e, int fam, const char *src, const char *dst,
			const struct flow *inner4, const struct flow *inner6)
{
	unsigned char pl[400], *q = pl;
	const struct flow *in = e == E_SIT || e == E_GRE6 ? inner6 : inner4;
	int proto;

	memset(pl, 0, sizeof(pl));
	switch (e) {
	case E_IPIP: proto = 4; break;
	case E_SIT: proto = 41; break;
	case E_ETHERIP: proto = 97; q += 2; goto eth; /* EtherIP: 2-byte header, then a frame */
	case E_MPLS: proto = 137; put16(q, 100 >> 4); q[2] = 0x01; q[3] = 64; q += 4; break;
	case E_GRE4: case E_GRE6: proto = 47; put16(q + 2, in->family == 4 ? ETH_P_IP : ETH_P_IPV6); q += 4; break;
	case E_GRETAP: proto = 47; put16(q + 2, 0x6558); q += 4; goto eth;
	case E_SRV6:
		/* A segment routing header (type 4) with one segment, then the inner packet. */
		proto = 43;
		q[0] = in->family == 4 ? 4 : 41;
		q[1] = 2;      /* (2 + 1) * 8 = 24 bytes */
		q[2] = 4;      /* SRH */
		q[3] = 0;      /* segments left */
		inet_pton(AF_INET6, inner6->dst, q + 8);
		q += 24;
		break;
	default: {
		unsigned port = e == E_VXLAN ? 4789 : e == E_VXLAN_LINUX ? 8472 : e == E_GENEVE ? 6081 : CONF_OVERLAY_PORT;
		proto = IPPROTO_UDP;
		put16(q, 55555);
		put16(q + 2, port);
		q += 8;
		q[0] = e == E_GENEVE ? 0 : 0x08; /* VXLAN I flag; Geneve version 0, no options */
		if (e == E_GENEVE)
			put16(q + 2, 0x6558);
		q += 8;
		goto eth;
	}
	}
	q += ip_of(in, q);
	goto done;
eth:
	put16(q + 12, in->family == 4 ? ETH_P_IP : ETH_P_IPV6);
	q += ETH_HLEN;
	q += ip_of(in, q);
done:
	if (proto == IPPROTO_UDP)
		put16(pl + 4, q - pl);
	/* SRv6 only exists on IPv6; on an IPv4 outer it becomes IPv6-in-IP */
	if (proto == 43 && fam == 4) {
		proto = 41;
		memmove(pl, pl + 24, q - pl - 24);
		q -= 24;
	}
	wrap(p, 0, fam, src, dst, proto, 0, pl, q - pl);
}

static void encapsulations_between_nodes(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	struct bw_allow_key ov = { IPPROTO_UDP, BW_ALLOW_OVERLAY, CONF_OVERLAY_PORT };
	struct bw_allow_key allow4789 = { IPPROTO_UDP, BW_DIR_EGRESS, 4789 };
	struct bw_allow v = { 0 };
	int afd = bpf_map__fd(up->maps.bw_allow);
	struct flow in4 = { 4, A4.pod_a, A4.pod_b, IPPROTO_TCP, 40000, 80 };
	struct flow in6 = { 6, A6.pod_a, A6.pod_b, IPPROTO_TCP, 40000, 80 };
	struct flow back4 = { 4, A4.pod_b, A4.pod_a, IPPROTO_TCP, 80, 40000 };
	struct flow back6 = { 6, A6.pod_b, A6.pod_a, IPPROTO_TCP, 80, 40000 };
	struct pkt p;
	(void)state;

	assert_int_equal(bpf_map_update_elem(afd, &ov, &v, BPF_ANY), 0);
	for (int enc = 0; enc <= 1; enc++) {
		set_config(BW_CFG_EVENTS | (enc ? BW_CFG_NODE_ENCRYPTION : 0), 0);
		EACH_FAMILY {
			const struct addrs *a = AD(fam);
			int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);

			for (int e = 0; e < E_COUNT; e++) {
				print_message("node encryption %s, IPv%d outer, %s\n", enc ? "on" : "off", fam, encap_name[e]);
				/* No peer covers node B's address: dropped, never in clear. */
				build_encap(&p, e, fam, a->node_a, a->node_b, &in4, &in6);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
				/* A peer covering node B: into WireGuard. */
				add_prefix(peerfd, fam, a->node_b_host, &peer);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
				del_prefix(peerfd, fam, a->node_b_host);
				/* Arriving in clear. */
				build_encap(&p, e, fam, a->node_b, a->node_a, &back4, &back6);
				expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
				/* Between a node and a pod (either way) too. */
				build_encap(&p, e, fam, a->node_a, a->pod_nopeer, &in4, &in6);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			}
			/* The allowlist never opens an overlay port. */
			if (enc) {
				assert_int_equal(bpf_map_update_elem(afd, &allow4789, &v, BPF_ANY), 0);
				build_encap(&p, E_VXLAN, fam, a->node_a, a->node_b, &in4, &in6);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
				bpf_map_delete_elem(afd, &allow4789);
			}
			/* UDP to another port between nodes is node traffic (node encryption off). */
			if (!enc) {
				struct flow u = { fam, a->node_a, a->node_b, IPPROTO_UDP, 55555, 4790 };
				struct pkt t;
				build(&t, &u);
				expect_pkt(BW_DIR_EGRESS, &t, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
			}
		}
	}
	bpf_map_delete_elem(afd, &ov);
	set_config(BW_CFG_EVENTS, 0);
}

/* Non-first fragments have no ports: between cluster addresses, UDP (an overlay's?) and every
 * encapsulating protocol are protected; TCP between nodes is node traffic. */
static void encapsulation_fragments(void **state)
{
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		struct flow udp = { fam, a->node_a, a->node_b, IPPROTO_UDP, 0, 0, .frag_offset = 185 };
		struct flow udp_in = { fam, a->node_b, a->node_a, IPPROTO_UDP, 0, 0, .frag_offset = 185 };
		struct flow gre = { fam, a->node_a, a->node_b, 47, 0, 0, .frag_offset = 185 };
		struct flow ipip = { fam, a->node_a, a->node_b, fam == 4 ? 4 : 41, 0, 0, .frag_offset = 185 };
		struct flow tcp = { fam, a->node_a, a->node_b, IPPROTO_TCP, 0, 0, .frag_offset = 185 };
		struct flow first = { fam, a->node_a, a->node_b, IPPROTO_UDP, 55555, 4789 };

		expect(BW_DIR_EGRESS, &udp, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_INGRESS, &udp_in, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		expect(BW_DIR_EGRESS, &gre, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_EGRESS, &ipip, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_EGRESS, &tcp, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		/* ...and the first fragment of the same VXLAN datagram (ports present). */
		expect(BW_DIR_EGRESS, &first, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		/* Outside the cluster fragments are none of our business. */
		struct flow world = { fam, a->outside, fam == 4 ? "198.19.255.2" : "fd00:30::2", IPPROTO_UDP, 0, 0, .frag_offset = 185 };
		expect(BW_DIR_EGRESS, &world, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	}
}

/* An ICMP error from src to dst quoting quoted (type/code), the whole quoted packet or qlen bytes. */
static void build_icmp_error(struct pkt *p, int fam, const char *src, const char *dst, int type,
			     int code, const struct flow *quoted, size_t qlen)
{
	unsigned char pl[300] = { 0 };
	size_t n = 8 + ip_of(quoted, pl + 8);

	pl[0] = type;
	pl[1] = code;
	if (qlen && 8 + qlen < n)
		n = 8 + qlen;
	wrap(p, 0, fam, src, dst, fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, 0, pl, n);
}

static void icmp_errors_by_their_quote(void **state)
{
	/* time exceeded, host unreachable, fragmentation needed / packet too big, parameter problem */
	const int t4[][2] = { { 11, 0 }, { 3, 1 }, { 3, 4 }, { 3, 3 }, { 12, 0 } };
	const int t6[][2] = { { 3, 0 }, { 1, 3 }, { 2, 0 }, { 1, 4 }, { 4, 0 } };
	struct pkt p;
	(void)state;

	for (int enc = 0; enc <= 1; enc++) {
		set_config(BW_CFG_EVENTS | (enc ? BW_CFG_NODE_ENCRYPTION : 0), 0);
		EACH_FAMILY {
			const struct addrs *a = AD(fam);
			/* What remote pod B sent (it came out of WireGuard) and this node answers. */
			struct flow from_b = { fam, a->pod_b, a->pod_a, IPPROTO_UDP, 40000, 53 };
			struct flow from_nopeer = { fam, a->pod_nopeer, a->pod_a, IPPROTO_TCP, 40000, 80 };
			/* What local pod A sent toward pod B: an error about it arrives from node B. */
			struct flow to_b = { fam, a->pod_a, a->pod_b, IPPROTO_TCP, 40000, 80 };

			for (int i = 0; i < 5; i++) {
				int type = fam == 4 ? t4[i][0] : t6[i][0], code = fam == 4 ? t4[i][1] : t6[i][1];

				print_message("node encryption %s, IPv%d, ICMP type %d code %d\n", enc ? "on" : "off", fam, type, code);
				/* node -> remote pod passes without node encryption, but not with a pod packet inside */
				build_icmp_error(&p, fam, a->node_a, a->pod_b, type, code, &from_b, 0);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
				build_icmp_error(&p, fam, a->node_a, a->pod_nopeer, type, code, &from_nopeer, 0);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
				/* the minimal quote: IP header + 8 bytes */
				build_icmp_error(&p, fam, a->node_a, a->pod_b, type, code, &from_b, (fam == 4 ? 20 : 40) + 8);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
				/* sourced from an address outside the cluster (a node's other address) */
				build_icmp_error(&p, fam, a->outside, a->pod_nopeer, type, code, &from_nopeer, 0);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
				/* node B's error about pod A's packet, arriving in clear */
				build_icmp_error(&p, fam, a->node_b, a->pod_a, type, code, &to_b, 0);
				expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
			}
			/* A quote cut inside its IP header, with cluster addresses around: malformed (with
			 * node encryption the outer header alone already sends it into WireGuard). */
			build_icmp_error(&p, fam, a->node_a, a->pod_b, fam == 4 ? 11 : 3, 0, &from_b, 10);
			expect_pkt(BW_DIR_EGRESS, &p, enc ? TC_ACT_REDIRECT : TC_ACT_SHOT,
				   enc ? BW_REASON_REDIRECTED : BW_REASON_DROPPED_MALFORMED);
			/* A quoted VXLAN datagram (port unreachable: no VXLAN device here) is pod traffic. */
			struct flow vx = { fam, a->node_b, a->node_a, IPPROTO_UDP, 55555, 4789 };
			build_icmp_error(&p, fam, a->node_a, a->node_b, fam == 4 ? 3 : 1, fam == 4 ? 3 : 4, &vx, 0);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			/* A quoted WireGuard datagram is ciphertext: a router's "too big" for it passes in. */
			struct flow wg = { fam, a->node_a, a->node_b, IPPROTO_UDP, WG_PORT, WG_PORT };
			build_icmp_error(&p, fam, a->outside, a->node_a, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &wg, 0);
			expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
			/* An outside host's packet to a pod, quoted back to it (time exceeded, too big,
			 * an IPv4 redirect for forwarded traffic): the world learns nothing about pods. */
			struct flow client = { fam, a->outside, a->pod_a, IPPROTO_TCP, 40000, 443 };
			struct flow fwd = { fam, a->outside, a->pod_b, IPPROTO_UDP, WG_PORT, 9 };
			build_icmp_error(&p, fam, a->node_a, a->outside, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &client, 0);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			build_icmp_error(&p, fam, a->node_a, a->outside, fam == 4 ? 11 : 3, 0, &fwd, 0);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			if (fam == 4) {
				build_icmp_error(&p, fam, a->node_a, a->outside, 5, 1, &fwd, 0);
				expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			}
			/* ...about traffic outside the cluster it passes, */
			struct flow world = { fam, a->outside, fam == 4 ? "198.19.255.2" : "fd00:30::2", IPPROTO_UDP, 1, 2 };
			build_icmp_error(&p, fam, a->node_a, a->outside, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &world, 0);
			expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
			/* ...and a router's error about a pod's traffic to the world comes in (PMTU). */
			struct flow out = { fam, a->pod_a, fam == 4 ? "198.19.255.2" : "fd00:30::2", IPPROTO_UDP, 1, 2 };
			build_icmp_error(&p, fam, a->outside, a->pod_a, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &out, 0);
			expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
			/* Node encryption off: a pod's packet to a node, quoted back, follows that row. */
			struct flow to_node = { fam, a->pod_b, a->node_a, IPPROTO_UDP, 40000, 9 };
			build_icmp_error(&p, fam, a->node_a, a->pod_b, fam == 4 ? 3 : 1, fam == 4 ? 3 : 4, &to_node, 0);
			expect_pkt(BW_DIR_EGRESS, &p, enc ? TC_ACT_REDIRECT : TC_ACT_OK,
				   enc ? BW_REASON_REDIRECTED : BW_REASON_PASSED_UNPROTECTED);
			/* Not an error: an echo reply from a node to a remote pod follows the node rows. */
			struct flow echo = { fam, a->node_a, a->pod_b, fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
					     .icmp6_type = fam == 4 ? 0 : 129 };
			expect(BW_DIR_EGRESS, &echo, 0, enc ? TC_ACT_REDIRECT : TC_ACT_OK,
			       enc ? BW_REASON_REDIRECTED : BW_REASON_PASSED_UNPROTECTED);
		}
	}
	set_config(BW_CFG_EVENTS, 0);
}

/* An ICMPv6 redirect (a node forwarding back out of the uplink it came in on) names the
 * redirected packet's destination and quotes it: leaving with a pod there, it is dropped. */
static void icmpv6_redirects(void **state)
{
	unsigned char pl[200] = { 137 };
	struct flow fwd = { 6, A6.outside, A6.pod_b, IPPROTO_UDP, WG_PORT, 9 };
	struct pkt p;
	size_t n;
	(void)state;

	inet_pton(AF_INET6, "fd00:20::2", pl + 8);   /* target: the better first hop, node B */
	inet_pton(AF_INET6, A6.pod_b, pl + 24);      /* destination */
	pl[40] = 4;                                  /* redirected header option */
	n = ip_of(&fwd, pl + 48);
	pl[41] = (8 + n + 7) / 8;
	n = 48 + pl[41] * 8 - 8;
	for (int enc = 0; enc <= 1; enc++) {
		set_config(BW_CFG_EVENTS | (enc ? BW_CFG_NODE_ENCRYPTION : 0), 0);
		wrap(&p, 0, 6, "fe80::1", A6.outside, IPPROTO_ICMPV6, 0, pl, n);
		expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		/* redirects are neighbour discovery on the way in */
		expect_pkt(BW_DIR_INGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		/* a redirect about traffic outside the cluster passes */
		inet_pton(AF_INET6, "fd00:30::2", pl + 24);
		wrap(&p, 0, 6, "fe80::1", A6.outside, IPPROTO_ICMPV6, 0, pl, 48);
		expect_pkt(BW_DIR_EGRESS, &p, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		inet_pton(AF_INET6, A6.pod_b, pl + 24);
	}
	set_config(BW_CFG_EVENTS, 0);
}

/* The WireGuard port exempts only this node's own datagrams (not forwarded ones), and on
 * ingress only those toward a node. */
static void wireguard_port_only_for_our_wireguard(void **state)
{
	(void)state;
	for (int enc = 0; enc <= 1; enc++) {
		set_config(BW_CFG_EVENTS | (enc ? BW_CFG_NODE_ENCRYPTION : 0), 0);
		EACH_FAMILY {
			const struct addrs *a = AD(fam);
			struct flow ours = { fam, a->node_a, a->node_b, IPPROTO_UDP, WG_PORT, WG_PORT };
			struct flow fwd = { fam, a->outside, a->pod_b, IPPROTO_UDP, WG_PORT, WG_PORT };
			struct flow fwd_nopeer = { fam, a->outside, a->pod_nopeer, IPPROTO_UDP, WG_PORT, 9 };
			struct flow fwd_node = { fam, a->node_a, a->pod_b, IPPROTO_UDP, WG_PORT, WG_PORT };
			struct flow to_pod = { fam, a->node_b, a->pod_a, IPPROTO_UDP, WG_PORT, WG_PORT };
			struct flow to_pod_any = { fam, a->node_b, a->pod_a, IPPROTO_UDP, 40000, WG_PORT };

			expect(BW_DIR_EGRESS, &ours, 0, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
			expect(BW_DIR_INGRESS, &ours, 0, TC_ACT_OK, BW_REASON_PASSED_ENCRYPTED);
			/* From the port to a remote pod: WireGuard never sends to a pod, the node rows decide. */
			expect(BW_DIR_EGRESS, &fwd_node, 0, enc ? TC_ACT_REDIRECT : TC_ACT_OK,
			       enc ? BW_REASON_REDIRECTED : BW_REASON_PASSED_UNPROTECTED);
			run_iif = 3; /* forwarded: came in through another device */
			/* outside -> remote pod: encrypt / drop, whatever its source port */
			expect(BW_DIR_EGRESS, &fwd, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
			expect(BW_DIR_EGRESS, &fwd_nopeer, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			/* a forwarded packet with a node's source follows the node rows, not the port */
			expect(BW_DIR_EGRESS, &fwd_node, 0, enc ? TC_ACT_REDIRECT : TC_ACT_OK,
			       enc ? BW_REASON_REDIRECTED : BW_REASON_PASSED_UNPROTECTED);
			/* forwarded node -> node from the port, with node encryption: not exempt */
			expect(BW_DIR_EGRESS, &ours, 0, enc ? TC_ACT_SHOT : TC_ACT_OK,
			       enc ? BW_REASON_DROPPED_NO_PEER : BW_REASON_PASSED_UNPROTECTED);
			run_iif = 0;
			/* Ingress: to pod:51820 is pod traffic (node -> local pod follows node encryption). */
			expect(BW_DIR_INGRESS, &to_pod, 0, enc ? TC_ACT_SHOT : TC_ACT_OK,
			       enc ? BW_REASON_DROPPED_PLAINTEXT_INGRESS : BW_REASON_PASSED_UNPROTECTED);
			expect(BW_DIR_INGRESS, &to_pod_any, 0, enc ? TC_ACT_SHOT : TC_ACT_OK,
			       enc ? BW_REASON_DROPPED_PLAINTEXT_INGRESS : BW_REASON_PASSED_UNPROTECTED);
			/* a remote pod to a local pod on the port: dropped in both modes */
			struct flow pod_pod = { fam, a->pod_b, a->pod_a, IPPROTO_UDP, WG_PORT, WG_PORT };
			expect(BW_DIR_INGRESS, &pod_pod, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		}
	}
	set_config(BW_CFG_EVENTS, 0);
}

/* A node address inside a pod prefix (VPC CNIs; wireguard-conf allows only this overlap): the
 * longer prefix wins, so that host is a node and the rest of the prefix stays pods. */
static void node_host_inside_pod_prefix(void **state)
{
	struct bw_prefix node = { BW_CLASS_NODE };
	(void)state;
	EACH_FAMILY {
		const struct addrs *a = AD(fam);
		const char *host = fam == 4 ? "198.18.1.77" : "fd00:10:1::77";
		int fd = bpf_map__fd(fam == 4 ? up->maps.bw_protect_v4 : up->maps.bw_protect_v6);
		struct flow n2n = { fam, host, a->node_b, IPPROTO_TCP, 40000, 22 };
		struct flow n2pod = { fam, host, a->pod_b, IPPROTO_TCP, 40000, 22 };
		struct flow pod = { fam, a->pod_a, a->pod_b, IPPROTO_TCP, 40000, 80 };

		expect(BW_DIR_EGRESS, &n2n, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED); /* a pod to a node */
		expect(BW_DIR_EGRESS, &n2pod, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);  /* a pod to a pod */
		add_prefix(fd, fam, fam == 4 ? "198.18.1.77/32" : "fd00:10:1::77/128", &node);
		expect(BW_DIR_EGRESS, &n2n, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_EGRESS, &n2pod, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED); /* node -> pod */
		expect(BW_DIR_EGRESS, &pod, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		set_config(BW_CFG_EVENTS | BW_CFG_NODE_ENCRYPTION, 0);
		expect(BW_DIR_EGRESS, &n2pod, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		set_config(BW_CFG_EVENTS, 0);
		del_prefix(fd, fam, fam == 4 ? "198.18.1.77/32" : "fd00:10:1::77/128");
	}
}

/* ---- the flow cache (bw_flow_v4/v6, bw_flow_gen) ---- */

/* A flow-cache slot of either family, as the tests look at it. */
struct fentry {
	__u64 gen;
	__u8 src_class, dst_class, peer;
};

/* Slot i of every CPU, unpacked; returns the number of CPUs. */
static int flow_slot_read(int fd, int fam, __u32 i, struct fentry *out, __u8 (*addrs)[2][16])
{
	struct bw_flow_v4 v4[nr_cpus];
	struct bw_flow_v6 v6[nr_cpus];

	assert_int_equal(bpf_map_lookup_elem(fd, &i, fam == 4 ? (void *)v4 : (void *)v6), 0);
	for (int c = 0; c < nr_cpus; c++) {
		memset(addrs[c], 0, sizeof(addrs[c]));
		if (fam == 4) {
			out[c] = (struct fentry){ v4[c].gen, v4[c].src_class, v4[c].dst_class, v4[c].peer };
			memcpy(addrs[c][0], v4[c].daddr, 4);
			memcpy(addrs[c][1], v4[c].saddr, 4);
		} else {
			out[c] = (struct fentry){ v6[c].gen, v6[c].src_class, v6[c].dst_class, v6[c].peer };
			memcpy(addrs[c][0], v6[c].daddr, 16);
			memcpy(addrs[c][1], v6[c].saddr, 16);
		}
	}
	return nr_cpus;
}

static int flow_fd(int fam)
{
	return bpf_map__fd(fam == 4 ? up->maps.bw_flow_v4 : up->maps.bw_flow_v6);
}

/* The newest cache entry for a flow's address pair on any CPU; returns 0 when there is none. */
static int flow_entry_fd(int fd, const struct flow *f, struct fentry *out)
{
	int af = f->family == 4 ? AF_INET : AF_INET6, alen = f->family == 4 ? 4 : 16, found = 0;
	__u8 d[16] = { 0 }, sa[16] = { 0 }, addrs[nr_cpus][2][16];
	struct fentry e[nr_cpus];

	inet_pton(af, f->dst, d);
	inet_pton(af, f->src, sa);
	flow_slot_read(fd, f->family, bw_flow_slot(d, sa, alen / 4), e, addrs);
	for (int c = 0; c < nr_cpus; c++) {
		if (!e[c].gen || memcmp(addrs[c][0], d, alen) || memcmp(addrs[c][1], sa, alen))
			continue;
		if (!found || e[c].gen > out->gen)
			*out = e[c];
		found = 1;
	}
	return found;
}

static int flow_entry(const struct flow *f, struct fentry *out)
{
	return flow_entry_fd(flow_fd(f->family), f, out);
}

/* Slots (over all CPUs) holding an entry of generation gen, or any entry when gen is 0. */
static size_t flow_count_fd(int fd, int fam, __u64 gen)
{
	__u8 addrs[nr_cpus][2][16];
	struct fentry e[nr_cpus];
	size_t n = 0;

	for (__u32 i = 0; i < BW_FLOW_SLOTS; i++) {
		flow_slot_read(fd, fam, i, e, addrs);
		for (int c = 0; c < nr_cpus; c++)
			n += gen ? e[c].gen == gen : e[c].gen != 0;
	}
	return n;
}

static size_t flow_count(int fam, __u64 gen)
{
	return flow_count_fd(flow_fd(fam), fam, gen);
}

static struct bw_cidr cidr(const char *s)
{
	struct bw_cidr c;

	assert_int_equal(bw_cidr_parse(s, &c), 0);
	return c;
}

/* A hit answers from the entry: a trie change nobody announced is not seen until invalidation. */
static void flow_cache_hit(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);
		struct fentry e;

		assert_int_equal(bw_dp_flow_invalidate(dp), 0);
		assert_int_equal(flow_count(fam, bw_dp_flow_gen(dp)), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		assert_int_equal(flow_count(fam, bw_dp_flow_gen(dp)), 1);
		assert_true(flow_entry(&f, &e));
		assert_int_equal(e.gen, bw_dp_flow_gen(dp));
		assert_int_equal(e.src_class, BW_CLASS_POD);
		assert_int_equal(e.dst_class, BW_CLASS_POD);
		assert_int_equal(e.peer, 1);
		/* The packet's other fields are still read on a hit: another port, same verdict... */
		f.dport = 443;
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		/* ...and a hit, not the tries, decided: the peer is gone from the trie unannounced. */
		del_prefix_raw(peerfd, fam, AD(fam)->peer_b);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		assert_int_equal(flow_count(fam, bw_dp_flow_gen(dp)), 1);
		/* Invalidation: the very next packet walks the tries again. */
		assert_int_equal(bw_dp_flow_invalidate(dp), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		assert_true(flow_entry(&f, &e));
		assert_int_equal(e.gen, bw_dp_flow_gen(dp));
		assert_int_equal(e.peer, 0);
		add_prefix(peerfd, fam, AD(fam)->peer_b, &peer);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		/* Ingress shares the entry (classes do not depend on direction) and still drops. */
		struct flow back = { fam, AD(fam)->pod_b, AD(fam)->pod_a, IPPROTO_TCP, 80, 40000 };
		expect(BW_DIR_INGRESS, &back, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		expect(BW_DIR_INGRESS, &back, 0, TC_ACT_SHOT, BW_REASON_DROPPED_PLAINTEXT_INGRESS);
		assert_true(flow_entry(&back, &e));
	}
}

/* Peer removal through the library: the packet right after bw_dp_peer_del is dropped. */
static void flow_cache_peer_remove_add(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_UDP, 40000, 53 };
		struct bw_cidr c = cidr(AD(fam)->peer_b);
		uint64_t g0;

		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED); /* a hit */
		g0 = bw_dp_flow_gen(dp);
		assert_int_equal(bw_dp_peer_del(dp, &c), 0);
		assert_true(bw_dp_flow_gen(dp) > g0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER); /* cached drop */
		/* Adding the peer back is seen by the next packet too (a cached drop does not linger). */
		assert_int_equal(bw_dp_peer_set(dp, &c, &peer), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
	}
}

/* A peer's prefix changed (narrowed, then widened back): the next packet follows the new one. */
static void flow_cache_peer_change(void **state)
{
	struct bw_peer peer = { .peer_id = 2 }, other = { .peer_id = 7 };
	(void)state;
	memset(other.pubkey, 0xaa, sizeof(other.pubkey));
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		struct bw_cidr wide = cidr(AD(fam)->peer_b);
		struct bw_cidr narrow = cidr(fam == 4 ? "198.18.2.128/25" : "fd00:10:2:8000::/49");
		struct fentry e;
		uint64_t g0;

		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		/* The value changes (another key, another id): entries are refreshed, verdict kept. */
		g0 = bw_dp_flow_gen(dp);
		assert_int_equal(bw_dp_peer_set(dp, &wide, &other), 0);
		assert_true(bw_dp_flow_gen(dp) > g0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		assert_true(flow_entry(&f, &e));
		assert_int_equal(e.gen, bw_dp_flow_gen(dp));
		/* The prefix shrinks to a half without our destination. */
		assert_int_equal(bw_dp_peer_set(dp, &narrow, &other), 0);
		assert_int_equal(bw_dp_peer_del(dp, &wide), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		assert_int_equal(bw_dp_peer_set(dp, &wide, &peer), 0);
		assert_int_equal(bw_dp_peer_del(dp, &narrow), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
	}
}

/* ---- traffic on other CPUs while the peer goes: nothing run while it is gone passes ---- */
struct racer {
	const struct pkt *p;
	int fd;
	int stop;
	/* Odd: the peer is gone (bumped after bw_dp_peer_del returned, and again before the peer is
	 * set back). A run that starts and ends in the same odd epoch ran wholly without the peer. */
	unsigned epoch;
	/* While the peer is gone every verdict but SHOT is a violation (a pass would go out in
	 * clear, a redirect would use the gone peer): not_dropped_gone counts them all. */
	unsigned long redirected_present, not_dropped_gone, dropped_gone, errors;
	int last_error, last_violation;
};

static void *race_worker(void *arg)
{
	struct racer *r = arg;
	unsigned long rp = 0, ng = 0, dg = 0, err = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		unsigned e1 = __atomic_load_n(&r->epoch, __ATOMIC_ACQUIRE), e2;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = r->p->b, .data_size_in = r->p->len);
		int e = bpf_prog_test_run_opts(r->fd, &o);

		e2 = __atomic_load_n(&r->epoch, __ATOMIC_ACQUIRE);
		if (e) {
			__atomic_store_n(&r->last_error, e, __ATOMIC_RELAXED);
			err++;
		} else if (e1 != e2) {
			continue; /* overlapped a change: either verdict is right */
		} else if (e1 & 1) {
			if (o.retval == TC_ACT_SHOT) {
				dg++;
			} else {
				__atomic_store_n(&r->last_violation, (int)o.retval, __ATOMIC_RELAXED);
				ng++;
			}
		} else if (o.retval == TC_ACT_REDIRECT) {
			rp++;
		}
	}
	__atomic_add_fetch(&r->redirected_present, rp, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->not_dropped_gone, ng, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->dropped_gone, dg, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->errors, err, __ATOMIC_SEQ_CST);
	return NULL;
}

static void flow_cache_removal_races_traffic(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	set_config(0, 0); /* no events: the ring buffer is not what is tested here */
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		struct bw_cidr c = cidr(AD(fam)->peer_b);
		struct racer r = { .fd = bpf_program__fd(up->progs.bw_egress) };
		pthread_t t[2];
		struct pkt p;

		build(&p, &f);
		r.p = &p;
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, race_worker, &r), 0);
		for (int round = 0; round < 40; round++) {
			usleep(2000);
			assert_int_equal(bw_dp_peer_del(dp, &c), 0);
			__atomic_add_fetch(&r.epoch, 1, __ATOMIC_ACQ_REL);
			usleep(2000);
			__atomic_add_fetch(&r.epoch, 1, __ATOMIC_ACQ_REL);
			assert_int_equal(bw_dp_peer_set(dp, &c, &peer), 0);
		}
		__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		print_message("IPv%d: %lu redirected with the peer, %lu dropped without it\n", fam,
			      r.redirected_present, r.dropped_gone);
		if (r.errors)
			fail_msg("%lu test runs failed, the last with %s", r.errors, strerror(-r.last_error));
		if (r.not_dropped_gone)
			fail_msg("%lu runs without the peer were not dropped, the last with verdict %d",
				 r.not_dropped_gone, r.last_violation);
		assert_true(r.redirected_present > 0 && r.dropped_gone > 0);
	}
	set_config(BW_CFG_EVENTS, 0);
}

/* The test's cluster as a desired state, plus an optional extra protected pod prefix. */
static void apply_cluster(const char *extra4, const char *extra6)
{
	struct bw_dp_prefix protect[6] = {
		{ cidr("198.18.0.0/16"), BW_CLASS_POD }, { cidr("198.19.0.0/24"), BW_CLASS_NODE },
		{ cidr("fd00:10::/32"), BW_CLASS_POD }, { cidr("fd00:20::/64"), BW_CLASS_NODE },
	};
	struct bw_dp_peer_prefix peers[2] = {
		{ cidr(A4.peer_b), { .peer_id = 2 } }, { cidr(A6.peer_b), { .peer_id = 2 } },
	};
	struct bw_dp_desired d = {
		.config = { .wg_ifindex = WG_IFINDEX, .wg_fwmark = WG_MARK, .wg_port = WG_PORT,
			    .overlay_port = OVERLAY_PORT, .flags = BW_CFG_EVENTS | base_flags },
		.protect = protect, .n_protect = 4, .peers = peers, .n_peers = 2,
	};

	if (extra4) {
		protect[4] = (struct bw_dp_prefix){ cidr(extra4), BW_CLASS_POD };
		protect[5] = (struct bw_dp_prefix){ cidr(extra6), BW_CLASS_POD };
		d.n_protect = 6;
	}
	assert_int_equal(bw_dp_apply(dp, &d), 0);
}

/* The fail-open direction: a cached "not protected" must not outlive a newly protected prefix. */
static void flow_cache_protect_change(void **state)
{
	(void)state;
	apply_cluster(NULL, NULL);
	EACH_FAMILY {
		const char *dst = fam == 4 ? "198.17.0.9" : "fd00:40::9";
		struct flow f = { fam, AD(fam)->pod_a, dst, IPPROTO_TCP, 40000, 80 };

		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED); /* a hit */
		apply_cluster("198.17.0.0/16", "fd00:40::/32");
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		apply_cluster(NULL, NULL);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
	}
}

/* Addresses both outside the cluster are not cached: forwarded traffic does not churn the LRU. */
static void flow_cache_skips_outside_pairs(void **state)
{
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->outside, fam == 4 ? "198.19.255.2" : "fd00:30::2",
				  IPPROTO_TCP, 1, 2 };
		struct fentry e;

		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_OK, BW_REASON_PASSED_UNPROTECTED);
		assert_false(flow_entry(&f, &e));
	}
}

/* Without BW_CFG_FLOW_CACHE nothing is stored and every packet sees the tries as they are. */
static void flow_cache_disabled_by_config(void **state)
{
	struct bw_peer peer = { .peer_id = 2 };
	(void)state;
	base_flags = 0;
	set_config(BW_CFG_EVENTS, 0);
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);
		struct fentry e;

		assert_int_equal(bw_dp_flow_invalidate(dp), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		assert_int_equal(flow_count(fam, bw_dp_flow_gen(dp)), 0);
		assert_false(flow_entry(&f, &e) && e.gen == bw_dp_flow_gen(dp));
		del_prefix_raw(peerfd, fam, AD(fam)->peer_b);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		add_prefix_raw(peerfd, fam, AD(fam)->peer_b, &peer);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
	}
	base_flags = BW_CFG_FLOW_CACHE;
	set_config(BW_CFG_EVENTS, 0);
}

static int pin_exists(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return access(path, F_OK) == 0;
}

static void unpin(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	assert_int_equal(unlink(path), 0);
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);

	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	return info.id;
}

/* Load this build's programs over the pin directory as `attach` does (prepare, then load);
 * what prepare reports goes into notes (may be NULL). */
static struct bw_uplink *load_over(const char *dir, bool rescan, size_t *n_moved, struct bw_notes *notes)
{
	struct bw_dp_peer_prefix *old;
	struct bw_uplink *e;
	struct bw_dp *d;
	size_t n_old;

	assert_int_equal(bw_dp_pins_prepare(dir, &old, &n_old, notes), 0);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = dir);
	e = bw_uplink__open_opts(&opts);
	assert_non_null(e);
	assert_int_equal(bw_uplink__load(e), 0);
	assert_int_equal(bw_dp_open(dir, &d), 0);
	assert_int_equal(bw_dp_peers_restore(d, old, n_old, rescan), 0);
	bw_dp_close(d);
	free(old);
	if (n_moved)
		*n_moved = n_old;
	return e;
}

static struct bw_uplink *load_over_pins(struct bw_notes *notes)
{
	return load_over(pin_dir, false, NULL, notes);
}

/*
 * A pin directory from an older build has no cache maps: the library still opens it (its
 * programs do not cache, so there is nothing to invalidate), and loading this build creates them.
 * A partial set is recreated whole, so an old entry can never meet a restarted generation.
 */
static void flow_cache_pins_from_older_build(void **state)
{
	struct bw_dp *old = NULL;
	struct bw_notes notes = { 0 };
	struct bw_uplink *e;
	char want[BW_ERR_LEN];
	__u32 flow4_id;
	(void)state;

	unpin("bw_flow_v4");
	unpin("bw_flow_v6");
	unpin("bw_flow_gen");
	assert_int_equal(bw_dp_open(pin_dir, &old), 0);
	assert_int_equal(bw_dp_flow_invalidate(old), 0);
	assert_int_equal(bw_dp_flow_gen(old), 0);
	bw_dp_close(old);

	e = load_over_pins(&notes);
	assert_true(pin_exists("bw_flow_v4") && pin_exists("bw_flow_v6") && pin_exists("bw_flow_gen"));
	/* No cache at all is an older build's normal state: nothing to report. */
	assert_int_equal(notes.n, 0);
	/* The peers and counters of the old pins are the ones this build uses. */
	assert_int_equal(map_id(bpf_map__fd(e->maps.bw_peer_v4)), map_id(bpf_map__fd(up->maps.bw_peer_v4)));
	assert_int_equal(bw_dp_open(pin_dir, &old), 0);
	assert_int_equal(bw_dp_flow_invalidate(old), 0);
	assert_int_equal(bw_dp_flow_gen(old), 1);
	/* The new program fills the recreated cache. */
	struct flow f = { 4, A4.pod_a, A4.pod_b, IPPROTO_TCP, 40000, 80 };
	struct pkt p;
	build(&p, &f);
	{
		struct __sk_buff ctx = { 0 };
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = p.len,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
		assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(e->progs.bw_egress), &o), 0);
		assert_int_equal(o.retval, TC_ACT_REDIRECT);
	}
	flow4_id = map_id(bpf_map__fd(e->maps.bw_flow_v4));
	bw_dp_close(old);
	assert_int_equal(flow_count_fd(bpf_map__fd(e->maps.bw_flow_v4), 4, 0), 1);
	bw_uplink__destroy(e);

	/* Only the generation lost: the library refuses to pretend it invalidated... */
	unpin("bw_flow_gen");
	assert_int_equal(bw_dp_open(pin_dir, &old), 0);
	assert_int_equal(bw_dp_flow_invalidate(old), -ENOENT);
	bw_dp_close(old);
	/* ...and loading recreates the whole set: fresh, empty cache maps, and says so. */
	e = load_over_pins(&notes);
	snprintf(want, sizeof(want), "pin directory %s has a partial flow cache: recreating it", pin_dir);
	assert_int_equal(notes.n, 1);
	assert_string_equal(notes.text[0], want);
	assert_true(map_id(bpf_map__fd(e->maps.bw_flow_v4)) != flow4_id);
	assert_int_equal(flow_count_fd(bpf_map__fd(e->maps.bw_flow_v4), 4, 0), 0);
	bw_uplink__destroy(e);

	/* Put the test's own programs back on the current pins for the tests that follow. */
	bw_dp_close(dp);
	bw_uplink__destroy(up);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	up = bw_uplink__open_opts(&opts);
	assert_true(up && !bw_uplink__load(up));
	assert_int_equal(bw_dp_open(pin_dir, &dp), 0);
	set_config(BW_CFG_EVENTS, 0);
	redirect_pod_to_peer(NULL);
}

/* The address of s (no prefix length) as a host prefix of length len, host bits left set. */
static struct bw_cidr host_as(int fam, const char *s, int len)
{
	struct bw_cidr c = { 0 };

	c.family = fam;
	c.len = len;
	assert_int_equal(inet_pton(fam == 4 ? AF_INET : AF_INET6, s, c.addr), 1);
	return c;
}

/*
 * Peer prefixes are hashes probed per prefix length in use (bulwark_abi.h). Every length from
 * the host length down to /0 is found when written through the library (which zeroes the host
 * bits and sets the length's bit), a prefix of that length next to it is not, and a prefix
 * written behind the library's back without its length's bit is not found either: dropped,
 * never passed (fail closed), until the bit is set.
 */
static void peer_prefix_lengths(void **state)
{
	static const int lens4[] = { 32, 31, 25, 24, 23, 17, 16, 9, 1, 0 };
	static const int lens6[] = { 128, 127, 96, 65, 64, 63, 48, 33, 1, 0 };
	struct bw_peer peer = { .peer_id = 7 };
	(void)state;
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_nopeer, IPPROTO_TCP, 40000, 443 };
		const int *lens = fam == 4 ? lens4 : lens6;
		int n = fam == 4 ? (int)ARRAY_SIZE(lens4) : (int)ARRAY_SIZE(lens6);
		int peerfd = bpf_map__fd(fam == 4 ? up->maps.bw_peer_v4 : up->maps.bw_peer_v6);
		struct bw_cidr c = host_as(fam, AD(fam)->pod_nopeer, fam == 4 ? 30 : 100);
		union bw_lpm_key k;

		/* A length nobody announced: the entry is there, the probe never looks. */
		bw_lpm_from_cidr(&c, &k);
		for (int i = c.len; i < (fam == 4 ? 32 : 128); i++)
			((fam == 4 ? k.v4.addr : k.v6.addr))[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
		assert_int_equal(bpf_map_update_elem(peerfd, &k, &peer, BPF_ANY), 0);
		assert_int_equal(bw_dp_flow_invalidate(dp), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
		peer_len_set(fam, c.len); /* what a bpftool user owes the datapath */
		assert_int_equal(bw_dp_flow_invalidate(dp), 0);
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
		assert_int_equal(bw_dp_peer_del(dp, &c), 0); /* host bits set: the library zeroes them */
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);

		for (int i = 0; i < n; i++) {
			struct bw_cidr next = host_as(fam, AD(fam)->pod_nopeer, lens[i]);

			expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
			if (lens[i] > 0) {
				/* The neighbour of the same length: the last prefix bit flipped. */
				struct bw_peer was;

				next.addr[(lens[i] - 1) / 8] ^= (uint8_t)(0x80 >> ((lens[i] - 1) % 8));
				bw_lpm_from_cidr(&next, &k);
				for (int b = next.len; b < (fam == 4 ? 32 : 128); b++)
					((fam == 4 ? k.v4.addr : k.v6.addr))[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
				/* It may be the setup's own peer prefix (pod_b's /24 or /48): kept then. */
				bool had = bpf_map_lookup_elem(peerfd, &k, &was) == 0;
				assert_int_equal(bw_dp_peer_set(dp, &next, &peer), 0);
				expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
				assert_int_equal(had ? bw_dp_peer_set(dp, &next, &was) : bw_dp_peer_del(dp, &next), 0);
			}
			c = host_as(fam, AD(fam)->pod_nopeer, lens[i]);
			assert_int_equal(bw_dp_peer_set(dp, &c, &peer), 0);
			expect(BW_DIR_EGRESS, &f, 0, TC_ACT_REDIRECT, BW_REASON_REDIRECTED);
			assert_int_equal(bw_dp_peer_del(dp, &c), 0);
		}
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	}
}

static int count_peer(const struct bw_cidr *c, const struct bw_peer *p, void *ctx)
{
	(void)c;
	*(int *)ctx += p->peer_id == 9;
	return 0;
}

/*
 * A pin directory from a build whose peer maps were LPM tries: `attach` (prepare, load, restore)
 * moves the entries into this build's hashes, sets their lengths' bits, and the new programs
 * find them.
 */
static void peer_tries_from_older_build(void **state)
{
	struct bw_peer v = { .peer_id = 9 };
	struct bw_prefix pod = { BW_CLASS_POD };
	struct bw_config cfg = { .wg_ifindex = WG_IFINDEX, .wg_port = WG_PORT };
	struct bw_uplink *e;
	struct bw_dp *d;
	char dir[96], path[160], cmd[128], want[BW_ERR_LEN];
	struct bw_notes notes = { 0 };
	size_t n_old = 0;
	__u32 zero = 0;
	int found = 0;
	(void)state;

	snprintf(dir, sizeof(dir), "%s-old", pin_dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	EACH_FAMILY {
		LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
		const char *name = fam == 4 ? "bw_peer_v4" : "bw_peer_v6";
		int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, name,
					fam == 4 ? sizeof(struct bw_lpm_v4) : sizeof(struct bw_lpm_v6),
					sizeof(struct bw_peer), 1024, &o);

		assert_true(fd >= 0);
		add_prefix_raw(fd, fam, AD(fam)->peer_b, &v);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		assert_int_equal(bpf_obj_pin(fd, path), 0);
		close(fd);
	}
	e = load_over(dir, true, &n_old, &notes);
	assert_int_equal(n_old, 2);
	/* The caller is told, to log it: */
	snprintf(want, sizeof(want), "pin directory %s: 2 peer prefixes moved from an older build's tries", dir);
	assert_int_equal(notes.n, 1);
	assert_string_equal(notes.text[0], want);
	/* The tries were unpinned and loading created the hashes in their place. */
	EACH_FAMILY {
		struct bpf_map_info info = { 0 };
		__u32 len = sizeof(info);
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, fam == 4 ? "bw_peer_v4" : "bw_peer_v6");
		assert_true((fd = bpf_obj_get(path)) >= 0);
		assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
		assert_int_equal(info.type, BPF_MAP_TYPE_HASH);
		close(fd);
	}
	assert_int_equal(bw_dp_open(dir, &d), 0);
	assert_int_equal(bw_dp_peers_foreach(d, count_peer, &found), 0);
	assert_int_equal(found, 2);
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(e->maps.bw_config), &zero, &cfg, BPF_ANY), 0);
	add_prefix_raw(bpf_map__fd(e->maps.bw_protect_v4), 4, "198.18.0.0/16", &pod);
	add_prefix_raw(bpf_map__fd(e->maps.bw_protect_v6), 6, "fd00:10::/32", &pod);
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 40000, 80 };
		struct __sk_buff ctx = { 0 };
		struct pkt p;

		build(&p, &f);
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = p.b, .data_size_in = p.len,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
		assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(e->progs.bw_egress), &t), 0);
		assert_int_equal(t.retval, TC_ACT_REDIRECT);
	}
	bw_dp_close(d);
	bw_uplink__destroy(e);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static int setup_cached(void **state)
{
	base_flags = BW_CFG_FLOW_CACHE;
	return setup(state);
}

static int setup_uncached(void **state)
{
	base_flags = 0;
	return setup(state);
}

/* Every verdict test runs twice: through the flow cache and straight on the tries. */
#define VERDICT_TESTS(sfx) \
	T(maps_are_shared_through_pins, sfx), T(redirect_pod_to_peer, sfx), T(drop_no_peer, sfx), \
	T(pass_encrypted_by_mark, sfx), T(pass_encrypted_by_port, sfx), T(pass_unprotected, sfx), \
	T(drop_plaintext_ingress, sfx), T(node_flows_follow_node_encryption, sfx), \
	T(allowlist, sfx), T(overlay_is_pod_traffic, sfx), T(truncated_headers, sfx), \
	T(fragments_by_address, sfx), T(ipv6_extension_headers, sfx), \
	T(neighbour_discovery_and_non_ip_pass, sfx), T(events_are_rate_limited, sfx), \
	T(no_wireguard_device_fails_closed, sfx), T(vlan_tags_in_the_frame, sfx), \
	T(encapsulations_between_nodes, sfx), T(encapsulation_fragments, sfx), \
	T(icmp_errors_by_their_quote, sfx), T(wireguard_port_only_for_our_wireguard, sfx), \
	T(node_host_inside_pod_prefix, sfx), T(icmpv6_redirects, sfx)
#define T(f, sfx) { #f sfx, f, NULL, NULL, NULL }

int main(void)
{
	const struct CMUnitTest cached[] = {
		VERDICT_TESTS(""),
		T(flow_cache_hit, ""),
		T(flow_cache_peer_remove_add, ""),
		T(flow_cache_peer_change, ""),
		T(flow_cache_protect_change, ""),
		T(flow_cache_skips_outside_pairs, ""),
		T(flow_cache_disabled_by_config, ""),
		T(flow_cache_removal_races_traffic, ""),
		T(flow_cache_pins_from_older_build, ""),
		T(peer_prefix_lengths, ""),
		T(peer_tries_from_older_build, ""),
		/* the verdicts once more after all that churn */
		T(redirect_pod_to_peer, " (after cache churn)"),
		T(node_flows_follow_node_encryption, " (after cache churn)"),
	};
	const struct CMUnitTest uncached[] = {
		VERDICT_TESTS(" (cache off)"),
		T(flow_cache_protect_change, " (cache off)"),
		T(flow_cache_peer_remove_add, " (cache off)"),
		T(flow_cache_removal_races_traffic, " (cache off)"),
		T(peer_prefix_lengths, " (cache off)"),
	};
	int failed = cmocka_run_group_tests_name("datapath", cached, setup_cached, teardown);

	return failed + cmocka_run_group_tests_name("datapath (cache off)", uncached, setup_uncached, teardown);
}
