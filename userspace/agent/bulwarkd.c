// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwarkd: the node agent. Brings WireGuard and the datapath up from the node file, then keeps
 * peers in step with the peers directory:
 *   - inotify on the peers directory and the node file's, debounced (100 ms), applies a change
 *     within a second, also kubelet's ..data swaps in ConfigMap volumes (wireguard-conf/watch.c);
 *   - SIGHUP: full resync (node file re-read, device and its key file, datapath programs replaced,
 *     maps applied; with PeerSource = kubernetes a rotated key is then published on the Node);
 *   - every --resync seconds (default 60): reconcile against a fresh device dump and map walk,
 *     repairing drift made by hand. Changes in between are applied as a difference against the
 *     last applied configuration, without a dump (a one-peer change costs one peer's syscalls);
 *   - SIGTERM/SIGINT: exit, leaving enforcement in place (pinned maps, attached programs).
 * A configuration that fails to load is logged with file:line and changes nothing.
 *
 * usage: bulwarkd [--config FILE] [--pin-dir DIR] [--resync SECONDS] [--node-name NAME] [--kubeconfig FILE]
 * exit: 0 on SIGTERM/SIGINT, 1 when the first bring-up fails, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <sys/inotify.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <bpf/libbpf.h>
#include "common/common.h"
#include "datapath/datapath.h"
#include "net/net.h"
#include "wg/wg.h"
#include "wireguard-conf/conf.h"
#include "agent/agent.h"
#include "agent/k8s_source.h"
#include "agent/mesh_source.h"

enum sync_mode { SYNC_CHANGE, SYNC_RECONCILE, SYNC_FULL };

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
 * drop, nothing goes out in clear); with no secret at all the peers stay down. The fetch runs on
 * a worker thread (mesh_source.c: a key service that never answers stalls no health probe,
 * netlink event or re-attach); its result comes back through mesh_done. Failed fetches are
 * retried with exponential backoff (1 s .. 30 s).
 */
static int mesh_prepare(struct agent *a, struct bw_conf *c)
{
	struct bw_notes notes = { 0 };
	int r;

	a->mesh_wanted = c->node.mesh_secret[0] != '\0';
	if (!c->node.mesh_secret[0]) {
		if (a->mesh.data)
			bw_info("MeshSecret removed from %s: peers use the PSKs their files give", a->config);
		bw_secret_free(&a->mesh);
		a->mesh_path[0] = '\0';
		return 0;
	}
	/* One fetch at a time; after a failure the next waits for the backoff timer. */
	if ((!a->mesh.data || strcmp(a->mesh_path, c->node.mesh_secret)) && !agent_mesh_busy() &&
	    !(a->mesh_retry && evtimer_pending(a->mesh_retry, NULL)))
		agent_mesh_request(c);
	if (!a->mesh.data) {
		bw_net_mesh_drop_peers(c);
		return 0;
	}
	r = bw_net_mesh_set(c, &a->mesh, &notes);
	bw_notes_log(&notes);
	if (r < 0)
		bw_err("mesh PSKs: %s; peers stay down", strerror(-r));
	return 0;
}

static void sync_peers(struct agent *a, enum sync_mode mode);

static bool full_after_mesh; /* a SIGHUP's full resync waits for the new epoch's fetch */

/* A fetch finished (in the loop): take the secret over and apply it, or back off. */
static void mesh_done(void *arg, struct agent_mesh_result *res)
{
	struct agent *a = arg;
	enum sync_mode mode = full_after_mesh ? SYNC_FULL : SYNC_RECONCILE;

	full_after_mesh = false;
	if (res->r == 0) {
		bw_secret_free(&a->mesh);
		a->mesh = res->secret;
		res->secret = (struct bw_secret){ 0 };
		snprintf(a->mesh_path, sizeof(a->mesh_path), "%s", res->path);
		a->mesh_backoff = 0;
		bw_info("mesh secret %s fetched from %s (attester %s)", a->mesh_path, res->from, res->attester);
		sync_peers(a, mode); /* every peer gets its PSK now (or the new epoch's) */
		return;
	}
	a->mesh_fetch_errors++;
	a->mesh_backoff = a->mesh_backoff ? a->mesh_backoff * 2 : 1;
	if (a->mesh_backoff > MESH_BACKOFF_MAX)
		a->mesh_backoff = MESH_BACKOFF_MAX;
	bw_err("mesh secret %s from %s: %s; %s, retry in %us", res->path, res->from, res->err,
	       a->mesh.data ? "keeping the previous epoch" : "peers stay down (fail closed)", a->mesh_backoff);
	mesh_schedule(a);
	if (mode == SYNC_FULL)
		sync_peers(a, SYNC_FULL); /* the SIGHUP's resync, with the previous epoch */
}

static int load(struct agent *a, struct bw_conf *c)
{
	char err[BW_ERR_LEN];
	int r = bw_conf_load(a->config, c, err, sizeof(err));

	if (r < 0) {
		bw_err("configuration rejected, nothing changed: %s", err);
		return r;
	}
	/* The uplinks and device the watch checks follow the configuration. */
	a->n_uplinks = c->node.n_uplinks;
	for (size_t i = 0; i < c->node.n_uplinks; i++)
		snprintf(a->uplinks[i], sizeof(a->uplinks[i]), "%s", c->node.uplinks[i]);
	snprintf(a->wg_dev, sizeof(a->wg_dev), "%s", c->iface.device);
	a->k8s = c->node.peer_source == BW_PEERS_KUBERNETES;
	note_self_peer(c);
	/* PeerSource = kubernetes: the peers are the latest set from the cluster (k8s_source.c). */
	if ((r = agent_k8s_fill(c)) < 0) {
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

static int peer_key_cmp(const void *x, const void *y)
{
	return memcmp((*(const struct bw_conf_peer *const *)x)->public_key,
		      (*(const struct bw_conf_peer *const *)y)->public_key, 32);
}

static const struct bw_conf_peer **by_key(const struct bw_conf *c)
{
	const struct bw_conf_peer **v = calloc(c->n_peers + 1, sizeof(*v));

	for (size_t i = 0; v && i < c->n_peers; i++)
		v[i] = &c->peers[i];
	if (v)
		qsort(v, c->n_peers, sizeof(*v), peer_key_cmp);
	return v;
}

static void log_peer(const char *what, const struct bw_conf_peer *p)
{
	char key[45];

	bw_key_to_base64(p->public_key, key);
	bw_info("peer %s: node=%s key=%.8s file=%s", what, p->node[0] ? p->node : "-", key, p->file);
}

/* Name the peers a sync added, changed or removed (by node and short key), at most 20 lines. */
static void log_peer_changes(const struct bw_conf *old, const struct bw_conf *c)
{
	const struct bw_conf_peer **o = by_key(old), **n = by_key(c);
	size_t i = 0, j = 0, lines = 0;

	while (o && n && (i < old->n_peers || j < c->n_peers) && lines < 20) {
		int d = i == old->n_peers ? 1 : j == c->n_peers ? -1 : peer_key_cmp(&o[i], &n[j]);

		if (d < 0) {
			log_peer("removed", o[i++]);
			lines++;
		} else if (d > 0) {
			log_peer("added", n[j++]);
			lines++;
		} else {
			const struct bw_conf_peer *p = o[i++], *q = n[j++];
			bool same = bw_endpoint_eq(&p->endpoint, &q->endpoint) && p->keepalive == q->keepalive &&
				    p->has_psk == q->has_psk && p->n_allowed_ips == q->n_allowed_ips &&
				    !memcmp(p->allowed_ips, q->allowed_ips, p->n_allowed_ips * sizeof(*p->allowed_ips));
			if (!same) {
				log_peer("changed", q);
				lines++;
			}
		}
	}
	free(o);
	free(n);
}

static void sync_peers(struct agent *a, enum sync_mode mode)
{
	static const char *const what[] = { "sync", "reconcile", "resync" };
	struct bw_conf c;
	struct bw_net_result res;
	int r;

	double t0 = now_mono();

	if (load(a, &c) < 0) {
		a->sync_errors++; /* nothing changed: enforcement stays as it was, readiness too */
		return;
	}
	mesh_prepare(a, &c);
	r = sync_apply(a, &c, mode, &res);
	bw_notes_log(&res.notes);
	a->syncs++;
	a->last_sync_seconds = now_mono() - t0;
	a->last_sync_result = r < 0 ? r : 0;
	if (r < 0)
		a->sync_errors++;
	else
		a->last_sync_ok = time(NULL);
	if (r >= 0 && a->have_applied)
		log_peer_changes(&a->applied, &c);
	if (a->have_applied)
		bw_conf_free(&a->applied);
	/* After a failure nobody knows what is in place: the next sync dumps and walks. */
	a->have_applied = r >= 0;
	if (r < 0) {
		bw_err("%s failed: %s%s%s", what[mode], strerror(-r), res.msg[0] ? ": " : "", res.msg);
		bw_conf_free(&c);
		return;
	}
	if (res.msg[0])
		bw_warn("%s: %s", what[mode], res.msg);
	if (res.peers_added || res.peers_updated || res.peers_removed || res.prefixes_added || res.prefixes_removed)
		bw_info("%s: peers +%u ~%u -%u, allowed IPs +%u -%u", what[mode], res.peers_added,
			res.peers_updated, res.peers_removed, res.prefixes_added, res.prefixes_removed);
	if (mode == SYNC_FULL)
		agent_k8s_key_applied(&c); /* a rotated key file is in use now */
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
	/* Editors, `mv` and kubelet produce bursts: sync 100 ms after the first event, not after the
	 * last (a later event in the burst is read by the next arm + sync). */
	if (!evtimer_pending(a->debounce, NULL))
		evtimer_add(a->debounce, &tv);
}

static void on_mesh_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sync_peers(arg, SYNC_RECONCILE);
}

/* ---- keeping the filters in place ---- */

static void wg_restore(struct agent *a);

static bool uplink_changed(const struct bw_dp_uplink *old, const struct bw_dp_uplink *u)
{
	return old->state != u->state || strcmp(old->dir[0].before, u->dir[0].before) ||
	       strcmp(old->dir[1].before, u->dir[1].before);
}

static void report_uplink(const struct bw_dp_uplink *u)
{
	switch (u->state) {
	case BW_UPLINK_ENFORCED:
		bw_info("uplink %s: enforced", u->name);
		break;
	case BW_UPLINK_MISSING:
		bw_warn("uplink %s: no such device; filters are attached when it appears", u->name);
		break;
	case BW_UPLINK_PRECEDED:
		for (int i = 0; i < 2; i++)
			if (u->dir[i].n_before)
				bw_warn("uplink %s: bulwark's %s verdict is not final: %s runs before it (%u in all)",
					u->name, i ? "ingress" : "egress", u->dir[i].before, u->dir[i].n_before);
		break;
	default:
		bw_err("uplink %s: %s", u->name, bw_dp_uplink_state_name(u->state));
	}
}

/*
 * Check every uplink; put missing filters back with the pinned programs (no reload, no map
 * change: milliseconds); a foreign filter or tcx program before ours is reported, never removed
 * (it belongs to someone else, typically the CNI). Returns whether any uplink is not enforced.
 */
static bool check_uplinks(struct agent *a)
{
	bool full = false, bad = false;

	for (size_t i = 0; i < a->n_uplinks; i++) {
		struct bw_dp_uplink u;
		double t0 = now_mono();
		int r = bw_dp_uplink_check(a->pin_dir, a->uplinks[i], &u);

		if (r < 0) {
			bw_err("uplink %s: checking filters: %s", a->uplinks[i], strerror(-r));
			continue;
		}
		if (u.state == BW_UPLINK_NOT_ATTACHED || u.state == BW_UPLINK_NOT_OURS) {
			r = bw_dp_reattach(a->pin_dir, u.name);
			if (r == -ENOENT) {
				full = true; /* programs not pinned: a full attach loads them */
			} else if (r < 0) {
				bw_err("uplink %s: %s; re-attaching failed: %s", u.name, bw_dp_uplink_state_name(u.state),
				       strerror(-r));
			} else {
				a->reattaches++;
				bw_warn("uplink %s: %s (egress %s, ingress %s); re-attached in %.1f ms", u.name,
					bw_dp_uplink_state_name(u.state), bw_dp_uplink_state_name(u.dir[0].state),
					bw_dp_uplink_state_name(u.dir[1].state), (now_mono() - t0) * 1e3);
				bw_dp_uplink_check(a->pin_dir, a->uplinks[i], &u);
			}
		}
		if (uplink_changed(&a->up[i], &u) && (u.state != BW_UPLINK_ENFORCED || a->up[i].name[0]))
			report_uplink(&u);
		a->up[i] = u;
		bad |= u.state != BW_UPLINK_ENFORCED;
	}
	if (full) {
		bw_warn("datapath programs are not pinned under %s: full resync", bw_pin_dir(a->pin_dir));
		sync_peers(a, SYNC_FULL);
	}
	/* The WireGuard device: gone (wireguard-go killed, link deleted) or re-created elsewhere. */
	if (!if_nametoindex(a->wg_dev) || !bw_wg_device_alive(a->wg_dev)) {
		if (!a->wg_missing) {
			bw_err("WireGuard device %s is gone: protected traffic is dropped (dropped-no-device) until it is restored",
			       a->wg_dev);
			a->wg_missing = true;
			bw_dp_set_wg_device(a->pin_dir, ""); /* ifindex 0: drop with a reason */
		}
		wg_restore(a);
	} else {
		struct bw_dp *dp = NULL;
		struct bw_config cfg;

		if (bw_dp_open(a->pin_dir, &dp) == 0 && bw_dp_config_get(dp, &cfg) == 0 &&
		    cfg.wg_ifindex != if_nametoindex(a->wg_dev))
			bw_dp_set_wg_device(a->pin_dir, a->wg_dev);
		bw_dp_close(dp);
	}
	return bad;
}

/* Bring the WireGuard device back (wireguard-go started again when its socket is stale), peers
 * re-applied, the datapath pointed at the new ifindex. Retried every second until it works. */
static void wg_restore(struct agent *a)
{
	struct bw_conf c;
	struct bw_net_result res;
	struct bw_notes notes = { 0 };
	char msg[sizeof(res.msg)] = "";
	double t0 = now_mono();
	int r;

	if (load(a, &c) < 0)
		goto retry;
	mesh_prepare(a, &c);
	r = bw_net_device_up(&c, NULL, &notes, msg, sizeof(msg));
	bw_notes_log(&notes);
	if (r == 0 && (r = bw_net_reconcile(&c, a->pin_dir, &res)) == 0)
		r = bw_dp_set_wg_device(a->pin_dir, c.iface.device);
	if (msg[0])
		bw_log(r < 0 ? BW_LOG_ERROR : BW_LOG_WARN, "%s", msg);
	if (r < 0) {
		bw_err("restoring WireGuard device %s: %s (retrying)", c.iface.device, strerror(-r));
		bw_conf_free(&c);
		goto retry;
	}
	a->wg_missing = false;
	a->wg_restores++;
	a->last_sync_result = 0; /* a full reconcile just succeeded */
	a->last_sync_ok = time(NULL);
	if (a->have_applied)
		bw_conf_free(&a->applied);
	a->applied = c;
	a->have_applied = true;
	agent_k8s_key_applied(&c);
	bw_info("WireGuard device %s restored in %.0f ms: %zu peers", c.iface.device, (now_mono() - t0) * 1e3,
		c.n_peers);
	return;
retry:
	struct timeval tv = { 1, 0 };

	evtimer_add(a->wg_retry, &tv);
}

static void on_wg_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	check_uplinks(arg);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bw_agent_sample(arg);
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	check_uplinks(arg);
}

static bool is_watched_index(const struct agent *a, int ifindex)
{
	for (size_t i = 0; i < a->n_uplinks; i++)
		if (a->up[i].ifindex == ifindex)
			return true;
	return false;
}

static bool is_watched_name(const struct agent *a, const char *name)
{
	if (!strcmp(name, a->wg_dev))
		return true;
	for (size_t i = 0; i < a->n_uplinks; i++)
		if (!strcmp(name, a->uplinks[i]))
			return true;
	return false;
}

static int link_attr_cb(const struct nlattr *attr, void *data)
{
	if (mnl_attr_get_type(attr) == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_STRING) == 0)
		*(const char **)data = mnl_attr_get_str(attr);
	return MNL_CB_OK;
}

/* Is this link or tc event about an uplink or the WireGuard device? */
static int rtnl_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct agent *a = arg;
	bool *hit = &a->rtnl_hit;

	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK: {
		const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
		const char *name = NULL;

		mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, &name);
		if ((name && is_watched_name(a, name)) || is_watched_index(a, ifi->ifi_index))
			*hit = true;
		break;
	}
	case RTM_NEWQDISC:
	case RTM_DELQDISC:
	case RTM_NEWTFILTER:
	case RTM_DELTFILTER: {
		const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);

		if (is_watched_index(a, tcm->tcm_ifindex))
			*hit = true;
		break;
	}
	}
	return MNL_CB_OK;
}

static void on_rtnl(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;
	(void)fd, (void)what;

	a->rtnl_hit = false;
	while ((n = mnl_socket_recvfrom(a->rtnl, buf, sizeof(buf))) > 0)
		mnl_cb_run(buf, (size_t)n, 0, 0, rtnl_msg, a);
	if (n < 0 && errno == ENOBUFS)
		a->rtnl_hit = true; /* events lost: check anyway */
	/* A qdisc deletion arrives as a burst of messages: check once they are read. */
	if (a->rtnl_hit) {
		struct timeval tv = { 0, 5 * 1000 };

		evtimer_add(a->check_ev, &tv);
	}
}

static int rtnl_open(struct agent *a)
{
	unsigned groups = RTMGRP_LINK | RTMGRP_TC;

	a->rtnl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!a->rtnl)
		return -errno;
	if (mnl_socket_bind(a->rtnl, groups, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	return 0;
}

static void on_k8s_change(void *arg)
{
	sync_peers(arg, SYNC_CHANGE);
}

static void on_periodic(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sync_peers(arg, SYNC_RECONCILE);
	check_uplinks(arg);
}

static void on_sighup(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct bw_conf c;
	bool epoch;
	(void)fd, (void)what;

	bw_info("SIGHUP: full resync");
	/* A new mesh epoch named: fetch it first (off the loop) and resync when it is here, so the
	 * new PSKs go in with the resync, not after the datapath reload (the pairs' disagreement
	 * window stays the fetch's length). A failed fetch resyncs with the previous epoch. */
	if (!full_after_mesh && load(a, &c) == 0) {
		epoch = c.node.mesh_secret[0] && a->mesh.data && strcmp(a->mesh_path, c.node.mesh_secret) &&
			!agent_mesh_busy() && agent_mesh_request(&c);
		bw_conf_free(&c);
		if (epoch) {
			full_after_mesh = true;
			return;
		}
	}
	if (!full_after_mesh)
		sync_peers(a, SYNC_FULL);
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
	/* resolved by bw_conf_load (with kubernetes: the node file's directory) */
	snprintf(a->peers_dir, sizeof(a->peers_dir), "%s", c->peers_path);
	if (bw_conf_watch_init(&conf_watch) < 0)
		return -errno;
	a->ifd = conf_watch.fd;
	return bw_conf_watch_arm(&conf_watch, a->config, a->peers_dir);
}

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif
#define DEFAULT_METRICS "127.0.0.1:9962"

static void usage(FILE *f)
{
	fprintf(f, "usage: bulwarkd [--config FILE] [--pin-dir DIR] [--resync SECONDS]\n"
		   "                [--metrics-address HOST:PORT|off] [--log-format logfmt|json|plain]\n"
		   "                [--node-name NAME] [--kubeconfig FILE] [--version] [--help]\n\n"
		   "  --config FILE            node file (default /etc/bulwark/bulwark.conf)\n"
		   "  --node-name NAME         this node's name (its Node object's); else [Node] Name, else\n"
		   "                           $NODE_NAME (downward API spec.nodeName), else the host name\n"
		   "  --kubeconfig FILE        PeerSource = kubernetes: reach the API with this kubeconfig; else\n"
		   "                           [Node] Kubeconfig, [Node] KubeAPI/KubeTokenFile/KubeCAFile,\n"
		   "                           $KUBECONFIG, else the in-cluster service account\n"
		   "  --pin-dir DIR            datapath pin directory (default $BULWARK_PIN_DIR or /sys/fs/bpf/bulwark)\n"
		   "  --resync SECONDS         full reconcile and uplink check period (default 60)\n"
		   "  --metrics-address ADDR   /metrics /healthz /readyz /status (default " DEFAULT_METRICS
		   ", $BULWARK_METRICS_ADDRESS; off: none)\n"
		   "  --log-format FORMAT      logfmt (default), json, plain; level from BULWARK_LOG=debug|info|warn|error\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "resync", required_argument, NULL, 'r' },
		{ "metrics-address", required_argument, NULL, 'm' },
		{ "log-format", required_argument, NULL, 'l' },
		{ "node-name", required_argument, NULL, 'n' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct agent a = { .config = "/etc/bulwark/bulwark.conf", .ifd = -1 };
	struct timeval periodic = { 60, 0 };
	const char *maddr = getenv("BULWARK_METRICS_ADDRESS") ? getenv("BULWARK_METRICS_ADDRESS") : DEFAULT_METRICS;
	const char *kubeconfig = NULL;
	struct bw_conf c;
	struct bw_net_result res;
	struct event *ev[6];
	int ch, r;

	bw_log_set_prefix("bulwarkd");
	bw_log_set_format(BW_LOG_LOGFMT);
	bw_dp_log_init();
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a.config = optarg; break;
		case 'p': a.pin_dir = optarg; break;
		case 'r': periodic.tv_sec = atol(optarg) > 0 ? atol(optarg) : 60; break;
		case 'm': maddr = optarg; break;
		case 'l':
			if ((r = bw_log_format_parse(optarg)) < 0) {
				fprintf(stderr, "bulwarkd: --log-format: '%s' is not logfmt, json or plain\n", optarg);
				return 2;
			}
			bw_log_set_format((enum bw_log_format)r);
			break;
		case 'n':
			if (bw_conf_set_node_name(optarg) < 0) {
				fprintf(stderr, "bulwarkd: --node-name: '%s' is not a node name (letters, digits, '-', '.', '_'; < 64)\n",
					optarg);
				return 2;
			}
			break;
		case 'k':
			kubeconfig = optarg;
			if (strlen(kubeconfig) >= sizeof(((struct bw_conf *)0)->node.kubeconfig)) {
				fprintf(stderr, "bulwarkd: --kubeconfig: path too long\n");
				return 2;
			}
			break;
		case 'V': printf("bulwarkd %s\n", BULWARK_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* The loop exists before bring-up: the mesh secret's fetch reports into it. Worker threads
	 * (mesh secret, Kubernetes watcher) wake it by activating its events: libevent's locking. */
	if (evthread_use_pthreads() < 0 || !(a.base = event_base_new()) ||
	    agent_mesh_start(a.base, mesh_done, &a) < 0) {
		bw_err("event loop: out of memory");
		return 1;
	}
	if (load(&a, &c) < 0)
		return 1;
	mesh_prepare(&a, &c);
	r = bw_net_up(&c, a.pin_dir, &res);
	bw_notes_log(&res.notes);
	if (r < 0) {
		bw_err("bring-up failed: %s%s%s", strerror(-r), res.msg[0] ? ": " : "", res.msg);
		bw_conf_free(&c);
		return 1;
	}
	if (res.msg[0])
		bw_warn("%s", res.msg);
	bw_info("up: %s on %s, %zu peers (node %s)", c.iface.device, c.node.uplinks[0], c.n_peers, c.node.name);
	r = watch(&a, &c);
	if (r < 0) {
		bw_err("watching %s: %s", a.peers_dir, strerror(-r));
		bw_conf_free(&c);
		return 1;
	}
	/* Changes made while we were coming up predate the watch: catch them now. */
	sync_peers(&a, SYNC_RECONCILE);
	if ((r = rtnl_open(&a)) < 0) {
		bw_err("rtnetlink: %s", strerror(-r));
		return 1;
	}
	/* --- PeerSource = kubernetes: a watcher thread feeds peer sets to sync (k8s_source.c) --- */
	if (kubeconfig && c.node.peer_source != BW_PEERS_KUBERNETES)
		bw_warn("--kubeconfig %s: ignored (PeerSource is not kubernetes)", kubeconfig);
	else if (kubeconfig)
		snprintf(c.node.kubeconfig, sizeof(c.node.kubeconfig), "%s", kubeconfig);
	r = agent_k8s_start(&c, a.base, on_k8s_change, &a);
	bw_conf_free(&c);
	if (r < 0)
		return 1;
	/* --- end kubernetes --- */
	a.debounce = evtimer_new(a.base, on_debounce, &a);
	a.mesh_retry = evtimer_new(a.base, on_mesh_retry, &a);
	a.check_ev = evtimer_new(a.base, on_check, &a);
	a.wg_retry = evtimer_new(a.base, on_wg_retry, &a);
	a.sample_ev = event_new(a.base, -1, EV_PERSIST, on_sample, &a);
	bw_agent_sample(&a);
	event_add(a.sample_ev, &(struct timeval){ BW_AGENT_SAMPLE_SECONDS, 0 });
	/* Without metrics the agent still enforces: a busy port is reported, not fatal (the
	 * readiness probe then fails and says so by not answering). */
	if (strcmp(maddr, "off") && (r = bw_agent_http_start(&a, maddr)) == -EINVAL) {
		bw_err("--metrics-address %s: not HOST:PORT, [V6]:PORT or off", maddr);
		return 2;
	} else if (r < 0 && strcmp(maddr, "off")) {
		bw_err("metrics address %s: cannot listen there; serving no metrics or health", maddr);
	}
	/* Subscribed before the first check: a change after it is an event, not a gap. */
	check_uplinks(&a);
	bw_info("watching %s, uplinks and %s", a.peers_dir, a.wg_dev);
	ev[0] = event_new(a.base, a.ifd, EV_READ | EV_PERSIST, on_inotify, &a);
	ev[1] = event_new(a.base, -1, EV_PERSIST, on_periodic, &a);
	ev[2] = evsignal_new(a.base, SIGHUP, on_sighup, &a);
	ev[3] = evsignal_new(a.base, SIGTERM, on_exit_signal, &a);
	ev[4] = evsignal_new(a.base, SIGINT, on_exit_signal, &a);
	ev[5] = event_new(a.base, mnl_socket_get_fd(a.rtnl), EV_READ | EV_PERSIST, on_rtnl, &a);
	event_add(ev[0], NULL);
	event_add(ev[1], &periodic);
	for (int i = 2; i < 6; i++)
		event_add(ev[i], NULL);
	event_base_dispatch(a.base);
	for (int i = 0; i < 6; i++)
		event_free(ev[i]);
	bw_agent_http_stop(&a);
	event_free(a.debounce);
	event_free(a.mesh_retry);
	bw_secret_free(&a.mesh);
	event_free(a.check_ev);
	event_free(a.wg_retry);
	event_free(a.sample_ev);
	mnl_socket_close(a.rtnl);
	agent_k8s_stop();
	agent_mesh_stop();
	event_base_free(a.base);
	close(a.ifd);
	if (a.have_applied)
		bw_conf_free(&a.applied);
	return 0;
}
