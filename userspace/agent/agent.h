/* SPDX-License-Identifier: GPL-2.0-only */
/* bulwarkd internals: the agent's state, shared by the main loop and the metrics/health server. */
#ifndef BULWARK_AGENT_H
#define BULWARK_AGENT_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <event2/event.h>
#include "datapath/datapath.h"
#include "wireguard-conf/conf.h"

struct mnl_socket;
struct evhttp;

struct agent {
	const char *config, *pin_dir;
	struct event_base *base;
	struct event *debounce;
	int ifd;
	char peers_dir[PATH_MAX];
	struct bw_conf applied; /* what the last successful sync put in place */
	bool have_applied;
	bool rtnl_hit;
	/* Enforcement watch: rtnetlink link + tc events, checked against the uplinks. */
	struct mnl_socket *rtnl;
	struct event *rtnl_ev, *check_ev, *wg_retry;
	char uplinks[BW_CONF_MAX_LIST][IF_NAMESIZE];
	size_t n_uplinks;
	char wg_dev[IF_NAMESIZE];
	struct bw_dp_uplink up[BW_CONF_MAX_LIST]; /* the last check's result */
	bool wg_missing;
	/* For status and metrics. */
	uint64_t reattaches, syncs, sync_errors, wg_restores;
	double last_sync_seconds;  /* duration of the last sync */
	time_t last_sync_ok;       /* wall clock of the last successful sync */
	int last_sync_result;      /* 0 or -errno */
	struct evhttp *http;
	/* Counter samples every 10 s, the last 7: drops "in the last minute" for /status. */
	struct event *sample_ev;
	struct bw_stat samples[7][BW_REASON_MAX];
	time_t sample_time[7];
	unsigned n_samples, next_sample;
	/* Attested mesh ([Node] MeshSecret): the secret of epoch mesh_path, in locked memory. */
	struct bw_secret mesh;
	char mesh_path[256];
	struct event *mesh_retry;
	unsigned mesh_backoff; /* seconds until the next fetch after a failure; 0: none pending */
	bool mesh_wanted;      /* the configuration names a mesh secret */
	bool k8s;              /* PeerSource = kubernetes */
	uint64_t mesh_fetch_errors;
};

#define BW_AGENT_SAMPLE_SECONDS 10
void bw_agent_sample(struct agent *a);

/* Serve /metrics, /healthz, /readyz, /status on addr ("host:port", "[v6]:port"). */
int bw_agent_http_start(struct agent *a, const char *addr);
void bw_agent_http_stop(struct agent *a);
/* Is enforcement complete now (fresh check, no repair)? Fills why (may be NULL) when not. */
bool bw_agent_ready(struct agent *a, char *why, size_t len);


#endif
