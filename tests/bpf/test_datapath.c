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
#include <setjmp.h>
#include <stdarg.h>
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
#include "bw_egress.skel.h"
#include "bw_ingress.skel.h"

#define WG_IFINDEX 1 /* lo: test runs never deliver the redirect, only its verdict */
#define WG_MARK 0x1e00
#define WG_PORT 51820
#define OVERLAY_PORT 8472

static struct bw_egress *eg;
static struct bw_ingress *in;
static char pin_dir[64];
static int nr_cpus;

/* ---- packet building ---- */
struct pkt {
	unsigned char b[256];
	size_t len;
};

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
static void add_prefix(int fd, int family, const char *cidr, const void *val)
{
	char a[64];
	int len;
	const char *slash = strchr(cidr, '/');

	memcpy(a, cidr, slash - cidr);
	a[slash - cidr] = 0;
	len = atoi(slash + 1);
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

static void del_prefix(int fd, int family, const char *cidr)
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

static void set_config(__u32 flags, __u32 events_per_sec)
{
	struct bw_config c = {
		.wg_ifindex = WG_IFINDEX, .wg_fwmark = WG_MARK, .wg_port = WG_PORT,
		.overlay_port = OVERLAY_PORT, .flags = flags, .events_per_sec = events_per_sec,
	};
	__u32 zero = 0;
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(eg->maps.bw_config), &zero, &c, BPF_ANY), 0);
}

static struct bw_stat stat_of(__u32 reason)
{
	struct bw_stat per[nr_cpus], sum = { 0 };

	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(eg->maps.bw_stats), &reason, per), 0);
	for (int i = 0; i < nr_cpus; i++) {
		sum.packets += per[i].packets;
		sum.bytes += per[i].bytes;
	}
	return sum;
}

static void reset_stats(void)
{
	struct bw_stat zero[nr_cpus];
	struct bw_ratelimit rl[nr_cpus];
	__u32 k0 = 0;

	memset(zero, 0, sizeof(zero));
	memset(rl, 0, sizeof(rl));
	for (__u32 r = 0; r < BW_REASON_MAX; r++)
		assert_int_equal(bpf_map_update_elem(bpf_map__fd(eg->maps.bw_stats), &r, zero, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(eg->maps.bw_ratelimit), &k0, rl, BPF_ANY), 0);
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
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(eg->maps.bw_events), on_event, NULL, NULL);

	assert_non_null(rb);
	n_events = 0;
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return n_events;
}

/* ---- running ---- */
static int run(int dir, const struct pkt *p, __u32 mark, int repeat)
{
	struct __sk_buff ctx = { .mark = mark };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = p->len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = repeat);
	int fd = dir == BW_DIR_EGRESS ? bpf_program__fd(eg->progs.bw_egress)
				      : bpf_program__fd(in->progs.bw_ingress);

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
	for (__u32 r = 0; r < BW_REASON_MAX; r++) {
		struct bw_stat s = stat_of(r);
		if (s.packets != (r == reason ? 1u : 0u))
			fail_msg("reason %u counted %llu packets, expected reason %u", r,
				 (unsigned long long)s.packets, reason);
		if (r == reason)
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
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/bw-test-dp-%d", getpid());
	mkdir(pin_dir, 0700);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	eg = bw_egress__open_opts(&opts);
	in = bw_ingress__open_opts(&opts);
	if (!eg || !in || bw_egress__load(eg) || bw_ingress__load(in))
		return -1;
	add_prefix(bpf_map__fd(eg->maps.bw_protect_v4), 4, "198.18.0.0/16", &pod);
	add_prefix(bpf_map__fd(eg->maps.bw_protect_v4), 4, "198.19.0.0/24", &node);
	add_prefix(bpf_map__fd(eg->maps.bw_protect_v6), 6, "fd00:10::/32", &pod);
	add_prefix(bpf_map__fd(eg->maps.bw_protect_v6), 6, "fd00:20::/64", &node);
	add_prefix(bpf_map__fd(eg->maps.bw_peer_v4), 4, A4.peer_b, &peer);
	add_prefix(bpf_map__fd(eg->maps.bw_peer_v6), 6, A6.peer_b, &peer);
	set_config(BW_CFG_EVENTS, 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	bw_egress__destroy(eg);
	bw_ingress__destroy(in);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pin_dir);
	return system(cmd);
}

static void maps_are_shared_through_pins(void **state)
{
	struct bpf_map_info a = { 0 }, b = { 0 };
	__u32 la = sizeof(a), lb = sizeof(b);
	char path[128];
	(void)state;

	assert_int_equal(bpf_obj_get_info_by_fd(bpf_map__fd(eg->maps.bw_peer_v4), &a, &la), 0);
	assert_int_equal(bpf_obj_get_info_by_fd(bpf_map__fd(in->maps.bw_peer_v4), &b, &lb), 0);
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
		int peerfd = bpf_map__fd(fam == 4 ? eg->maps.bw_peer_v4 : eg->maps.bw_peer_v6);

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
	int fd = bpf_map__fd(eg->maps.bw_allow);
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
		int peerfd = bpf_map__fd(fam == 4 ? eg->maps.bw_peer_v4 : eg->maps.bw_peer_v6);

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

	/* More extension headers than the bounded walk follows: malformed when protected. */
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

static void no_wireguard_device_fails_closed(void **state)
{
	struct bw_config c = { .flags = BW_CFG_EVENTS };
	__u32 zero = 0;
	(void)state;

	assert_int_equal(bpf_map_update_elem(bpf_map__fd(eg->maps.bw_config), &zero, &c, BPF_ANY), 0);
	EACH_FAMILY {
		struct flow f = { fam, AD(fam)->pod_a, AD(fam)->pod_b, IPPROTO_TCP, 1, 2 };
		expect(BW_DIR_EGRESS, &f, 0, TC_ACT_SHOT, BW_REASON_DROPPED_NO_PEER);
	}
	set_config(BW_CFG_EVENTS, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(maps_are_shared_through_pins),
		cmocka_unit_test(redirect_pod_to_peer),
		cmocka_unit_test(drop_no_peer),
		cmocka_unit_test(pass_encrypted_by_mark),
		cmocka_unit_test(pass_encrypted_by_port),
		cmocka_unit_test(pass_unprotected),
		cmocka_unit_test(drop_plaintext_ingress),
		cmocka_unit_test(node_flows_follow_node_encryption),
		cmocka_unit_test(allowlist),
		cmocka_unit_test(overlay_is_pod_traffic),
		cmocka_unit_test(truncated_headers),
		cmocka_unit_test(fragments_by_address),
		cmocka_unit_test(ipv6_extension_headers),
		cmocka_unit_test(neighbour_discovery_and_non_ip_pass),
		cmocka_unit_test(events_are_rate_limited),
		cmocka_unit_test(no_wireguard_device_fails_closed),
	};
	return cmocka_run_group_tests_name("datapath", tests, setup, teardown);
}
