// SPDX-License-Identifier: GPL-2.0-only
/*
 * Peer sync cost: bulwark's reconcile (WireGuard + datapath peer map) vs `wg setconf` with the
 * same peers, on the same device, in the same run; then a one-peer change, both as a full
 * reconcile (device dump + map walk) and as the agent applies a change (bw_net_reconcile_since).
 *   usage: bench_peers NODE_CONF PIN_DIR      (device and datapath already up, no peers)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <openssl/rand.h>
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

static int clear_peers(const char *dev)
{
	struct bw_wg_device d = { .flags = BW_WGDEV_REPLACE_PEERS };
	return bw_wg_set(dev, &d);
}

int main(int argc, char **argv)
{
	struct bw_conf c, applied;
	struct bw_net_result res;
	char err[BW_ERR_LEN], cmd[512], wgconf[] = "/tmp/bw-bench-wg-XXXXXX";
	double t0, load_ms, ours_ms, wg_ms, one_ms, since_ms;
	FILE *f;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: bench_peers NODE_CONF PIN_DIR\n");
		return 2;
	}
	t0 = now_ms();
	if (bw_conf_load(argv[1], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	load_ms = now_ms() - t0;
	if (bw_conf_load(argv[1], &applied, err, sizeof(err)) < 0)
		return 1;
	if ((fd = mkstemp(wgconf)) < 0 || !(f = fdopen(fd, "w")) || bw_conf_write_wg(f, &c, NULL) < 0) {
		perror("write wg config");
		return 1;
	}
	fclose(f);

	/* Anchor: wg setconf of the same peers onto the empty device (it also drops the key). */
	if (clear_peers(c.iface.device) < 0)
		return 1;
	snprintf(cmd, sizeof(cmd), "wg setconf %s %s", c.iface.device, wgconf);
	t0 = now_ms();
	if (sh(cmd) != 0)
		return 1;
	wg_ms = now_ms() - t0;

	/* Ours: full sync onto the empty device, datapath peer map included. */
	if (clear_peers(c.iface.device) < 0)
		return 1;
	t0 = now_ms();
	if (bw_net_reconcile(&c, argv[2], &res) < 0)
		return 1;
	ours_ms = now_ms() - t0;

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

	printf("peers %zu: config load %.1f ms; full sync: bulwark %.1f ms (WireGuard + datapath), "
	       "wg setconf %.1f ms, ratio %.2fx; one-peer change: full reconcile %.2f ms, "
	       "since applied %.2f ms\n",
	       c.n_peers, load_ms, ours_ms, wg_ms, ours_ms / wg_ms, one_ms, since_ms);

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
	if (clear_peers(c.iface.device) < 0)
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
	unlink(wgconf);
	bw_conf_free(&c);
	bw_conf_free(&applied);
	return 0;
}
