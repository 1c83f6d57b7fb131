// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwarkd's HTTP endpoints (libevent evhttp; GET only, no request body, 5 s timeout):
 *   /metrics  Prometheus text exposition format 0.0.4
 *   /healthz  liveness: the event loop answers (200 "ok")
 *   /readyz   readiness: every uplink enforced, the WireGuard device up, the last sync good
 *             (200 "ready", else 503 and the reasons, one per line)
 *   /status   the agent's view as JSON (for `bulwark status`)
 * Every answer is computed fresh (filter dump, map walk, device dump): nothing stale is served.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include "common/common.h"
#include "agent/agent.h"
#include "agent/k8s_source.h"
#include "wg/wg.h"

#define RECENT_HANDSHAKE 180 /* s: WireGuard rekeys every 120 s; a session older than 180 s is dead */

static int count_cb(const struct bw_cidr *c, uint32_t class, void *ctx)
{
	(void)c, (void)class;
	++*(size_t *)ctx;
	return 0;
}

static int count_peer_cb(const struct bw_cidr *c, const struct bw_peer *p, void *ctx)
{
	(void)c, (void)p;
	++*(size_t *)ctx;
	return 0;
}

/* Handshake age histogram bounds (seconds): WireGuard re-handshakes every 120 s under traffic,
 * a session without a handshake for 180 s is dead (REJECT_AFTER_TIME). */
static const int hs_le[] = { 60, 120, 180, 300, 600, 1800, 3600 };
#define HS_BUCKETS (sizeof(hs_le) / sizeof(hs_le[0]))

struct peer_counts {
	size_t configured, device, recent, stale, never;
	size_t hs_bucket[HS_BUCKETS]; /* peers with a handshake at most hs_le[i] s ago (cumulative) */
	size_t hs_count;              /* peers with a handshake at all */
	double hs_sum;                /* their ages added up */
	bool device_ok;
};

static void peer_counts(struct agent *a, struct peer_counts *pc)
{
	struct bw_wg_device *d = NULL;
	time_t now = time(NULL);

	memset(pc, 0, sizeof(*pc));
	pc->configured = a->have_applied ? a->applied.n_peers : 0;
	pc->device_ok = bw_wg_device_alive(a->wg_dev) && bw_wg_get(a->wg_dev, &d) == 0;
	if (!pc->device_ok)
		return;
	pc->device = d->n_peers;
	for (size_t i = 0; i < d->n_peers; i++) {
		int64_t hs = d->peers[i].last_handshake_sec, age = now - hs < 0 ? 0 : now - hs;
		if (hs) {
			pc->hs_count++;
			pc->hs_sum += (double)age;
			for (size_t k = 0; k < HS_BUCKETS; k++)
				pc->hs_bucket[k] += age <= hs_le[k];
		}
		if (!hs)
			pc->never++;
		else if (now - hs <= RECENT_HANDSHAKE)
			pc->recent++;
		else
			pc->stale++;
	}
	bw_wg_device_free(d);
}

bool bw_agent_ready(struct agent *a, char *why, size_t len)
{
	struct bw_dp_uplink u;
	size_t o = 0;
	bool ok = true;

#define WHY(...)                                                                   \
	do {                                                                       \
		ok = false;                                                        \
		if (why && o < len)                                                \
			o += (size_t)snprintf(why + o, len - o, __VA_ARGS__);      \
	} while (0)
	if (why && len)
		why[0] = '\0';
	for (size_t i = 0; i < a->n_uplinks; i++) {
		int r = bw_dp_uplink_check(a->pin_dir, a->uplinks[i], &u);
		if (r < 0)
			WHY("uplink %s: cannot check: %s\n", a->uplinks[i], strerror(-r));
		else if (u.state != BW_UPLINK_ENFORCED)
			WHY("uplink %s: not enforced: %s%s%s\n", u.name, bw_dp_uplink_state_name(u.state),
			    u.dir[0].n_before ? ": " : "", u.dir[0].n_before ? u.dir[0].before : "");
	}
	if (!a->n_uplinks)
		WHY("no uplinks configured\n");
	if (!bw_wg_device_alive(a->wg_dev))
		WHY("WireGuard device %s: missing\n", a->wg_dev);
	if (a->last_sync_result < 0)
		WHY("last sync failed: %s\n", strerror(-a->last_sync_result));
	if (a->mesh_wanted && !a->mesh.data)
		WHY("mesh secret: not fetched from the key service, peers are down (fail closed)\n");
#undef WHY
	return ok;
}

static void reply(struct evhttp_request *req, int code, const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Service Unavailable", body);
}

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics(struct agent *a, struct evbuffer *b)
{
	static const char *const dirs[2] = { "egress", "ingress" };
	struct bw_stat st[2][BW_REASON_MAX];
	struct bw_dp *dp = NULL;
	struct bw_config cfg = { 0 };
	struct peer_counts pc;
	size_t n_peer = 0, n_protect = 0;
	bool dp_ok = bw_dp_open(a->pin_dir, &dp) == 0 && bw_dp_stats_dir(dp, st) == 0 && bw_dp_config_get(dp, &cfg) == 0;

	metric(b, "bulwark_datapath_pinned", "gauge", "1 when the datapath maps are pinned and readable");
	evbuffer_add_printf(b, "bulwark_datapath_pinned %d\n", dp_ok);
	if (dp_ok) {
		metric(b, "bulwark_datapath_packets_total", "counter",
		       "Packets decided by the uplink programs, by reason and direction");
		for (unsigned d = 0; d < 2; d++)
			for (unsigned i = 0; i < BW_REASON_MAX; i++)
				evbuffer_add_printf(b, "bulwark_datapath_packets_total{reason=\"%s\",direction=\"%s\"} %llu\n",
						    bw_reason_name(i), dirs[d], (unsigned long long)st[d][i].packets);
		metric(b, "bulwark_datapath_bytes_total", "counter", "Bytes decided by the uplink programs, by reason and direction");
		for (unsigned d = 0; d < 2; d++)
			for (unsigned i = 0; i < BW_REASON_MAX; i++)
				evbuffer_add_printf(b, "bulwark_datapath_bytes_total{reason=\"%s\",direction=\"%s\"} %llu\n",
						    bw_reason_name(i), dirs[d], (unsigned long long)st[d][i].bytes);
		metric(b, "bulwark_datapath_events_lost_total", "counter",
		       "Drop events not emitted (rate limit or ring buffer full); the drops are still counted");
		evbuffer_add_printf(b, "bulwark_datapath_events_lost_total %llu\n",
				    (unsigned long long)(st[0][BW_REASON_EVENTS_LOST].packets + st[1][BW_REASON_EVENTS_LOST].packets));
		bw_dp_peers_foreach(dp, count_peer_cb, &n_peer);
		bw_dp_protect_foreach(dp, count_cb, &n_protect);
		metric(b, "bulwark_map_entries", "gauge", "Entries in a datapath map (v4 and v6 together)");
		evbuffer_add_printf(b, "bulwark_map_entries{map=\"bw_peer\"} %zu\n", n_peer);
		evbuffer_add_printf(b, "bulwark_map_entries{map=\"bw_protect\"} %zu\n", n_protect);
		metric(b, "bulwark_map_capacity", "gauge", "Capacity of a datapath map, per family");
		evbuffer_add_printf(b, "bulwark_map_capacity{map=\"bw_peer\"} %d\n", 262144);
		evbuffer_add_printf(b, "bulwark_map_capacity{map=\"bw_protect\"} %d\n", 4096);
		metric(b, "bulwark_flow_cache_generation", "gauge", "Flow cache generation (bumped on every map change)");
		evbuffer_add_printf(b, "bulwark_flow_cache_generation %llu\n", (unsigned long long)bw_dp_flow_gen(dp));
		metric(b, "bulwark_node_encryption", "gauge", "1 when node-to-node traffic is protected too");
		evbuffer_add_printf(b, "bulwark_node_encryption %d\n", !!(cfg.flags & BW_CFG_NODE_ENCRYPTION));
	}
	bw_dp_close(dp);

	metric(b, "bulwark_uplink_enforced", "gauge",
	       "1 when bulwark's filters are on the uplink, run our programs and nothing runs before them");
	for (size_t i = 0; i < a->n_uplinks; i++) {
		struct bw_dp_uplink u;
		if (bw_dp_uplink_check(a->pin_dir, a->uplinks[i], &u) < 0)
			u.state = BW_UPLINK_NOT_ATTACHED;
		evbuffer_add_printf(b, "bulwark_uplink_enforced{uplink=\"%s\",state=\"%s\"} %d\n", a->uplinks[i],
				    bw_dp_uplink_state_name(u.state), u.state == BW_UPLINK_ENFORCED);
	}
	metric(b, "bulwark_uplink_reattach_total", "counter", "Filters found missing and put back by the agent");
	evbuffer_add_printf(b, "bulwark_uplink_reattach_total %llu\n", (unsigned long long)a->reattaches);

	peer_counts(a, &pc);
	metric(b, "bulwark_wireguard_device_up", "gauge", "1 when the WireGuard device exists and answers");
	evbuffer_add_printf(b, "bulwark_wireguard_device_up %d\n", pc.device_ok);
	metric(b, "bulwark_wireguard_restores_total", "counter", "Times the agent brought the WireGuard device back");
	evbuffer_add_printf(b, "bulwark_wireguard_restores_total %llu\n", (unsigned long long)a->wg_restores);
	metric(b, "bulwark_peers", "gauge",
	       "Peers: configured; in the device by last handshake (recent: within 180 s, stale: older, never)");
	evbuffer_add_printf(b, "bulwark_peers{state=\"configured\"} %zu\n", pc.configured);
	evbuffer_add_printf(b, "bulwark_peers{state=\"in_device\"} %zu\n", pc.device);
	evbuffer_add_printf(b, "bulwark_peers{state=\"handshake_recent\"} %zu\n", pc.recent);
	evbuffer_add_printf(b, "bulwark_peers{state=\"handshake_stale\"} %zu\n", pc.stale);
	evbuffer_add_printf(b, "bulwark_peers{state=\"handshake_never\"} %zu\n", pc.never);

	metric(b, "bulwark_peer_handshake_age_seconds", "histogram",
	       "Age of each device peer's latest handshake (peers that never had one are not counted: see bulwark_peers)");
	for (size_t k = 0; k < HS_BUCKETS; k++)
		evbuffer_add_printf(b, "bulwark_peer_handshake_age_seconds_bucket{le=\"%d\"} %zu\n", hs_le[k], pc.hs_bucket[k]);
	evbuffer_add_printf(b, "bulwark_peer_handshake_age_seconds_bucket{le=\"+Inf\"} %zu\n", pc.hs_count);
	evbuffer_add_printf(b, "bulwark_peer_handshake_age_seconds_sum %.0f\n", pc.hs_sum);
	evbuffer_add_printf(b, "bulwark_peer_handshake_age_seconds_count %zu\n", pc.hs_count);
	metric(b, "bulwark_sync_total", "counter", "Peer syncs run (change, periodic reconcile, full)");
	evbuffer_add_printf(b, "bulwark_sync_total %llu\n", (unsigned long long)a->syncs);
	metric(b, "bulwark_sync_errors_total", "counter", "Syncs that failed (configuration rejected or apply failed)");
	evbuffer_add_printf(b, "bulwark_sync_errors_total %llu\n", (unsigned long long)a->sync_errors);
	metric(b, "bulwark_sync_duration_seconds", "gauge", "Duration of the last sync");
	evbuffer_add_printf(b, "bulwark_sync_duration_seconds %.6f\n", a->last_sync_seconds);
	metric(b, "bulwark_last_sync_success_timestamp_seconds", "gauge", "Wall clock of the last successful sync");
	evbuffer_add_printf(b, "bulwark_last_sync_success_timestamp_seconds %lld\n", (long long)a->last_sync_ok);
	metric(b, "bulwark_mesh_secret_held", "gauge",
	       "With MeshSecret: 1 when this node holds the mesh secret (its peers have their PSKs), 0 when its peers are down");
	evbuffer_add_printf(b, "bulwark_mesh_secret_held %d\n", a->mesh_wanted ? a->mesh.data != NULL : 0);
	metric(b, "bulwark_mesh_fetch_errors_total", "counter", "Failed mesh secret fetches (attestation or key service)");
	evbuffer_add_printf(b, "bulwark_mesh_fetch_errors_total %llu\n", (unsigned long long)a->mesh_fetch_errors);
	if (a->k8s) {
		metric(b, "bulwark_kubernetes_api_reachable", "gauge",
		       "PeerSource = kubernetes: 1 while the Node list/watch works; 0: the last applied peers stay in place");
		evbuffer_add_printf(b, "bulwark_kubernetes_api_reachable %d\n", agent_k8s_reachable());
	}
	metric(b, "bulwark_ready", "gauge", "1 when enforcement is complete (what /readyz answers)");
	evbuffer_add_printf(b, "bulwark_ready %d\n", bw_agent_ready(a, NULL, 0));
}

void bw_agent_sample(struct agent *a)
{
	struct bw_dp *dp = NULL;

	if (bw_dp_open(a->pin_dir, &dp) == 0 && bw_dp_stats(dp, a->samples[a->next_sample]) == 0) {
		a->sample_time[a->next_sample] = time(NULL);
		a->next_sample = (a->next_sample + 1) % ARRAY_SIZE(a->samples);
		if (a->n_samples < ARRAY_SIZE(a->samples))
			a->n_samples++;
	}
	bw_dp_close(dp);
}

/* Drops per reason since the sample closest to a minute ago (or the oldest one). */
static struct json_object *recent_drops(struct agent *a)
{
	struct json_object *j = json_object_new_object();
	struct bw_stat now[BW_REASON_MAX];
	struct bw_dp *dp = NULL;
	unsigned oldest;
	time_t t = time(NULL);

	if (!a->n_samples || bw_dp_open(a->pin_dir, &dp) < 0 || bw_dp_stats(dp, now) < 0) {
		bw_dp_close(dp);
		return j;
	}
	bw_dp_close(dp);
	oldest = (a->next_sample + ARRAY_SIZE(a->samples) - a->n_samples) % ARRAY_SIZE(a->samples);
	for (unsigned k = 0; k < a->n_samples; k++) { /* the newest sample at least 60 s old */
		unsigned i = (oldest + k) % ARRAY_SIZE(a->samples);
		if (t - a->sample_time[i] >= 60)
			oldest = i;
	}
	json_object_object_add(j, "seconds", json_object_new_int64(t - a->sample_time[oldest]));
	for (unsigned r = 0; r < BW_REASON_MAX; r++)
		if (strstr(bw_reason_name(r), "dropped") && now[r].packets >= a->samples[oldest][r].packets)
			json_object_object_add(j, bw_reason_name(r),
					       json_object_new_uint64(now[r].packets - a->samples[oldest][r].packets));
	return j;
}

static struct json_object *status_json(struct agent *a)
{
	struct json_object *j = json_object_new_object(), *ups = json_object_new_array();
	struct peer_counts pc;
	char why[1024];
	bool ready = bw_agent_ready(a, why, sizeof(why));

	peer_counts(a, &pc);
	json_object_object_add(j, "ready", json_object_new_boolean(ready));
	json_object_object_add(j, "not_ready", json_object_new_string(why));
	for (size_t i = 0; i < a->n_uplinks; i++)
		json_object_array_add(ups, json_object_new_string(a->uplinks[i]));
	json_object_object_add(j, "uplinks", ups);
	json_object_object_add(j, "reattaches", json_object_new_uint64(a->reattaches));
	json_object_object_add(j, "wireguard_device_up", json_object_new_boolean(pc.device_ok));
	json_object_object_add(j, "wireguard_restores", json_object_new_uint64(a->wg_restores));
	json_object_object_add(j, "peers_configured", json_object_new_uint64(pc.configured));
	json_object_object_add(j, "peers_handshake_recent", json_object_new_uint64(pc.recent));
	json_object_object_add(j, "syncs", json_object_new_uint64(a->syncs));
	json_object_object_add(j, "sync_errors", json_object_new_uint64(a->sync_errors));
	json_object_object_add(j, "last_sync_result", json_object_new_string(a->last_sync_result < 0 ? strerror(-a->last_sync_result) : "ok"));
	json_object_object_add(j, "last_sync_success", json_object_new_int64(a->last_sync_ok));
	json_object_object_add(j, "last_sync_seconds", json_object_new_double(a->last_sync_seconds));
	if (a->k8s)
		json_object_object_add(j, "kubernetes_api", json_object_new_string(agent_k8s_reachable()
			? "reachable" : "unreachable: keeping the last applied peers"));
	if (a->mesh_wanted)
		json_object_object_add(j, "mesh_secret", json_object_new_string(a->mesh.data
			? a->mesh_path : "not held: peers down (fail closed)"));
	json_object_object_add(j, "drops_recent", recent_drops(a));
	return j;
}

static void route(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	char why[1024];

	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (!path)
		path = "/";
	if (!strcmp(path, "/metrics")) {
		metrics(a, b);
		reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	} else if (!strcmp(path, "/healthz")) {
		evbuffer_add_printf(b, "ok\n");
		reply(req, 200, "text/plain; charset=utf-8", b);
	} else if (!strcmp(path, "/readyz")) {
		bool ok = bw_agent_ready(a, why, sizeof(why));
		evbuffer_add_printf(b, "%s", ok ? "ready\n" : why);
		reply(req, ok ? 200 : 503, "text/plain; charset=utf-8", b);
	} else if (!strcmp(path, "/status")) {
		struct json_object *j = status_json(a);
		evbuffer_add_printf(b, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
		reply(req, 200, "application/json", b);
	} else {
		evbuffer_add_printf(b, "not found: try /metrics, /healthz, /readyz, /status\n");
		reply(req, 404, "text/plain; charset=utf-8", b);
	}
	evbuffer_free(b);
}

int bw_agent_http_start(struct agent *a, const char *addr)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	long port;
	char *end;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:9962 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (!(a->http = evhttp_new(a->base)))
		return -ENOMEM;
	evhttp_set_gencb(a->http, route, a);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_timeout(a->http, 5);
	if (evhttp_bind_socket(a->http, host, (uint16_t)port) < 0) {
		evhttp_free(a->http);
		a->http = NULL;
		return -EADDRNOTAVAIL;
	}
	return 0;
}

void bw_agent_http_stop(struct agent *a)
{
	if (a->http)
		evhttp_free(a->http);
	a->http = NULL;
}
