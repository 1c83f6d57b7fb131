// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark status: one overview of the node's enforcement, like `cilium encrypt status`. Exit 0
 * only when enforcement is complete; otherwise the most severe code of cli.h (3 an uplink not
 * enforced, 4 a foreign filter first, 5 no WireGuard device, 6 peer counts differ, 7 the agent
 * unreachable or its last sync failed).
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "cli/cli.h"
#include "common/curl.h"
#include "datapath/datapath.h"
#include "wg/wg.h"
#include "wireguard-conf/conf.h"

#define RECENT_HANDSHAKE 180
#define AGENT_MAX_REPLY 65536

struct buf {
	char data[AGENT_MAX_REPLY];
	size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;

	if (len >= sizeof(b->data) - b->len)
		return 0; /* too long: abort the transfer */
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* The agent's own view (/status): NULL when it does not answer. */
static struct json_object *agent_status(const char *base)
{
	static struct buf b;
	char url[512], why[BW_ERR_LEN];
	long code = 0;
	CURLcode r;
	CURL *c;

	if (bw_curl_load(why, sizeof(why)) < 0) {
		fprintf(stderr, "bulwark: asking the agent: %s\n", why);
		return NULL;
	}
	if (!(c = curl_easy_init()))
		return NULL;
	b.len = 0;
	b.data[0] = '\0';
	snprintf(url, sizeof(url), "%s/status", base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	r = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	return r == CURLE_OK && code == 200 ? json_tokener_parse(b.data) : NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/*
 * Is the key service reachable: a TLS connection that verifies (the configured CA, else the
 * system store) and any HTTP answer to GET / (the service decides what / says; reaching it is
 * what counts). 1 reachable; 0 with why set.
 */
static int key_service_probe(const char *url, const char *ca, char *why, size_t n)
{
	char err[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode r;
	CURL *c;

	if (bw_curl_load(why, n) < 0) /* libcurl is loaded on first use (common/curl.h) */
		return 0;
	if (!(c = curl_easy_init())) {
		snprintf(why, n, "out of memory");
		return 0;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (*ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	r = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (r == CURLE_OK && code > 0)
		return 1;
	snprintf(why, n, "%s", *err ? err : curl_easy_strerror(r));
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bulwark status [--config FILE] [--pin-dir DIR] [--agent URL] [--json]\n\n"
		   "  --config FILE   node file (default $BULWARK_CONFIG or /etc/bulwark/bulwark.conf)\n"
		   "  --pin-dir DIR   datapath pin directory\n"
		   "  --agent URL     bulwarkd's metrics address (default $BULWARK_AGENT or http://127.0.0.1:9962)\n"
		   "  --json          one JSON object\n\n"
		   "exit: 0 enforcement complete; 3 an uplink not enforced; 4 a foreign filter or program runs\n"
		   "before ours; 5 WireGuard device missing; 6 peer counts differ; 7 agent unreachable or its\n"
		   "last sync failed; 1 error; 2 usage\n");
}

static int run(int argc, char **argv)
{
	static const struct option all[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "agent", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = getenv("BULWARK_CONFIG") ? getenv("BULWARK_CONFIG") : "/etc/bulwark/bulwark.conf";
	const char *agent = getenv("BULWARK_AGENT") ? getenv("BULWARK_AGENT") : "http://127.0.0.1:9962";
	const char *pin_dir = NULL, *uplinks[BW_CONF_MAX_LIST];
	char err[BW_ERR_LEN], key[45] = "(none)", ks_why[CURL_ERROR_SIZE + 64] = "";
	struct json_object *j = NULL, *ag;
	struct bw_wg_device *d = NULL;
	struct bw_stat st[BW_REASON_MAX];
	struct bw_config cfg = { 0 };
	struct bw_dp *dp = NULL;
	struct bw_conf c;
	size_t recent = 0;
	bool json = false, dev_ok, dp_ok, ks_ok = false;
	enum bw_wg_backend be;
	int ch, code;

	optind = 1;
	while ((ch = bw_cli_getopt(argc, argv, all, "config pin-dir agent json help", "status")) != -1) {
		switch (ch) {
		case 'c': config = optarg; break;
		case 'p': pin_dir = optarg; break;
		case 'a': agent = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return BW_EXIT_OK;
		default: usage(stderr); return BW_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return BW_EXIT_USAGE;
	}
	if (bw_conf_load(config, &c, err, sizeof(err)) < 0)
		return bw_cli_error(json, BW_EXIT_FAIL, "%s", err);
	if (json)
		j = json_object_new_object();
	for (size_t i = 0; i < c.node.n_uplinks; i++)
		uplinks[i] = c.node.uplinks[i];
	if (!json)
		printf("node %s\n", c.node.name);
	code = bw_cli_enforcement(pin_dir, uplinks, c.node.n_uplinks, j, json ? NULL : stdout);

	be = bw_wg_backend_of(c.iface.device);
	dev_ok = be != BW_WG_NONE && bw_wg_device_alive(c.iface.device) && bw_wg_get(c.iface.device, &d) == 0;
	if (!dev_ok)
		code = bw_cli_worse(code, BW_EXIT_NO_DEVICE);
	else
		for (size_t i = 0; i < d->n_peers; i++)
			recent += d->peers[i].last_handshake_sec && time(NULL) - d->peers[i].last_handshake_sec <= RECENT_HANDSHAKE;
	if (d && (d->flags & BW_WGDEV_HAS_PUBLIC_KEY))
		bw_key_to_base64(d->public_key, key);
	if (dev_ok && d->n_peers != c.n_peers)
		code = bw_cli_worse(code, BW_EXIT_PEERS);
	dp_ok = bw_dp_open(pin_dir, &dp) == 0 && bw_dp_config_get(dp, &cfg) == 0 && bw_dp_stats(dp, st) == 0;
	if (c.node.key_service[0])
		ks_ok = key_service_probe(c.node.key_service, c.node.key_service_ca, ks_why, sizeof(ks_why));
	ag = agent_status(agent);
	if (!ag || !json_object_get_boolean(json_object_object_get(ag, "ready")))
		code = bw_cli_worse(code, BW_EXIT_AGENT);
	if (ag && strcmp(json_object_get_string(json_object_object_get(ag, "last_sync_result")), "ok"))
		code = bw_cli_worse(code, BW_EXIT_AGENT);

	if (json) {
		struct json_object *w = json_object_new_object(), *drops = json_object_new_object();

		json_object_object_add(j, "node", json_object_new_string(c.node.name));
		json_object_object_add(w, "device", json_object_new_string(c.iface.device));
		json_object_object_add(w, "up", json_object_new_boolean(dev_ok));
		json_object_object_add(w, "backend", json_object_new_string(bw_wg_backend_name(be)));
		json_object_object_add(w, "public_key", json_object_new_string(key));
		json_object_object_add(w, "peers_configured", json_object_new_int64((int64_t)c.n_peers));
		json_object_object_add(w, "peers_in_device", json_object_new_int64(d ? (int64_t)d->n_peers : 0));
		json_object_object_add(w, "peers_recent_handshake", json_object_new_int64((int64_t)recent));
		json_object_object_add(j, "wireguard", w);
		json_object_object_add(j, "node_encryption", json_object_new_boolean(cfg.flags & BW_CFG_NODE_ENCRYPTION));
		json_object_object_add(j, "flow_cache", json_object_new_boolean(dp_ok && (cfg.flags & BW_CFG_FLOW_CACHE)));
		for (unsigned i = 0; dp_ok && i < BW_REASON_MAX; i++)
			if (strstr(bw_reason_name(i), "dropped"))
				json_object_object_add(drops, bw_reason_name(i), json_object_new_uint64(st[i].packets));
		json_object_object_add(j, "drops_total", drops);
		if (c.node.key_service[0]) {
			struct json_object *k = json_object_new_object();
			json_object_object_add(k, "url", json_object_new_string(c.node.key_service));
			json_object_object_add(k, "reachable", json_object_new_boolean(ks_ok));
			if (!ks_ok)
				json_object_object_add(k, "error", json_object_new_string(ks_why));
			if (c.node.mesh_secret[0])
				json_object_object_add(k, "mesh_secret", json_object_new_string(c.node.mesh_secret));
			json_object_object_add(j, "key_service", k);
		}
		json_object_object_add(j, "agent", ag ? json_object_get(ag) : NULL);
		json_object_object_add(j, "code", json_object_new_int(code));
		bw_cli_print_json(j);
	} else {
		if (dev_ok)
			printf("wireguard: %s (%s), public key %s\n", c.iface.device, bw_wg_backend_name(be), key);
		else
			printf("wireguard: %s MISSING%s\n", c.iface.device,
			       geteuid() ? " (or no permission: needs root or CAP_NET_ADMIN)" : "");
		printf("peers: %zu configured, %zu in the device, %zu with a handshake in the last %d s%s\n", c.n_peers,
		       d ? d->n_peers : 0, recent, RECENT_HANDSHAKE, dev_ok && d->n_peers != c.n_peers ? ": MISMATCH" : "");
		printf("node encryption: %s, flow cache: %s\n", cfg.flags & BW_CFG_NODE_ENCRYPTION ? "on" : "off",
		       dp_ok && (cfg.flags & BW_CFG_FLOW_CACHE) ? "on" : "off");
		if (dp_ok) {
			printf("drops since the maps were created:");
			for (unsigned i = 0; i < BW_REASON_MAX; i++)
				if (strstr(bw_reason_name(i), "dropped"))
					printf(" %s %llu", bw_reason_name(i), (unsigned long long)st[i].packets);
			printf("\n");
		}
		if (ag && json_object_object_get(ag, "drops_recent") &&
		    json_object_object_get(json_object_object_get(ag, "drops_recent"), "seconds")) {
			struct json_object *dr = json_object_object_get(ag, "drops_recent");
			printf("drops in the last %lld s:", (long long)json_object_get_int64(json_object_object_get(dr, "seconds")));
			json_object_object_foreach(dr, k, v)
				if (strcmp(k, "seconds"))
					printf(" %s %lld", k, (long long)json_object_get_int64(v));
			printf("\n");
		}
		if (c.node.key_service[0] && ks_ok)
			printf("key service: %s reachable%s%s\n", c.node.key_service, c.node.mesh_secret[0] ? ", mesh secret " : "",
			       c.node.mesh_secret);
		else if (c.node.key_service[0])
			printf("key service: %s NOT REACHABLE: %s (held keys stay in use; a node without the mesh secret keeps its peers down)\n",
			       c.node.key_service, ks_why);
		if (!ag) {
			printf("agent: NOT REACHABLE at %s\n", agent);
		} else {
			time_t t = (time_t)json_object_get_int64(json_object_object_get(ag, "last_sync_success"));
			char when[64] = "never";
			struct tm tm;

			if (t && gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			printf("agent: %s; last sync: %s, last success %s, %llu syncs, %llu errors, %llu re-attaches\n",
			       json_object_get_boolean(json_object_object_get(ag, "ready")) ? "ready" : "NOT READY",
			       json_object_get_string(json_object_object_get(ag, "last_sync_result")), when,
			       (unsigned long long)json_object_get_uint64(json_object_object_get(ag, "syncs")),
			       (unsigned long long)json_object_get_uint64(json_object_object_get(ag, "sync_errors")),
			       (unsigned long long)json_object_get_uint64(json_object_object_get(ag, "reattaches")));
		}
		printf("enforcement: %s\n", code == BW_EXIT_OK ? "complete" : "INCOMPLETE");
	}
	json_object_put(ag);
	bw_dp_close(dp);
	bw_wg_device_free(d);
	bw_conf_free(&c);
	return code;
}

const struct bw_cli_area bw_cli_status = {
	.name = "status", .summary = "node overview: enforcement per uplink, WireGuard, peers, drops, agent (exit 0: complete)",
	.run = run,
};
