// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwarkd: the node agent. Brings WireGuard and the datapath up from the node file, then keeps
 * peers in step with the peers directory:
 *   - inotify on the peers directory and the node file's, debounced (100 ms), applies a change
 *     within a second, also kubelet's ..data swaps in ConfigMap volumes (wireguard-conf/watch.c);
 *   - SIGHUP: full resync (node file re-read, device, datapath programs replaced, maps applied);
 *   - every --resync seconds (default 60): reconcile against a fresh device dump and map walk,
 *     repairing drift made by hand. Changes in between are applied as a difference against the
 *     last applied configuration, without a dump (a one-peer change costs one peer's syscalls);
 *   - SIGTERM/SIGINT: exit, leaving enforcement in place (pinned maps, attached programs).
 * A configuration that fails to load is logged with file:line and changes nothing.
 *
 * usage: bulwarkd [--config FILE] [--pin-dir DIR] [--resync SECONDS]
 * exit: 0 on SIGTERM/SIGINT, 1 when the first bring-up fails, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <event2/event.h>
#include "common/common.h"
#include "net/net.h"
#include "wireguard-conf/conf.h"
#include "agent/k8s_source.h"

struct agent {
	const char *config, *pin_dir;
	struct event_base *base;
	struct event *debounce;
	int ifd;
	char peers_dir[PATH_MAX];
	struct bw_conf applied; /* what the last successful sync put in place */
	bool have_applied;
	/* Attested mesh ([Node] MeshSecret): the secret of epoch mesh_path, in locked memory. */
	struct bw_secret mesh;
	char mesh_path[256];
	struct event *mesh_retry;
	unsigned mesh_backoff; /* seconds until the next fetch after a failure; 0: none pending */
};

enum sync_mode { SYNC_CHANGE, SYNC_RECONCILE, SYNC_FULL };

/* The node file and peers directory watch (wireguard-conf/watch.c); a->ifd is its fd. */
static struct bw_conf_watch conf_watch = { .fd = -1 };

/* A peer set shared by all nodes holds this node too: say once that its file is left out. */
static void note_self_peer(const struct bw_conf *c)
{
	static char said[sizeof(c->self_peer)];

	if (c->self_peer[0] && strcmp(said, c->self_peer))
		bw_info("%s is this node (its public key): ignored", c->self_peer);
	memcpy(said, c->self_peer, sizeof(said));
}

#define MESH_BACKOFF_MAX 30

static void mesh_schedule(struct agent *a)
{
	struct timeval tv = { a->mesh_backoff, 0 };

	if (a->mesh_retry && a->mesh_backoff)
		evtimer_add(a->mesh_retry, &tv);
}

/*
 * With MeshSecret, every peer gets its derived PSK or the node has no peers at all: never a
 * peer without one. A new epoch (another resource path) is fetched when the node file names it;
 * until that succeeds the previous epoch's secret stays in use (pairs that already moved on
 * drop, nothing goes out in clear); with no secret at all the peers stay down. Failed fetches
 * are retried with exponential backoff (1 s .. 30 s).
 */
static int mesh_prepare(struct agent *a, struct bw_conf *c)
{
	char err[256];
	int r;

	if (!c->node.mesh_secret[0]) {
		if (a->mesh.data)
			bw_info("MeshSecret removed from %s: peers use the PSKs their files give", a->config);
		bw_secret_free(&a->mesh);
		a->mesh_path[0] = '\0';
		return 0;
	}
	if (!a->mesh.data || strcmp(a->mesh_path, c->node.mesh_secret)) {
		struct bw_secret s = { 0 };

		r = bw_net_mesh_fetch(c, 1, &s, err, sizeof(err));
		if (r == 0) {
			bw_secret_free(&a->mesh);
			a->mesh = s;
			snprintf(a->mesh_path, sizeof(a->mesh_path), "%s", c->node.mesh_secret);
			a->mesh_backoff = 0;
			bw_info("mesh secret %s fetched from %s (attester %s)", a->mesh_path, c->node.key_service,
				c->node.attester);
		} else {
			a->mesh_backoff = a->mesh_backoff ? a->mesh_backoff * 2 : 1;
			if (a->mesh_backoff > MESH_BACKOFF_MAX)
				a->mesh_backoff = MESH_BACKOFF_MAX;
			bw_err("mesh secret %s from %s: %s; %s, retry in %us", c->node.mesh_secret, c->node.key_service,
			       err, a->mesh.data ? "keeping the previous epoch" : "peers stay down (fail closed)",
			       a->mesh_backoff);
			mesh_schedule(a);
		}
	}
	if (!a->mesh.data) {
		bw_net_mesh_drop_peers(c);
		return 0;
	}
	if ((r = bw_net_mesh_set(c, &a->mesh)) < 0)
		bw_err("mesh PSKs: %s; peers stay down", strerror(-r));
	return 0;
}

static int load(struct agent *a, struct bw_conf *c)
{
	char err[BW_CONF_ERR_LEN];
	int r = bw_conf_load(a->config, c, err, sizeof(err));

	if (r < 0)
		bw_err("configuration rejected, nothing changed: %s", err);
	else
		note_self_peer(c);
	/* PeerSource = kubernetes: the peers are the latest set from the cluster (k8s_source.c). */
	if (r >= 0 && (r = agent_k8s_fill(c)) < 0) {
		bw_err("kubernetes peers: %s; nothing changed", strerror(-r));
		bw_conf_free(c);
	}
	return r;
}

static int sync_apply(struct agent *a, const struct bw_conf *c, enum sync_mode mode, struct bw_net_result *res)
{
	switch (mode) {
	case SYNC_FULL:
		return bw_net_up(c, a->pin_dir, res);
	case SYNC_CHANGE:
		if (a->have_applied)
			return bw_net_reconcile_since(&a->applied, c, a->pin_dir, res);
		/* fall through */
	default:
		return bw_net_reconcile(c, a->pin_dir, res);
	}
}

static void sync_peers(struct agent *a, enum sync_mode mode)
{
	static const char *const what[] = { "sync", "reconcile", "resync" };
	struct bw_conf c;
	struct bw_net_result res;
	int r;

	if (load(a, &c) < 0)
		return;
	mesh_prepare(a, &c);
	r = sync_apply(a, &c, mode, &res);
	if (a->have_applied)
		bw_conf_free(&a->applied);
	/* After a failure nobody knows what is in place: the next sync dumps and walks. */
	a->have_applied = r >= 0;
	if (r < 0) {
		bw_err("%s failed: %s", what[mode], strerror(-r));
		bw_conf_free(&c);
		return;
	}
	if (res.peers_added || res.peers_updated || res.peers_removed || res.prefixes_added || res.prefixes_removed)
		bw_info("%s: peers +%u ~%u -%u, allowed IPs +%u -%u", what[mode], res.peers_added,
			res.peers_updated, res.peers_removed, res.prefixes_added, res.prefixes_removed);
	a->applied = c;
}

static void on_debounce(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	int r;
	(void)fd, (void)what;
	/* Re-armed before reading: a kubelet ..data swap retires what the watches followed. */
	if ((r = bw_conf_watch_arm(&conf_watch, a->config, a->peers_dir)) < 0)
		bw_err("watching %s: %s (changes wait for the periodic reconcile)", a->peers_dir, strerror(-r));
	sync_peers(arg, SYNC_CHANGE);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct timeval tv = { 0, 100 * 1000 };
	(void)what;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* Editors and `mv` produce bursts: sync once they settle. */
	evtimer_add(a->debounce, &tv);
}

static void on_mesh_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sync_peers(arg, SYNC_RECONCILE);
}

static void on_k8s_change(void *arg)
{
	sync_peers(arg, SYNC_CHANGE);
}

static void on_periodic(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sync_peers(arg, SYNC_RECONCILE);
}

static void on_sighup(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bw_info("SIGHUP: full resync");
	sync_peers(arg, SYNC_FULL);
}

static void on_exit_signal(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	(void)fd, (void)what;
	bw_info("exiting; enforcement stays in place");
	event_base_loopexit(a->base, NULL);
}

static int watch(struct agent *a, const struct bw_conf *c)
{
	char tmp[PATH_MAX];

	if (c->node.peer_source == BW_PEERS_KUBERNETES) { /* no peers directory: the node file's */
		snprintf(tmp, sizeof(tmp), "%s", a->config);
		snprintf(a->peers_dir, sizeof(a->peers_dir), "%s", dirname(tmp));
	} else if (c->node.peers_dir[0] == '/') {
		snprintf(a->peers_dir, sizeof(a->peers_dir), "%s", c->node.peers_dir);
	} else {
		snprintf(tmp, sizeof(tmp), "%s", a->config);
		snprintf(a->peers_dir, sizeof(a->peers_dir), "%s/%s", dirname(tmp), c->node.peers_dir);
	}
	if (bw_conf_watch_init(&conf_watch) < 0)
		return -errno;
	a->ifd = conf_watch.fd;
	return bw_conf_watch_arm(&conf_watch, a->config, a->peers_dir);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "resync", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct agent a = { .config = "/etc/bulwark/bulwark.conf", .ifd = -1 };
	struct timeval periodic = { 60, 0 };
	struct bw_conf c;
	struct bw_net_result res;
	struct event *ev[5];
	int ch, r;

	bw_log_set_prefix("bulwarkd");
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a.config = optarg; break;
		case 'p': a.pin_dir = optarg; break;
		case 'r': periodic.tv_sec = atol(optarg) > 0 ? atol(optarg) : 60; break;
		default:
			fprintf(stderr, "usage: bulwarkd [--config FILE] [--pin-dir DIR] [--resync SECONDS]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (load(&a, &c) < 0)
		return 1;
	mesh_prepare(&a, &c);
	if ((r = bw_net_up(&c, a.pin_dir, &res)) < 0) {
		bw_err("bring-up failed: %s", strerror(-r));
		bw_conf_free(&c);
		return 1;
	}
	bw_info("up: %s on %s, %zu peers", c.iface.device, c.node.uplinks[0], c.n_peers);
	r = watch(&a, &c);
	if (r < 0) {
		bw_err("watching %s: %s", a.peers_dir, strerror(-r));
		bw_conf_free(&c);
		return 1;
	}
	/* Changes made while we were coming up predate the watch: catch them now. */
	sync_peers(&a, SYNC_RECONCILE);
	bw_info("watching %s", a.peers_dir);
	a.base = event_base_new();
	/* --- PeerSource = kubernetes: a watcher thread feeds peer sets to sync (k8s_source.c) --- */
	r = agent_k8s_start(&c, a.base, on_k8s_change, &a);
	bw_conf_free(&c);
	if (r < 0)
		return 1;
	/* --- end kubernetes --- */
	a.debounce = evtimer_new(a.base, on_debounce, &a);
	a.mesh_retry = evtimer_new(a.base, on_mesh_retry, &a);
	mesh_schedule(&a); /* a fetch that failed during bring-up */
	ev[0] = event_new(a.base, a.ifd, EV_READ | EV_PERSIST, on_inotify, &a);
	ev[1] = event_new(a.base, -1, EV_PERSIST, on_periodic, &a);
	ev[2] = evsignal_new(a.base, SIGHUP, on_sighup, &a);
	ev[3] = evsignal_new(a.base, SIGTERM, on_exit_signal, &a);
	ev[4] = evsignal_new(a.base, SIGINT, on_exit_signal, &a);
	event_add(ev[0], NULL);
	event_add(ev[1], &periodic);
	for (int i = 2; i < 5; i++)
		event_add(ev[i], NULL);
	event_base_dispatch(a.base);
	for (int i = 0; i < 5; i++)
		event_free(ev[i]);
	event_free(a.debounce);
	event_free(a.mesh_retry);
	bw_secret_free(&a.mesh);
	agent_k8s_stop();
	event_base_free(a.base);
	close(a.ifd);
	if (a.have_applied)
		bw_conf_free(&a.applied);
	return 0;
}
