// SPDX-License-Identifier: GPL-2.0-only
/* bulwark net <verb>: the WireGuard device and its peers, reconciled with the datapath. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "cli/cli.h"
#include "datapath/datapath.h"
#include "net/net.h"
#include "wg/wg.h"
#include "wireguard-conf/conf.h"

#define DEFAULT_CONFIG "/etc/bulwark/bulwark.conf"

struct opts {
	const char *config, *pin_dir, *endpoint;
	bool json;
};

/* Every net verb takes --config, --pin-dir, --json; more in accepts (bw_cli_getopt). */
static int parse(int argc, char **argv, struct opts *o, const char *accepts)
{
	static const struct option all[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	char what[64], acc[96];
	int ch;

	snprintf(what, sizeof(what), "net %s", argv[0]);
	snprintf(acc, sizeof(acc), "config pin-dir json%s", accepts);
	memset(o, 0, sizeof(*o));
	o->config = getenv("BULWARK_CONFIG") ? getenv("BULWARK_CONFIG") : DEFAULT_CONFIG;
	optind = 1;
	while ((ch = bw_cli_getopt(argc, argv, all, acc, what)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'p': o->pin_dir = optarg; break;
		case 'e': o->endpoint = optarg; break;
		case 'j': o->json = true; break;
		default: return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bulwark %s: unexpected argument '%s'\n", what, argv[optind]);
		return -EINVAL;
	}
	return 0;
}

#define NET_ARGS "[--config FILE] [--pin-dir DIR] [--json]"

/*
 * Every net verb begins here: its options (the common three plus more, as " name" for
 * bw_cli_getopt, with their usage more_usage), then the configuration. BW_EXIT_OK: c is loaded
 * (the verb bw_conf_frees it); otherwise the exit code to return (what went wrong is on stderr;
 * with --json the dispatcher turns it into {"error","code"}).
 */
static int net_begin(int argc, char **argv, const char *more, const char *more_usage, struct opts *o,
		     struct bw_conf *c)
{
	char err[BW_ERR_LEN];

	if (parse(argc, argv, o, more) < 0) {
		fprintf(stderr, "usage: bulwark net %s [--config FILE] [--pin-dir DIR]%s [--json]\n", argv[0], more_usage);
		return BW_EXIT_USAGE;
	}
	if (bw_conf_load(o->config, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "bulwark: %s\n", err);
		return BW_EXIT_FAIL;
	}
	return BW_EXIT_OK;
}

/* MeshSecret: peers get their derived PSKs, or none is configured (fail closed). */
static int mesh(struct bw_conf *c)
{
	struct bw_notes notes = { 0 };
	char err[BW_ERR_LEN];
	int r = bw_net_mesh_prepare(c, bw_log_hook, &notes, err, sizeof(err));

	bw_notes_log(&notes);
	if (r < 0)
		fprintf(stderr, "bulwark: mesh secret %s: %s; no peer is configured (fail closed)\n",
			c->node.mesh_secret, err);
	return r;
}

static void report(const char *what, int r, struct bw_net_result *res)
{
	if (res)
		bw_notes_log(&res->notes);
	if (res && res->msg[0])
		fprintf(stderr, "bulwark: net %s: %s\n", what, res->msg);
	if (r < 0)
		fprintf(stderr, "bulwark: net %s: %s\n", what, strerror(-r));
	else if (res)
		printf("peers: +%u ~%u -%u, allowed IPs: +%u -%u\n", res->peers_added, res->peers_updated,
		       res->peers_removed, res->prefixes_added, res->prefixes_removed);
}

/* up and sync: the same steps around bw_net_up (device, key, peers, datapath) or bw_net_reconcile. */
static int up_or_sync(int argc, char **argv, int (*apply)(const struct bw_conf *, const char *, struct bw_net_result *))
{
	struct opts o;
	struct bw_conf c;
	struct bw_net_result res;
	int m, r;

	if ((r = net_begin(argc, argv, "", "", &o, &c)) != BW_EXIT_OK)
		return r;
	m = mesh(&c);
	r = apply(&c, o.pin_dir, &res);
	report(argv[0], r, &res);
	bw_conf_free(&c);
	return r < 0 || m < 0 ? BW_EXIT_FAIL : BW_EXIT_OK;
}

static int cmd_up(int argc, char **argv)
{
	return up_or_sync(argc, argv, bw_net_up);
}

static int cmd_sync(int argc, char **argv)
{
	return up_or_sync(argc, argv, bw_net_reconcile);
}

static int cmd_down(int argc, char **argv)
{
	struct opts o;
	struct bw_conf c;
	struct bw_net_result res = { 0 };
	int r;

	if ((r = net_begin(argc, argv, "", "", &o, &c)) != BW_EXIT_OK)
		return r;
	r = bw_net_down(&c, res.msg, sizeof(res.msg));
	report("down", r, r < 0 ? &res : NULL);
	bw_conf_free(&c);
	return r < 0 ? BW_EXIT_FAIL : BW_EXIT_OK;
}

static int cmd_export(int argc, char **argv)
{
	struct opts o;
	struct bw_conf c;
	int r;

	if ((r = net_begin(argc, argv, " endpoint", " [--endpoint HOST:PORT]", &o, &c)) != BW_EXIT_OK)
		return r;
	r = bw_net_export_peer(&c, o.endpoint, stdout);
	if (r < 0)
		fprintf(stderr, "bulwark: export-peer: %s\n", r == -EADDRNOTAVAIL ? "uplink has no address; pass --endpoint" : r == -EINVAL && o.endpoint ? "--endpoint is not address:port (a.b.c.d:port or [x::y]:port)" : strerror(-r));
	bw_conf_free(&c);
	return r < 0 ? BW_EXIT_FAIL : BW_EXIT_OK;
}

static int cmd_showconf(int argc, char **argv)
{
	struct opts o;
	struct bw_conf c;
	int r;

	if ((r = net_begin(argc, argv, "", "", &o, &c)) != BW_EXIT_OK)
		return r;
	r = bw_conf_write_wg(stdout, &c, NULL);
	bw_conf_free(&c);
	return r < 0 ? BW_EXIT_FAIL : BW_EXIT_OK;
}

static const char *node_of(const struct bw_conf *c, const uint8_t *key)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (!memcmp(c->peers[i].public_key, key, 32))
			return c->peers[i].node;
	return "(unknown)";
}

static struct json_object *peer_json(const struct bw_conf *c, const struct bw_wg_peer *p)
{
	struct json_object *e = json_object_new_object(), *a = json_object_new_array();
	char key[45], buf[80];

	bw_key_to_base64(p->public_key, key);
	json_object_object_add(e, "node", json_object_new_string(node_of(c, p->public_key)));
	json_object_object_add(e, "public_key", json_object_new_string(key));
	json_object_object_add(e, "endpoint", json_object_new_string(bw_endpoint_str(&p->endpoint, buf, sizeof(buf))));
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		json_object_array_add(a, json_object_new_string(bw_cidr_str(&p->allowed_ips[i], buf, sizeof(buf))));
	json_object_object_add(e, "allowed_ips", a);
	json_object_object_add(e, "latest_handshake", json_object_new_int64(p->last_handshake_sec));
	json_object_object_add(e, "handshake_age_seconds",
			       p->last_handshake_sec ? json_object_new_int64(time(NULL) - p->last_handshake_sec) : NULL);
	json_object_object_add(e, "rx_bytes", json_object_new_uint64(p->rx_bytes));
	json_object_object_add(e, "tx_bytes", json_object_new_uint64(p->tx_bytes));
	json_object_object_add(e, "preshared_key", json_object_new_boolean(p->flags & BW_WGPEER_HAS_PSK));
	return e;
}

static int cmd_peers(int argc, char **argv)
{
	struct opts o;
	struct bw_conf c;
	struct bw_wg_device *d = NULL;
	int r;

	if ((r = net_begin(argc, argv, "", "", &o, &c)) != BW_EXIT_OK)
		return r;
	if ((r = bw_wg_get(c.iface.device, &d)) < 0) {
		fprintf(stderr, "bulwark: WireGuard device %s: %s%s\n", c.iface.device, strerror(-r),
			(r == -EPERM || r == -EACCES || r == -ENODEV) && geteuid() ? " (needs root or CAP_NET_ADMIN)" : "");
		bw_conf_free(&c);
		return BW_EXIT_FAIL;
	}
	if (o.json) {
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < d->n_peers; i++)
			json_object_array_add(arr, peer_json(&c, &d->peers[i]));
		bw_cli_print_json(arr);
	} else {
		for (size_t i = 0; i < d->n_peers; i++) {
			char key[45], ep[80], cidr[64];
			const struct bw_wg_peer *p = &d->peers[i];
			bw_key_to_base64(p->public_key, key);
			char hs[32] = "never";
			if (p->last_handshake_sec)
				snprintf(hs, sizeof(hs), "%llds", (long long)(time(NULL) - p->last_handshake_sec));
			printf("%-16s %s %-22s handshake %-8s rx %-12llu tx %-12llu", node_of(&c, p->public_key), key,
			       bw_endpoint_str(&p->endpoint, ep, sizeof(ep)), hs, (unsigned long long)p->rx_bytes,
			       (unsigned long long)p->tx_bytes);
			for (size_t j = 0; j < p->n_allowed_ips; j++)
				printf("%s%s", j ? "," : " ", bw_cidr_str(&p->allowed_ips[j], cidr, sizeof(cidr)));
			printf("\n");
		}
	}
	bw_wg_device_free(d);
	bw_conf_free(&c);
	return BW_EXIT_OK;
}

struct ids {
	uint32_t v[4096];
	size_t n;
};

static int count_peer(const struct bw_cidr *cidr, const struct bw_peer *p, void *ctx)
{
	struct ids *ids = ctx;
	(void)cidr;

	for (size_t i = 0; i < ids->n; i++)
		if (ids->v[i] == p->peer_id)
			return 0;
	if (ids->n < ARRAY_SIZE(ids->v))
		ids->v[ids->n++] = p->peer_id;
	return 0;
}

static const char *priv_hint(void)
{
	return geteuid() ? " (needs root or CAP_NET_ADMIN)" : "";
}

/*
 * Truthful: exit 0 only when every uplink is enforced, the device is up and the peer counts of
 * the configuration, the device and the datapath agree (codes in cli.h / README).
 */
static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct bw_conf c;
	struct bw_wg_device *d = NULL;
	struct bw_dp *dp = NULL;
	struct json_object *j = NULL;
	static struct ids ids;
	char key[45] = "(none)";
	const char *uplinks[BW_CONF_MAX_LIST];
	size_t with_ips = 0;
	enum bw_wg_backend be;
	bool dp_ok, dev_ok;
	int code, r;

	if ((r = net_begin(argc, argv, "", "", &o, &c)) != BW_EXIT_OK)
		return r;
	if (o.json)
		j = json_object_new_object();
	for (size_t i = 0; i < c.node.n_uplinks; i++)
		uplinks[i] = c.node.uplinks[i];
	for (size_t i = 0; i < c.n_peers; i++)
		with_ips += c.peers[i].n_allowed_ips > 0;
	be = bw_wg_backend_of(c.iface.device);
	dev_ok = be != BW_WG_NONE && bw_wg_device_alive(c.iface.device) && (r = bw_wg_get(c.iface.device, &d)) == 0;
	ids.n = 0;
	dp_ok = bw_dp_open(o.pin_dir, &dp) == 0 && bw_dp_peers_foreach(dp, count_peer, &ids) == 0;
	bw_dp_close(dp);
	/* The private key is never printed; the public key identifies the node. */
	if (d && (d->flags & BW_WGDEV_HAS_PUBLIC_KEY))
		bw_key_to_base64(d->public_key, key);
	if (!o.json) {
		if (dev_ok)
			printf("node %s: %s (%s), public key %s, port %u, fwmark 0x%x\n", c.node.name, c.iface.device,
			       bw_wg_backend_name(be), key, d->listen_port, d->fwmark);
		else
			printf("node %s: WireGuard device %s: MISSING%s\n", c.node.name, c.iface.device,
			       be == BW_WG_NONE && !if_nametoindex(c.iface.device) ? "" : priv_hint());
	}
	code = bw_cli_enforcement(o.pin_dir, uplinks, c.node.n_uplinks, j, o.json ? NULL : stdout);
	if (!dev_ok)
		code = bw_cli_worse(code, BW_EXIT_NO_DEVICE);
	else if (d->n_peers != c.n_peers || (dp_ok && ids.n != with_ips))
		code = bw_cli_worse(code, BW_EXIT_PEERS);
	if (o.json) {
		json_object_object_add(j, "node", json_object_new_string(c.node.name));
		json_object_object_add(j, "device", json_object_new_string(c.iface.device));
		json_object_object_add(j, "device_up", json_object_new_boolean(dev_ok));
		json_object_object_add(j, "backend", json_object_new_string(bw_wg_backend_name(be)));
		json_object_object_add(j, "public_key", json_object_new_string(key));
		json_object_object_add(j, "listen_port", json_object_new_int(d ? d->listen_port : 0));
		json_object_object_add(j, "fwmark", json_object_new_int64(d ? d->fwmark : 0));
		json_object_object_add(j, "peers", json_object_new_int64(d ? (int64_t)d->n_peers : 0));
		json_object_object_add(j, "peers_configured", json_object_new_int64((int64_t)c.n_peers));
		json_object_object_add(j, "peers_datapath", json_object_new_int64((int64_t)ids.n));
		json_object_object_add(j, "datapath", json_object_new_boolean(dp_ok));
		json_object_object_add(j, "code", json_object_new_int(code));
		bw_cli_print_json(j);
	} else {
		printf("peers: %zu in the device, %zu configured, %zu in the datapath%s\n", d ? d->n_peers : 0,
		       c.n_peers, ids.n, code == BW_EXIT_PEERS ? ": MISMATCH" : "");
		printf("enforcement: %s\n", code == BW_EXIT_OK ? "complete" : "INCOMPLETE");
	}
	bw_wg_device_free(d);
	bw_conf_free(&c);
	return code;
}

static const struct bw_cli_verb verbs[] = {
	{ "up", "create the device, load/create the key, sync peers, attach the datapath", cmd_up, NET_ARGS },
	{ "sync", "reconcile peers and datapath with the configuration", cmd_sync, NET_ARGS },
	{ "down", "remove the WireGuard device (the datapath stays: fail closed)", cmd_down, NET_ARGS },
	{ "status", "device, backend, key, peer counts, enforcement; exit 0 only when complete [--json]", cmd_status, NET_ARGS },
	{ "peers", "peers with endpoints, allowed IPs, handshakes [--json]", cmd_peers, NET_ARGS },
	{ "export-peer", "this node's [Peer] stanza for other nodes [--endpoint HOST:PORT]", cmd_export, "[--endpoint HOST:PORT] " NET_ARGS },
	{ "showconf", "the configuration as `wg setconf` takes it (no private key)", cmd_showconf, NET_ARGS },
	{ 0 },
};

const struct bw_cli_area bw_cli_net = { .name = "net", .summary = "WireGuard device and peers", .verbs = verbs };
