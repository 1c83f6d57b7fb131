// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwarkd's side of the Kubernetes peer source ([Node] PeerSource = kubernetes, userspace/k8s).
 * The watcher thread hands complete peer sets over here; the event loop is woken by activating
 * an event from the thread (libevent's pthreads locking, enabled in main)
 * and runs its ordinary sync, whose load() swaps the latest set into the configuration
 * (agent_k8s_fill). One desired state, one reconcile, for both peer sources. A set is only
 * ever replaced by another complete set: an unreachable API keeps the last one applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "common/common.h"
#include "k8s/k8s.h"
#include "wg/wg.h"
#include "net/net.h"
#include "agent/k8s_source.h"

static struct {
	pthread_mutex_t lock;
	struct bw_k8s_set *set;    /* the latest complete set; NULL: none yet */
	bool reachable;
	struct event *ev;          /* activated by the watcher thread */
	struct bw_k8s_watcher *w;
	void (*on_change)(void *);
	void *arg;
	uint8_t pub[32];           /* the public key the watcher publishes */
} ks = { .lock = PTHREAD_MUTEX_INITIALIZER, .reachable = true };

static void wake(void)
{
	event_active(ks.ev, EV_READ, 0);
}

static void on_set(void *arg, struct bw_k8s_set *set)
{
	(void)arg;
	pthread_mutex_lock(&ks.lock);
	bw_k8s_set_free(ks.set);
	ks.set = set;
	pthread_mutex_unlock(&ks.lock);
	wake();
}

static void on_state(void *arg, bool reachable, const char *why)
{
	(void)arg, (void)why;
	pthread_mutex_lock(&ks.lock);
	ks.reachable = reachable;
	pthread_mutex_unlock(&ks.lock);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	ks.on_change(ks.arg);
}

bool agent_k8s_reachable(void)
{
	bool r;

	pthread_mutex_lock(&ks.lock);
	r = ks.reachable;
	pthread_mutex_unlock(&ks.lock);
	return r;
}

int agent_k8s_fill(struct bw_conf *c)
{
	struct bw_conf_peer *peers = NULL;
	size_t n = 0;

	if (c->node.peer_source != BW_PEERS_KUBERNETES)
		return 0;
	pthread_mutex_lock(&ks.lock);
	if (ks.set) {
		if (!(peers = calloc(ks.set->n_peers ? ks.set->n_peers : 1, sizeof(*peers)))) {
			pthread_mutex_unlock(&ks.lock);
			return -ENOMEM;
		}
		for (; n < ks.set->n_peers; n++) {
			const struct bw_conf_peer *p = &ks.set->peers[n];
			peers[n] = *p;
			if (!(peers[n].allowed_ips = calloc(p->n_allowed_ips, sizeof(*p->allowed_ips)))) {
				pthread_mutex_unlock(&ks.lock);
				bw_conf_peers_free(peers, n);
				free(peers);
				return -ENOMEM;
			}
			memcpy(peers[n].allowed_ips, p->allowed_ips, p->n_allowed_ips * sizeof(*p->allowed_ips));
		}
		memcpy(c->node.pod_cidrs, ks.set->pod_cidrs, sizeof(ks.set->pod_cidrs));
		c->node.n_pod_cidrs = ks.set->n_pod_cidrs;
	}
	pthread_mutex_unlock(&ks.lock);
	bw_conf_peers_free(c->peers, c->n_peers);
	free(c->peers);
	c->peers = peers;
	c->n_peers = n;
	return 0;
}

/* This node's public key from its key file; 0 or -errno (logged). */
static int node_public_key(const struct bw_conf *c, uint8_t pub[32])
{
	struct bw_secret priv = { 0 };
	int r;

	if ((r = bw_net_node_key(c, false, &priv, NULL)) < 0) {
		bw_err("kubernetes: node key: %s", strerror(-r));
		return r;
	}
	r = bw_wg_public_key(priv.data, pub);
	bw_secret_free(&priv);
	if (r < 0)
		bw_err("kubernetes: public key: %s", strerror(-r));
	return r;
}

void agent_k8s_key_applied(const struct bw_conf *c)
{
	uint8_t pub[32];
	char b64[45];

	if (!ks.w || c->node.peer_source != BW_PEERS_KUBERNETES || node_public_key(c, pub) < 0 ||
	    !memcmp(pub, ks.pub, 32))
		return;
	memcpy(ks.pub, pub, 32);
	bw_key_to_base64(pub, b64);
	bw_info("kubernetes: WireGuard key rotated (now %.8s...): publishing it on the Node", b64);
	bw_k8s_set_public_key(ks.w, pub);
}

int agent_k8s_start(const struct bw_conf *c, struct event_base *base, void (*on_change)(void *), void *arg)
{
	struct bw_k8s_config cfg;
	char err[BW_ERR_LEN];
	int r;

	if (c->node.peer_source != BW_PEERS_KUBERNETES)
		return 0;
	if ((r = node_public_key(c, ks.pub)) < 0)
		return r;
	if ((r = bw_k8s_config_from(c, ks.pub, &cfg, err, sizeof(err))) < 0) {
		bw_err("%s", err);
		return r;
	}
	cfg.log = bw_log_hook; /* the watcher's reports: the one logger */
	ks.on_change = on_change;
	ks.arg = arg;
	if (!(ks.ev = event_new(base, -1, 0, on_wake, NULL)))
		return -ENOMEM;
	if ((r = bw_k8s_start(&cfg, on_set, on_state, NULL, &ks.w)) < 0) {
		bw_err("kubernetes: starting the watcher: %s", strerror(-r));
		return r;
	}
	bw_info("kubernetes: watching Nodes at %s as node %s", cfg.api, cfg.node);
	return 0;
}

void agent_k8s_stop(void)
{
	bw_k8s_stop(ks.w);
	ks.w = NULL;
	if (ks.ev)
		event_free(ks.ev);
	ks.ev = NULL;
	pthread_mutex_lock(&ks.lock);
	bw_k8s_set_free(ks.set);
	ks.set = NULL;
	pthread_mutex_unlock(&ks.lock);
}
