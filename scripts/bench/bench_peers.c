// SPDX-License-Identifier: GPL-2.0-only
/*
 * Peer sync cost: bulwark's reconcile (WireGuard + datapath peer map) vs `wg setconf` with the
 * same peers, on the same device, in the same run; then a one-peer change, both as a full
 * reconcile (device dump + map walk) and as the agent applies a change (bw_net_reconcile_since).
 * The anchor is `wg setconf` of the same configuration, PrivateKey included; it is also timed
 * without the key (kernel WireGuard then skips a Curve25519 per peer), and bulwark's full sync is
 * broken down by phase (bw_net_result's timings). BULWARK_BENCH_REPS rounds, interleaved; medians.
 *   usage: bench_peers NODE_CONF PIN_DIR      (device and datapath already up, no peers)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "common/cleanup.h"
#include "net/net.h"
#include "wg/wg.h"
#include "wireguard-conf/conf.h"

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* An empty device as `net up` leaves it: the node's key set, no peers. */
static int reset(const char *dev, const uint8_t key[BW_WG_KEY_LEN])
{
	struct bw_wg_device d = { .flags = BW_WGDEV_REPLACE_PEERS | BW_WGDEV_HAS_PRIVATE_KEY };
	int r;

	memcpy(d.private_key, key, BW_WG_KEY_LEN);
	r = bw_wg_set(dev, &d);
	OPENSSL_cleanse(d.private_key, sizeof(d.private_key));
	return r;
}

static int clear_peers(const char *dev)
{
	struct bw_wg_device d = { .flags = BW_WGDEV_REPLACE_PEERS };
	return bw_wg_set(dev, &d);
}

/* `wg setconf DEV PATH`, timed (process start and parsing included); < 0 when it failed. */
static double setconf_ms(const char *dev, const char *path)
{
	char cmd[512];
	double t0 = now_ms();

	snprintf(cmd, sizeof(cmd), "wg setconf %s %s", dev, path);
	return sh(cmd) == 0 ? now_ms() - t0 : -1;
}

/* Device and datapath peer map empty again, the node's key kept. */
static int empty(const struct bw_conf *c, const char *pin_dir, const uint8_t key[BW_WG_KEY_LEN])
{
	return reset(c->iface.device, key) < 0 ? -1
	       : bw_net_reconcile(&(struct bw_conf){ .node = c->node, .iface = c->iface }, pin_dir, NULL);
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int write_wg(char *path, const struct bw_conf *c, const uint8_t *key)
{
	int fd = mkstemp(path), r;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f)
		return -1;
	r = bw_conf_write_wg(f, c, key);
	return fclose(f) || r < 0 ? -1 : 0;
}

#define REPS_MAX 9

int main(int argc, char **argv)
{
	struct bw_conf c, applied;
	struct bw_net_result res;
	char err[BW_ERR_LEN], wgkey[] = "/tmp/bw-bench-wg-XXXXXX", wgnokey[] = "/tmp/bw-bench-wg-XXXXXX";
	double t0, load_ms, ours_ms, wg_ms, nokey_ms, one_ms, since_ms;
	double ours[REPS_MAX], wg[REPS_MAX], nokey[REPS_MAX], rd[REPS_MAX], add[REPS_MAX], dp[REPS_MAX],
		rm[REPS_MAX];
	const char *reps_env = getenv("BULWARK_BENCH_REPS");
	int reps = reps_env ? atoi(reps_env) : 3;
	_cleanup_secret_ struct bw_secret key = { 0 };

	if (argc != 3) {
		fprintf(stderr, "usage: bench_peers NODE_CONF PIN_DIR\n");
		return 2;
	}
	if (reps < 1 || reps > REPS_MAX)
		reps = 3;
	t0 = now_ms();
	if (bw_conf_load(argv[1], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	load_ms = now_ms() - t0;
	if (bw_conf_load(argv[1], &applied, err, sizeof(err)) < 0)
		return 1;
	/* The anchor is `wg setconf` of the same configuration: the node's key and every peer. Also
	 * timed without the key, as this benchmark did before: kernel WireGuard then skips the
	 * per-peer static-static Curve25519 it does for every peer of a keyed device. */
	if (bw_net_node_key(&c, false, &key, NULL) < 0 || write_wg(wgkey, &c, key.data) < 0 ||
	    write_wg(wgnokey, &c, NULL) < 0) {
		perror("write wg config");
		return 1;
	}

	/* Each round from an empty keyed device (as `net up` leaves it), the three interleaved so
	 * they see the same load; medians reported. */
	for (int i = 0; i < reps; i++) {
		if (reset(c.iface.device, key.data) < 0 || (wg[i] = setconf_ms(c.iface.device, wgkey)) < 0)
			return 1;

		/* Ours: full sync onto the empty device, datapath peer map included (emptied first). */
		if (empty(&c, argv[2], key.data) < 0)
			return 1;
		t0 = now_ms();
		if (bw_net_reconcile(&c, argv[2], &res) < 0)
			return 1;
		ours[i] = now_ms() - t0;
		rd[i] = res.ms_read, add[i] = res.ms_wg_add, dp[i] = res.ms_datapath, rm[i] = res.ms_wg_remove;

		if (clear_peers(c.iface.device) < 0 || (nokey[i] = setconf_ms(c.iface.device, wgnokey)) < 0)
			return 1;
	}
	ours_ms = median(ours, reps), wg_ms = median(wg, reps), nokey_ms = median(nokey, reps);
	unlink(wgkey);
	unlink(wgnokey);

	/* Bring the device back to the full state for the one-peer change. */
	if (reset(c.iface.device, key.data) < 0 || bw_net_reconcile(&c, argv[2], &res) < 0)
		return 1;

	/* One peer gets one more prefix. */
	struct bw_conf_peer *p = &c.peers[c.n_peers / 2];
	struct bw_cidr *na = realloc(p->allowed_ips, (p->n_allowed_ips + 1) * sizeof(*na));
	if (!na)
		return 1;
	p->allowed_ips = na;
	bw_cidr_parse("198.18.254.1/32", &na[p->n_allowed_ips++]);
	t0 = now_ms();
	if (bw_net_reconcile(&c, argv[2], &res) < 0 || res.peers_updated != 1)
		return 1;
	one_ms = now_ms() - t0;

	/* And back, the way the agent applies a change: against what it applied last. */
	t0 = now_ms();
	if (bw_net_reconcile_since(&c, &applied, argv[2], &res) < 0 || res.peers_updated != 0 ||
	    res.prefixes_removed != 1)
		return 1;
	since_ms = now_ms() - t0;

	printf("peers %zu: config load %.1f ms; full sync (median of %d): bulwark %.1f ms (WireGuard + datapath), "
	       "wg setconf %.1f ms, ratio %.2fx; one-peer change: full reconcile %.2f ms, "
	       "since applied %.2f ms\n",
	       c.n_peers, load_ms, reps, ours_ms, wg_ms, ours_ms / wg_ms, one_ms, since_ms);
	printf("peers %zu, full sync breakdown (median ms): bulwark: read device + key %.1f, WireGuard set %.1f, "
	       "datapath peer map %.1f, WireGuard removals %.1f; wg setconf without PrivateKey %.1f "
	       "(no per-peer Curve25519; ratio to it %.2fx)\n",
	       c.n_peers, median(rd, reps), median(add, reps), median(dp, reps), median(rm, reps), nokey_ms,
	       ours_ms / nokey_ms);

	/* Attested mesh: every peer's PSK derived (HKDF) and set, the same full sync again. */
	struct bw_secret mesh;
	uint8_t self[32];
	double derive_ms, mesh_ms;

	if (bw_secret_new(&mesh, 32) < 0 || RAND_bytes(mesh.data, 32) != 1 || RAND_bytes(self, 32) != 1)
		return 1;
	t0 = now_ms();
	if (bw_net_mesh_apply(&c, &mesh, self) < 0)
		return 1;
	derive_ms = now_ms() - t0;
	if (empty(&c, argv[2], key.data) < 0)
		return 1;
	t0 = now_ms();
	if (bw_net_reconcile(&c, argv[2], &res) < 0)
		return 1;
	mesh_ms = now_ms() - t0;
	printf("peers %zu, MeshSecret: derive every PSK %.1f ms; full sync with PSKs %.1f ms vs %.1f ms without "
	       "(+%.1f ms, %.2fx)\n",
	       c.n_peers, derive_ms, derive_ms + mesh_ms, ours_ms, derive_ms + mesh_ms - ours_ms,
	       (derive_ms + mesh_ms) / ours_ms);
	bw_secret_free(&mesh);
	bw_conf_free(&c);
	bw_conf_free(&applied);
	return 0;
}
