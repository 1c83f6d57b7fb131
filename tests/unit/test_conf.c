// SPDX-License-Identifier: GPL-2.0-only
/* wireguard-conf: parsing, rejection of malformed input with file:line, writer round trip. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "wireguard-conf/conf.h"

#define KEY_B "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
#define KEY_C "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static const char *node_text =
	"# a node\n"
	"[Node]\n"
	"Name = node-a\n"
	"Uplinks = eth0, eth1\n"
	"ProtectedCIDRs = 198.18.0.0/16, fd00:10::/32\n"
	"NodeCIDRs = 198.19.0.0/24\n"
	"PodCIDRs = 198.18.1.0/24\n"
	"NodeEncryption = yes\n"
	"Allow = tcp/6443, udp/53/egress\n"
	"OverlayPort = 8472\n"
	"PeersDir = peers.d\n"
	"\n"
	"[Interface]\n"
	"Device = wg0\n"
	"ListenPort = 51820 # comments end a line\n"
	"FwMark = 0x1e00\n"
	"MTU = 1420\n";

static void parses_node_file(void **state)
{
	struct bw_conf c;
	char err[BW_ERR_LEN] = "";
	char buf[64];
	(void)state;

	assert_int_equal(bw_conf_parse_node("/etc/b.conf", node_text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.node.name, "node-a");
	assert_int_equal(c.node.n_uplinks, 2);
	assert_string_equal(c.node.uplinks[1], "eth1");
	assert_int_equal(c.node.n_protected, 2);
	assert_string_equal(bw_cidr_str(&c.node.protected_cidrs[1], buf, sizeof(buf)), "fd00:10::/32");
	assert_true(c.node.node_encryption);
	assert_int_equal(c.node.n_allow, 2);
	assert_int_equal(c.node.allow[0].dir, BW_CONF_BOTH);
	assert_int_equal(c.node.allow[1].dir, BW_CONF_EGRESS);
	assert_int_equal(c.node.allow[1].port, 53);
	assert_int_equal(c.node.overlay_port, 8472);
	assert_string_equal(c.iface.device, "wg0");
	assert_int_equal(c.iface.listen_port, 51820);
	assert_int_equal(c.iface.fwmark, 0x1e00);
	assert_int_equal(c.iface.mtu, 1420);
	assert_string_equal(c.node.state_dir, "/var/lib/bulwark");
	assert_string_equal(c.iface.private_key_file, "/var/lib/bulwark/wg.key");
}

struct bad {
	const char *text;
	const char *want; /* substring of the error, which starts with file:line */
};

static void rejects_malformed_with_file_and_line(void **state)
{
	static const struct bad cases[] = {
		{ "[Node]\nName = a\nBogus = 1\n", "t.conf:3: unknown key 'Bogus' in [Node]" },
		{ "Name = a\n", "t.conf:1: 'Name = a' outside of a section" },
		{ "[Node]\nName\n", "t.conf:2: expected Key = Value" },
		{ "[Node]\nProtectedCIDRs = 198.18.0.1/16\n", "t.conf:2: ProtectedCIDRs: '198.18.0.1/16' is not an IP prefix" },
		{ "[Node]\nProtectedCIDRs = 198.18.0.0/33\n", "t.conf:2: ProtectedCIDRs" },
		{ "[Node]\nProtectedCIDRs = 10.0.0.0/8,,\n", "t.conf:2: ProtectedCIDRs: empty list item" },
		{ "[Node]\nNodeEncryption = maybe\n", "t.conf:2: NodeEncryption: 'maybe' is not true or false" },
		{ "[Node]\nAllow = icmp/1\n", "t.conf:2: Allow: protocol 'icmp'" },
		{ "[Node]\nAllow = tcp/70000\n", "t.conf:2: Allow" },
		{ "[Node]\nAllow = tcp/22/sideways\n", "t.conf:2: Allow: direction 'sideways'" },
		{ "[Node]\nName = a\nName = b\n", "t.conf:3: Name given twice" },
		{ "[Interface]\nListenPort = -1\n", "t.conf:2: ListenPort" },
		{ "[Interface]\nListenPort = 65536\n", "t.conf:2: ListenPort" },
		{ "[Interface]\nMTU = 576\n", "t.conf:2: MTU 576 is below" },
		{ "[Interface]\nPrivateKey = " KEY_B "\n", "t.conf:2: PrivateKey does not belong" },
		{ "[Peer]\n", "t.conf:1: unexpected section [Peer]" },
		{ "[Node]\nUplinks = a/b\n", "t.conf:2: Uplinks: 'a/b' is not a network device name" },
		{ "[Node]\nName = a\n", "t.conf: [Node] Uplinks is required" },
		/* an address is a pod's or a node's, not both (issue 11) */
		{ "[Node]\nProtectedCIDRs = 10.0.0.0/16\nNodeCIDRs = 10.0.0.0/16\n",
		  "t.conf:3: NodeCIDRs: '10.0.0.0/16' overlaps ProtectedCIDRs '10.0.0.0/16'" },
		{ "[Node]\nNodeCIDRs = 10.0.0.0/16\n\nProtectedCIDRs = 192.0.2.0/24, 10.0.0.0/16\n",
		  "t.conf:4: ProtectedCIDRs: '10.0.0.0/16' overlaps NodeCIDRs '10.0.0.0/16'" },
		/* pods inside a node prefix: the pods would be... pods, but it is the wrong way round */
		{ "[Node]\nNodeCIDRs = 10.0.0.0/8\nProtectedCIDRs = 10.1.0.0/16\n",
		  "t.conf:3: ProtectedCIDRs: '10.1.0.0/16' overlaps NodeCIDRs '10.0.0.0/8'" },
		{ "[Node]\nProtectedCIDRs = fd00:10::/48\nNodeCIDRs = fd00::/8\n",
		  "t.conf:3: NodeCIDRs: 'fd00::/8' overlaps ProtectedCIDRs 'fd00:10::/48'" },
		{ "[Node]\nProtectedCIDRs = 10.0.0.0/16\nNodeCIDRs = 10.0.0.0/15\n", "t.conf:3: NodeCIDRs: '10.0.0.0/15' overlaps" },
		/* overlay ports */
		{ "[Node]\nOverlayPorts = 4789, 0\n", "t.conf:2: OverlayPorts: port 0 is not a port" },
		{ "[Node]\nOverlayPorts = 7777, 7777\n", "t.conf:2: OverlayPorts: port 7777 listed twice" },
		{ "[Node]\nOverlayPort = 7777\nOverlayPorts = 7777\n", "t.conf:3: OverlayPorts: port 7777 listed twice" },
		{ "[Node]\nOverlayPorts = 70000\n", "t.conf:2: OverlayPorts" },
		{ "[Interface]\nListenPort = 4789\n", "t.conf:2: ListenPort 4789 is an overlay port" },
		{ "[Node]\nOverlayPorts = 5555\n[Interface]\nListenPort = 5555\n", "t.conf:4: ListenPort 5555 is an overlay port" },
		{ "[Interface]\nListenPort = 5555\n[Node]\nOverlayPort = 5555\n", "t.conf:4: OverlayPort: 5555 is the WireGuard ListenPort" },
	};
	char err[BW_ERR_LEN];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_conf c;
		err[0] = 0;
		if (bw_conf_parse_node("t.conf", cases[i].text, &c, err, sizeof(err)) != -EINVAL || !strstr(err, cases[i].want))
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
	}
}

static void rejects_bad_peers(void **state)
{
	static const struct bad cases[] = {
		{ "[Peer]\nAllowedIPs = 198.18.2.0/24\n", "p.conf: [Peer] PublicKey is required" },
		{ "[Peer]\nPublicKey = abc\n", "p.conf:2: PublicKey is not a base64 WireGuard key" },
		{ "[Peer]\nPublicKey = " KEY_B "\nEndpoint = nohost\n", "p.conf:3: Endpoint 'nohost' is not address:port (a.b.c.d:port or [x::y]:port, port 1-65535; names are not resolved)" },
		{ "[Peer]\nPublicKey = " KEY_B "\n[Peer]\n", "p.conf:3: a peer file holds exactly one [Peer]" },
		{ "[Peer]\nPublicKey = " KEY_B "\nAllowedIPs = 198.18.2.0/24, 198.18.2.0/24\n", "p.conf:3: AllowedIPs: '198.18.2.0/24' listed twice" },
		{ "[Interface]\n", "p.conf:1: unexpected section [Interface]" },
	};
	char err[BW_ERR_LEN];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bw_conf_peer p;
		err[0] = 0;
		if (bw_conf_parse_peer("p.conf", cases[i].text, &p, err, sizeof(err)) != -EINVAL || !strstr(err, cases[i].want))
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void load_dir_all_or_nothing(void **state)
{
	char dir[] = "/tmp/bw-conf-XXXXXX", path[256], err[BW_ERR_LEN];
	struct bw_conf c;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/peers.d", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/peers.d/b.conf", dir);
	write_file(path, "[Peer]\nPublicKey = " KEY_B "\nEndpoint = 198.19.0.2:51820\nAllowedIPs = 198.18.2.0/24\n");
	snprintf(path, sizeof(path), "%s/peers.d/c.conf", dir);
	write_file(path, "[Peer]\nNode = charlie\nPublicKey = " KEY_C "\nAllowedIPs = 198.18.3.0/24\nPersistentKeepalive = 25\n");
	snprintf(path, sizeof(path), "%s/peers.d/README", dir); /* not *.conf: ignored */
	write_file(path, "not a peer");
	snprintf(path, sizeof(path), "%s/node.conf", dir);
	write_file(path, node_text);

	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c.n_peers, 2);
	assert_string_equal(c.peers[0].node, "b"); /* defaults to the file name */
	assert_string_equal(c.peers[1].node, "charlie");
	assert_int_equal(c.peers[1].keepalive, 25);
	bw_conf_free(&c);

	/* The same prefix claimed by two peers: the whole configuration is rejected. */
	snprintf(path, sizeof(path), "%s/peers.d/d.conf", dir);
	write_file(path, "[Peer]\nPublicKey = 4J1TAv2eWKI0kPFNbEOs3dzfOmAW4kzA7Yx5mLo4R3U=\nAllowedIPs = 198.18.2.0/24\n");
	snprintf(path, sizeof(path), "%s/node.conf", dir);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AllowedIPs 198.18.2.0/24 also claimed by"));
	assert_null(c.peers);

	/* A broken peer file names its file and line. */
	snprintf(path, sizeof(path), "%s/peers.d/d.conf", dir);
	write_file(path, "[Peer]\nPublicKey = 4J1TAv2eWKI0kPFNbEOs3dzfOmAW4kzA7Yx5mLo4R3U=\nAllowedIPs = nonsense\n");
	snprintf(path, sizeof(path), "%s/node.conf", dir);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "peers.d/d.conf:3: AllowedIPs: 'nonsense'"));

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * One node file for the whole cluster, as a ConfigMap mounts it: no Name (NODE_NAME gives it),
 * PeersDir = . (the node file next to the peer files, all symlinks into ..data), and the shared
 * peer set holds this node's own file, which is left out by public key.
 */
#define SELF_PRIV "SLfI5fn6u4x0Nin+/QlSwRkelfEncAshtxL3T4O/yEw="
#define SELF_PUB "CYx90+XBCMQNPpa4OrsdalfcN3JovXSwxJncszeCTSM="
static void write_cluster_node(const char *dir, const char *extra, const char *keyf)
{
	char path[512], text[1024];

	snprintf(path, sizeof(path), "%.400s/bulwark.conf", dir);
	snprintf(text, sizeof(text),
		 "[Node]\n%sUplinks = eth0\nProtectedCIDRs = 198.18.0.0/16\nPeersDir = .\n"
		 "[Interface]\nDevice = wg0\nListenPort = 51820\nPrivateKeyFile = %.400s\n", extra, keyf);
	write_file(path, text);
}

static void cluster_wide_node_file(void **state)
{
	char dir[] = "/tmp/bw-conf-XXXXXX", path[1024], data[256], link[1024], keyf[256], err[BW_ERR_LEN] = "";
	struct bw_conf c;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/..2026_01_01_00_00_00.1", dir);
	assert_int_equal(mkdir(data, 0755), 0);
	snprintf(keyf, sizeof(keyf), "%s/wg.key", dir);
	write_file(keyf, SELF_PRIV "\n");
	assert_int_equal(chmod(keyf, 0600), 0);
	write_cluster_node(data, "", keyf);
	snprintf(path, sizeof(path), "%s/self.conf", data);
	write_file(path, "[Peer]\nPublicKey = " SELF_PUB "\nAllowedIPs = 198.18.1.0/24\n");
	snprintf(path, sizeof(path), "%s/b.conf", data);
	write_file(path, "[Peer]\nPublicKey = " KEY_B "\nAllowedIPs = 198.18.2.0/24\n");
	snprintf(link, sizeof(link), "%s/..data", dir);
	assert_int_equal(symlink("..2026_01_01_00_00_00.1", link), 0);
	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "bulwark.conf", "self.conf", "b.conf" };
		char target[64];
		snprintf(target, sizeof(target), "..data/%s", names[i]);
		snprintf(link, sizeof(link), "%s/%s", dir, names[i]);
		assert_int_equal(symlink(target, link), 0);
	}
	snprintf(path, sizeof(path), "%s/bulwark.conf", dir);

	/* Neither Name nor NODE_NAME: the host name, in lower case (kubelet's default node name). */
	unsetenv("NODE_NAME");
	char host[256] = "";
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.node.name, host);
	bw_conf_free(&c);
	setenv("NODE_NAME", "bad/name", 1);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NODE_NAME is not a node name"));

	setenv("NODE_NAME", "node-7.example", 1);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.node.name, "node-7.example");
	/* bulwark.conf was not read as a peer; self.conf is this node: only b is a peer */
	assert_int_equal(c.n_peers, 1);
	assert_non_null(strstr(c.peers[0].file, "/b.conf"));
	assert_non_null(strstr(c.self_peer, "/self.conf"));
	bw_conf_free(&c);

	/* A Name in the file wins over NODE_NAME. */
	write_cluster_node(data, "Name = fixed\n", keyf);
	snprintf(path, sizeof(path), "%s/bulwark.conf", dir);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.node.name, "fixed");
	bw_conf_free(&c);
	/* bulwarkd --node-name wins over the file's Name and NODE_NAME; a bad one is refused. */
	assert_int_equal(bw_conf_set_node_name("bad/name"), -EINVAL);
	assert_int_equal(bw_conf_set_node_name("from-flag"), 0);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.node.name, "from-flag");
	bw_conf_free(&c);
	assert_int_equal(bw_conf_set_node_name(NULL), 0);

	/* Without the key file nothing can be this node: both peers load. */
	unlink(keyf);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c.n_peers, 2);
	assert_string_equal(c.self_peer, "");
	bw_conf_free(&c);
	unsetenv("NODE_NAME");

	/* A PeersDir that is not there says which key to fix. */
	snprintf(path, sizeof(path), "%s/bulwark.conf", data);
	write_file(path, "[Node]\nName = n\nUplinks = eth0\nProtectedCIDRs = 198.18.0.0/16\nPeersDir = /nonexistent/peers.d\n"
			 "[Interface]\nDevice = wg0\nListenPort = 51820\n");
	snprintf(path, sizeof(path), "%s/bulwark.conf", dir);
	assert_int_equal(bw_conf_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "PeersDir"));
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

static void writer_round_trips(void **state)
{
	struct bw_conf a, b;
	struct bw_conf_peer p, q;
	char err[BW_ERR_LEN], ep[64], *buf = NULL;
	size_t len = 0;
	FILE *f;
	(void)state;

	assert_int_equal(bw_conf_parse_node("a", node_text, &a, err, sizeof(err)), 0);
	f = open_memstream(&buf, &len);
	assert_int_equal(bw_conf_write_node(f, &a), 0);
	fclose(f);
	assert_int_equal(bw_conf_parse_node("b", buf, &b, err, sizeof(err)), 0);
	free(buf);
	strcpy(b.path, a.path);
	assert_memory_equal(&a.node, &b.node, sizeof(a.node));
	assert_memory_equal(&a.iface, &b.iface, sizeof(a.iface));

	assert_int_equal(bw_conf_parse_peer("p", "[Peer]\nNode = n\nPublicKey = " KEY_B "\nPresharedKey = " KEY_C
					    "\nEndpoint = [fd00:20::2]:51820\nAllowedIPs = fd00:10:2::/48, 198.18.2.0/24\n"
					    "PersistentKeepalive = 10\n", &p, err, sizeof(err)), 0);
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(bw_conf_write_peer(f, &p, false), 0);
	fclose(f);
	assert_int_equal(bw_conf_parse_peer("p", buf, &q, err, sizeof(err)), 0);
	free(buf);
	assert_string_equal(q.node, "n");
	assert_memory_equal(q.public_key, p.public_key, 32);
	assert_true(q.has_psk);
	assert_memory_equal(q.psk, p.psk, 32);
	assert_string_equal(bw_endpoint_str(&q.endpoint, ep, sizeof(ep)), "[fd00:20::2]:51820");
	assert_int_equal(q.n_allowed_ips, 2);
	assert_memory_equal(q.allowed_ips, p.allowed_ips, 2 * sizeof(struct bw_cidr));
	assert_int_equal(q.keepalive, 10);
	bw_conf_peers_free(&p, 1);
	bw_conf_peers_free(&q, 1);
}

/* FlowCache defaults to on; off survives a write and re-read. */
static void flow_cache_switch(void **state)
{
	struct bw_conf a, b;
	char err[BW_ERR_LEN], *buf = NULL, text[1024];
	size_t len = 0;
	FILE *f;
	(void)state;

	assert_int_equal(bw_conf_parse_node("a", node_text, &a, err, sizeof(err)), 0);
	assert_false(a.node.no_flow_cache);
	int at = (int)(strstr(node_text, "PeersDir") - node_text);

	snprintf(text, sizeof(text), "%.*sFlowCache=off\n%s", at, node_text, node_text + at);
	assert_int_equal(bw_conf_parse_node("a", text, &a, err, sizeof(err)), 0);
	assert_true(a.node.no_flow_cache);
	f = open_memstream(&buf, &len);
	assert_int_equal(bw_conf_write_node(f, &a), 0);
	fclose(f);
	assert_non_null(strstr(buf, "FlowCache = false\n"));
	assert_int_equal(bw_conf_parse_node("b", buf, &b, err, sizeof(err)), 0);
	free(buf);
	assert_true(b.node.no_flow_cache);
	snprintf(text, sizeof(text), "%.*sFlowCache = off\nFlowCache = on\n%s", at, node_text, node_text + at);
	assert_true(bw_conf_parse_node("a", text, &a, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "FlowCache given twice"));
}

/* VPC CNIs: node addresses are single hosts inside the pod range; the longer prefix wins. */
static void node_hosts_inside_pod_prefixes(void **state)
{
	static const char *text =
		"[Node]\nName = a\nUplinks = eth0\n"
		"ProtectedCIDRs = 10.0.0.0/16, fd00:10::/32\n"
		"NodeCIDRs = 10.0.3.17/32, 10.0.4.0/28, fd00:10:0:1::7/128, 192.0.2.0/24\n"
		"OverlayPort = 7777\nOverlayPorts = 4789, 5555\n"
		"[Interface]\nDevice = wg0\nListenPort = 51820\n";
	struct bw_conf c;
	char err[BW_ERR_LEN] = "";
	(void)state;

	if (bw_conf_parse_node("t.conf", text, &c, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.node.n_node_cidrs, 4);
	assert_int_equal(c.node.n_overlay_ports, 3);
	assert_int_equal(c.node.overlay_ports[0], 7777);
	assert_int_equal(c.node.overlay_ports[2], 5555);
	assert_int_equal(c.node.overlay_port, 7777);
}

/* PeerSource = kubernetes: the Kube* keys parse, round-trip, and a wrong source is refused. */
static void peer_source_kubernetes(void **state)
{
	static const char *text =
		"[Node]\nName = a\nUplinks = eth0\nProtectedCIDRs = 10.0.0.0/16\n"
		"PeerSource = Kubernetes\nKubeAPI = https://198.19.0.251:6443\nKubeTokenFile = /t/token\nKubeCAFile = /t/ca.pem\n"
		"[Interface]\nDevice = wg0\nListenPort = 51820\n";
	struct bw_conf c, d;
	char err[BW_ERR_LEN] = "", *buf = NULL, bad[1024];
	size_t len = 0;
	FILE *f;
	(void)state;

	if (bw_conf_parse_node("t.conf", text, &c, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.node.peer_source, BW_PEERS_KUBERNETES);
	assert_string_equal(c.node.kube_api, "https://198.19.0.251:6443");
	assert_string_equal(c.node.kube_token_file, "/t/token");
	assert_string_equal(c.node.kube_ca_file, "/t/ca.pem");
	f = open_memstream(&buf, &len);
	assert_int_equal(bw_conf_write_node(f, &c), 0);
	fclose(f);
	if (bw_conf_parse_node("w.conf", buf, &d, err, sizeof(err)))
		fail_msg("%s", err);
	free(buf);
	assert_int_equal(d.node.peer_source, BW_PEERS_KUBERNETES);
	assert_string_equal(d.node.kube_ca_file, "/t/ca.pem");
	snprintf(bad, sizeof(bad), "%s", text);
	memcpy(strstr(bad, "Kubernetes"), "etcdxxxxxx", 10);
	assert_int_equal(bw_conf_parse_node("t.conf", bad, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.conf:5: PeerSource 'etcdxxxxxx': expected directory or kubernetes"));
}

static void keys_base64(void **state)
{
	uint8_t k[32];
	char s[45];
	(void)state;

	assert_int_equal(bw_key_from_base64(KEY_B, k), 0);
	bw_key_to_base64(k, s);
	assert_string_equal(s, KEY_B);
	assert_int_equal(bw_key_from_base64("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D==", k), -EINVAL);
	assert_int_equal(bw_key_from_base64("short=", k), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_node_file),
		cmocka_unit_test(rejects_malformed_with_file_and_line),
		cmocka_unit_test(rejects_bad_peers),
		cmocka_unit_test(load_dir_all_or_nothing),
		cmocka_unit_test(cluster_wide_node_file),
		cmocka_unit_test(writer_round_trips),
		cmocka_unit_test(keys_base64),
		cmocka_unit_test(peer_source_kubernetes),
		cmocka_unit_test(node_hosts_inside_pod_prefixes),
		cmocka_unit_test(flow_cache_switch),
	};
	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
