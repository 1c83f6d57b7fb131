// SPDX-License-Identifier: GPL-2.0-only
/* Desired (configuration) vs actual (device dump + datapath peer map): apply only the difference. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "datapath/datapath.h"
#include "net/net.h"
#include "wg/wg.h"

/*
 * Lookups by public key go through sorted indexes: with thousands of peers a linear search per
 * peer made a one-peer change cost as much as a full sync.
 */
struct index {
	const uint8_t **keys; /* each points at a 32-byte key at the start of... see off */
	size_t n;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, BW_WG_KEY_LEN);
}

static int index_build(struct index *ix, const void *base, size_t n, size_t stride, size_t key_off)
{
	ix->n = n;
	ix->keys = calloc(n + 1, sizeof(*ix->keys));
	if (!ix->keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ix->keys[i] = (const uint8_t *)base + i * stride + key_off;
	qsort(ix->keys, n, sizeof(*ix->keys), key_cmp);
	return 0;
}

static const void *index_find(const struct index *ix, const uint8_t *key, size_t key_off)
{
	const uint8_t **hit = ix->n ? bsearch(&key, ix->keys, ix->n, sizeof(*ix->keys), key_cmp) : NULL;
	return hit ? *hit - key_off : NULL;
}

/* One reconcile at a time (the agent is single-threaded; the CLI runs one). */
static struct index actual_ix, desired_ix;

static const struct bw_wg_peer *find_actual(const struct bw_wg_device *a, const uint8_t *key)
{
	(void)a;
	return index_find(&actual_ix, key, offsetof(struct bw_wg_peer, public_key));
}

static const struct bw_conf_peer *find_desired(const struct bw_conf *c, const uint8_t *key)
{
	(void)c;
	return index_find(&desired_ix, key, offsetof(struct bw_conf_peer, public_key));
}

static bool has_cidr(const struct bw_cidr *v, size_t n, const struct bw_cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if (bw_cidr_eq(&v[i], c))
			return true;
	return false;
}

static bool same_endpoint(const struct bw_wg_peer *a, const struct bw_wg_peer *b)
{
	if ((a->flags ^ b->flags) & BW_WGPEER_HAS_ENDPOINT)
		return false;
	return !(a->flags & BW_WGPEER_HAS_ENDPOINT) || bw_endpoint_eq(&a->endpoint, &b->endpoint);
}

/* One change for a desired peer: everything new about it, allowed IPs only added. */
static int peer_change(const struct bw_conf_peer *d, const struct bw_wg_peer *a, struct bw_wg_peer *out,
		       struct bw_net_result *res)
{
	static const uint8_t zero[BW_WG_KEY_LEN];
	bool changed = !a;

	memset(out, 0, sizeof(*out));
	memcpy(out->public_key, d->public_key, BW_WG_KEY_LEN);
	if (d->endpoint.sa.sa_family != AF_UNSPEC) {
		out->endpoint = d->endpoint;
		out->flags |= BW_WGPEER_HAS_ENDPOINT;
	}
	if (a && same_endpoint(out, a))
		out->flags &= ~BW_WGPEER_HAS_ENDPOINT;
	else if (out->flags & BW_WGPEER_HAS_ENDPOINT)
		changed = true;
	if (!a || a->keepalive != d->keepalive) {
		out->flags |= BW_WGPEER_HAS_KEEPALIVE;
		out->keepalive = d->keepalive;
		changed = true;
	}
	if (d->has_psk ? (!a || !(a->flags & BW_WGPEER_HAS_PSK) || CRYPTO_memcmp(a->psk, d->psk, 32))
		       : (a && (a->flags & BW_WGPEER_HAS_PSK))) {
		out->flags |= BW_WGPEER_HAS_PSK;
		memcpy(out->psk, d->has_psk ? d->psk : zero, BW_WG_KEY_LEN);
		changed = true;
	}
	out->allowed_ips = calloc(d->n_allowed_ips + 1, sizeof(struct bw_cidr));
	if (!out->allowed_ips)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_allowed_ips; i++)
		if (!a || !has_cidr(a->allowed_ips, a->n_allowed_ips, &d->allowed_ips[i]))
			out->allowed_ips[out->n_allowed_ips++] = d->allowed_ips[i];
	res->prefixes_added += (unsigned)out->n_allowed_ips;
	if (out->n_allowed_ips)
		changed = true;
	if (changed) {
		if (a)
			res->peers_updated++;
		else
			res->peers_added++;
	}
	return changed ? 1 : 0;
}

static void free_changes(struct bw_wg_peer *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		OPENSSL_cleanse(v[i].psk, sizeof(v[i].psk));
		free(v[i].allowed_ips);
	}
	free(v);
}

/* Step 1: add and update peers, add allowed IPs. */
static int wg_add(const struct bw_conf *c, const struct bw_wg_device *act, const struct bw_wg_device *dev_cfg,
		  struct bw_net_result *res)
{
	struct bw_wg_device set = *dev_cfg;
	struct bw_wg_peer *ch = calloc(c->n_peers + 1, sizeof(*ch));
	size_t n = 0;
	int r = 0;

	if (!ch)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_peers && r >= 0; i++) {
		r = peer_change(&c->peers[i], find_actual(act, c->peers[i].public_key), &ch[n], res);
		if (r > 0)
			n++;
		else
			free(ch[n].allowed_ips);
	}
	set.peers = ch;
	set.n_peers = n;
	if (r >= 0 && (n || set.flags))
		r = bw_wg_set(c->iface.device, &set);
	free_changes(ch, n);
	return r < 0 ? r : 0;
}

/*
 * Steps 2 and 3: the datapath's peer map, through its one diff engine (bw_dp_peers_sync: only
 * differences are written), when a datapath is attached at all. The current entries come from the
 * map, or from `applied` when the caller vouches for it.
 */
static int dp_step(const struct bw_conf *c, const struct bw_conf *applied, const char *pin_dir)
{
	_cleanup_free_ struct bw_dp_peer_prefix *want = NULL, *cur = NULL;
	size_t nw = 0, nc = 0;
	struct bw_dp *dp = NULL;
	int r;

	/* Without an attached datapath there is no peer map to keep in step. */
	if (bw_dp_open(pin_dir, &dp) < 0)
		return 0;
	r = bw_net_peer_prefixes(c->peers, c->n_peers, &want, &nw);
	if (r == 0 && applied)
		r = bw_net_peer_prefixes(applied->peers, applied->n_peers, &cur, &nc);
	if (r == 0)
		r = bw_dp_peers_sync(dp, want, nw, applied ? cur : NULL, nc, NULL, NULL);
	bw_dp_close(dp);
	return r;
}

/*
 * Step 4: stale allowed IPs of kept peers move to a throwaway peer (assigning a prefix to another
 * peer takes it from its owner), which is then removed with the gone peers - one set, applied in
 * order: ops[0] the throwaway peer with the stale prefixes, ops[1] its removal, then the rest.
 */
static int wg_remove(const struct bw_conf *c, const struct bw_wg_device *act, struct bw_net_result *res)
{
	struct bw_wg_peer *ops = calloc(act->n_peers + 3, sizeof(*ops));
	struct bw_wg_peer *dummy;
	struct bw_wg_device set = { 0 };
	size_t n = 2;
	int r = 0;

	if (!ops)
		return -ENOMEM;
	dummy = &ops[0];
	if (RAND_bytes(dummy->public_key, BW_WG_KEY_LEN) != 1 ||
	    !(dummy->allowed_ips = calloc(1, sizeof(struct bw_cidr)))) {
		free_changes(ops, 1);
		return -EIO;
	}
	for (size_t i = 0; i < act->n_peers; i++) {
		const struct bw_wg_peer *a = &act->peers[i];
		const struct bw_conf_peer *d = find_desired(c, a->public_key);

		if (!d) {
			memcpy(ops[n].public_key, a->public_key, BW_WG_KEY_LEN);
			ops[n++].flags = BW_WGPEER_REMOVE;
			res->peers_removed++;
			continue;
		}
		for (size_t j = 0; j < a->n_allowed_ips; j++) {
			struct bw_cidr *nd;
			if (has_cidr(d->allowed_ips, d->n_allowed_ips, &a->allowed_ips[j]))
				continue;
			if (!(nd = realloc(dummy->allowed_ips, (dummy->n_allowed_ips + 1) * sizeof(*nd)))) {
				free_changes(ops, n);
				return -ENOMEM;
			}
			dummy->allowed_ips = nd;
			nd[dummy->n_allowed_ips++] = a->allowed_ips[j];
			res->prefixes_removed++;
		}
	}
	memcpy(ops[1].public_key, dummy->public_key, BW_WG_KEY_LEN);
	ops[1].flags = BW_WGPEER_REMOVE;
	set.peers = dummy->n_allowed_ips ? ops : ops + 2;
	set.n_peers = dummy->n_allowed_ips ? n : n - 2;
	if (set.n_peers)
		r = bw_wg_set(c->iface.device, &set);
	free_changes(ops, n);
	return r;
}

/* WireGuard's peers as `applied` configured them, for a reconcile that skips the dump. */
static int device_from_conf(const struct bw_conf *applied, struct bw_wg_device **out)
{
	struct bw_wg_device *d = calloc(1, sizeof(*d));

	if (!d || !(d->peers = calloc(applied->n_peers + 1, sizeof(*d->peers)))) {
		free(d);
		return -ENOMEM;
	}
	d->n_peers = applied->n_peers;
	d->listen_port = applied->iface.listen_port;
	d->fwmark = applied->iface.fwmark;
	for (size_t i = 0; i < applied->n_peers; i++) {
		const struct bw_conf_peer *p = &applied->peers[i];
		struct bw_wg_peer *w = &d->peers[i];

		memcpy(w->public_key, p->public_key, BW_WG_KEY_LEN);
		if (p->endpoint.sa.sa_family != AF_UNSPEC) {
			w->endpoint = p->endpoint;
			w->flags |= BW_WGPEER_HAS_ENDPOINT;
		}
		if (p->has_psk) {
			w->flags |= BW_WGPEER_HAS_PSK;
			memcpy(w->psk, p->psk, BW_WG_KEY_LEN);
		}
		w->keepalive = p->keepalive;
		w->n_allowed_ips = p->n_allowed_ips;
		if (!(w->allowed_ips = malloc((p->n_allowed_ips + 1) * sizeof(struct bw_cidr)))) {
			bw_wg_device_free(d);
			return -ENOMEM;
		}
		memcpy(w->allowed_ips, p->allowed_ips, p->n_allowed_ips * sizeof(struct bw_cidr));
	}
	*out = d;
	return 0;
}

/* Device-wide settings that differ between the device and c (key, port, fwmark). */
static int device_settings(const struct bw_conf *c, const struct bw_wg_device *act, bool trust_key,
			   struct bw_wg_device *cfg)
{
	_cleanup_secret_ struct bw_secret key = { 0 };
	int r;

	if (!trust_key) {
		if ((r = bw_net_node_key(c, false, &key, NULL)) < 0)
			return r;
		if (!(act->flags & BW_WGDEV_HAS_PRIVATE_KEY) ||
		    CRYPTO_memcmp(act->private_key, key.data, BW_WG_KEY_LEN)) {
			memcpy(cfg->private_key, key.data, BW_WG_KEY_LEN);
			cfg->flags |= BW_WGDEV_HAS_PRIVATE_KEY;
		}
	}
	if (act->listen_port != c->iface.listen_port)
		cfg->flags |= BW_WGDEV_HAS_LISTEN_PORT, cfg->listen_port = c->iface.listen_port;
	if (act->fwmark != c->iface.fwmark)
		cfg->flags |= BW_WGDEV_HAS_FWMARK, cfg->fwmark = c->iface.fwmark;
	return 0;
}

static double ms_since(double *t0)
{
	struct timespec t;
	double now, d;

	clock_gettime(CLOCK_MONOTONIC, &t);
	now = t.tv_sec * 1e3 + t.tv_nsec / 1e6;
	d = now - *t0;
	*t0 = now;
	return d;
}

static int reconcile(const struct bw_conf *c, const struct bw_conf *applied, const char *pin_dir,
		     struct bw_net_result *res)
{
	struct bw_wg_device *act = NULL, cfg = { 0 };
	double t = 0;
	int r;

	/* No downgrade: with a mesh secret configured, a peer without its derived PSK never
	 * reaches WireGuard (bw_net_mesh_apply fills them in; callers without the secret pass
	 * no peers at all). */
	for (size_t i = 0; c->node.mesh_secret[0] && i < c->n_peers; i++)
		if (!c->peers[i].has_psk)
			return -EKEYREJECTED;
	ms_since(&t);
	r = applied ? device_from_conf(applied, &act) : bw_wg_get(c->iface.device, &act);
	if (r < 0)
		return r;
	/* The desired index serves only lookups for the device's peers: none on an empty device. */
	if ((r = device_settings(c, act, applied != NULL, &cfg)) < 0 ||
	    (r = index_build(&actual_ix, act->peers, act->n_peers, sizeof(*act->peers),
			     offsetof(struct bw_wg_peer, public_key))) < 0 ||
	    (r = index_build(&desired_ix, c->peers, act->n_peers ? c->n_peers : 0, sizeof(*c->peers),
			     offsetof(struct bw_conf_peer, public_key))) < 0)
		goto out;
	res->ms_read = ms_since(&t);
	r = wg_add(c, act, &cfg, res);
	res->ms_wg_add = ms_since(&t);
	if (r == 0)
		r = dp_step(c, applied, pin_dir);
	res->ms_datapath = ms_since(&t);
	if (r == 0)
		r = wg_remove(c, act, res);
	res->ms_wg_remove = ms_since(&t);
out:
	OPENSSL_cleanse(cfg.private_key, sizeof(cfg.private_key));
	free(actual_ix.keys);
	free(desired_ix.keys);
	actual_ix = desired_ix = (struct index){ 0 };
	bw_wg_device_free(act);
	return r;
}

int bw_net_reconcile(const struct bw_conf *c, const char *pin_dir, struct bw_net_result *res)
{
	struct bw_net_result tmp = { 0 };

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	return reconcile(c, NULL, pin_dir, res);
}

/* Only peers may differ: anything about the device itself takes the full path. */
static bool same_device(const struct bw_conf *a, const struct bw_conf *b)
{
	return !strcmp(a->iface.device, b->iface.device) &&
	       !strcmp(a->iface.private_key_file, b->iface.private_key_file) &&
	       a->iface.listen_port == b->iface.listen_port && a->iface.fwmark == b->iface.fwmark;
}

static bool same_peer(const struct bw_conf_peer *a, const struct bw_conf_peer *b)
{
	return a->has_psk == b->has_psk && (!a->has_psk || !CRYPTO_memcmp(a->psk, b->psk, 32)) &&
	       a->keepalive == b->keepalive && bw_endpoint_eq(&a->endpoint, &b->endpoint) &&
	       a->n_allowed_ips == b->n_allowed_ips &&
	       !memcmp(a->allowed_ips, b->allowed_ips, a->n_allowed_ips * sizeof(*a->allowed_ips));
}

/*
 * Cut both configurations down to the peers that differ (shallow copies): the desired side keeps
 * new and changed peers, the applied side their old versions and the removed ones. Reconciling
 * those two is the whole change. Both lists come sorted by file name (bw_conf_load), so one merge
 * pass pairs them up; a peer paired wrongly (renamed file, another sort order) lands on both sides
 * unchanged, which reconcile sees as "nothing to do" - slower, never wrong.
 */
static int changed_only(const struct bw_conf *applied, const struct bw_conf *c, struct bw_conf *old,
			struct bw_conf *new)
{
	size_t i = 0, j = 0;

	*old = *applied, *new = *c;
	old->n_peers = new->n_peers = 0;
	old->peers = malloc((applied->n_peers + 1) * sizeof(*old->peers));
	new->peers = malloc((c->n_peers + 1) * sizeof(*new->peers));
	if (!old->peers || !new->peers)
		return -ENOMEM;
	while (i < applied->n_peers || j < c->n_peers) {
		const struct bw_conf_peer *a = i < applied->n_peers ? &applied->peers[i] : NULL;
		const struct bw_conf_peer *d = j < c->n_peers ? &c->peers[j] : NULL;
		int cmp = !a ? 1 : !d ? -1 : strcmp(a->file, d->file);

		if (cmp == 0 && !memcmp(a->public_key, d->public_key, BW_WG_KEY_LEN) && same_peer(a, d)) {
			i++, j++;
			continue;
		}
		if (cmp <= 0)
			old->peers[old->n_peers++] = applied->peers[i++];
		if (cmp >= 0)
			new->peers[new->n_peers++] = c->peers[j++];
	}
	return 0;
}

int bw_net_reconcile_since(const struct bw_conf *applied, const struct bw_conf *c, const char *pin_dir,
			   struct bw_net_result *res)
{
	struct bw_net_result tmp = { 0 };
	struct bw_conf old, new;
	int r;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	if (!applied || !same_device(applied, c))
		return reconcile(c, NULL, pin_dir, res);
	r = changed_only(applied, c, &old, &new);
	if (r == 0 && (old.n_peers || new.n_peers))
		r = reconcile(&new, &old, pin_dir, res);
	/* shallow copies: the peers' contents belong to applied and c */
	free(old.peers);
	free(new.peers);
	return r;
}

int bw_net_up(const struct bw_conf *c, const char *pin_dir, struct bw_net_result *res)
{
	struct bw_net_result tmp = { 0 };
	const char *uplinks[BW_CONF_MAX_LIST];
	struct bw_dp_desired d;
	bool created = false;
	int r;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	/* Before anything is started: a missing bpffs must not leave a device behind. */
	if ((r = bw_dp_bpffs_ensure(pin_dir, &res->notes, res->msg, sizeof(res->msg))) < 0)
		return r;
	if ((r = bw_net_device_up(c, &created, &res->notes, res->msg, sizeof(res->msg))) < 0)
		return r;
	/* WireGuard and (when attached) the peer map first, then the datapath (re)loaded with the
	 * whole desired state: the diff engine finds the peer map equal and writes nothing, so a
	 * SIGHUP writes it once. */
	if ((r = reconcile(c, NULL, pin_dir, res)) < 0)
		goto fail;
	for (size_t i = 0; i < c->node.n_uplinks; i++)
		uplinks[i] = c->node.uplinks[i];
	if ((r = bw_net_desired(c, &d)) < 0)
		goto fail;
	r = bw_dp_attach(pin_dir, uplinks, c->node.n_uplinks, c->iface.device, &d, &res->notes, res->msg, sizeof(res->msg));
	bw_dp_desired_free(&d);
	if (r == 0)
		return 0;
fail:
	if (created) {
		char undo[sizeof(res->msg)] = "", cause[sizeof(res->msg)];

		/* The cause first, then what the undo did (or why it could not). */
		bw_net_device_undo(c, undo, sizeof(undo));
		snprintf(cause, sizeof(cause), "%s", res->msg);
		if (snprintf(res->msg, sizeof(res->msg), "%s%s%s", cause, cause[0] && undo[0] ? "; " : "", undo) < 0)
			res->msg[0] = '\0';
	}
	return r;
}
