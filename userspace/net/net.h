/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The WireGuard controller: device, node key, and peers reconciled with the datapath.
 *
 * Ordering guarantees of bw_net_reconcile:
 *  - a peer exists in WireGuard before its prefixes enter the datapath peer map, and its prefixes
 *    leave the map before the peer (or the prefix) leaves WireGuard;
 *  - allowed IPs are only ever added to live peers; stale ones are moved to a throwaway peer that
 *    is then removed (kernels before 6.x and wireguard-go 2022 cannot remove one prefix), so a
 *    prefix that stays is never missing, not even for a moment;
 *  - peers are removed only on a complete desired state (bw_conf_load is all or nothing).
 */
#ifndef BULWARK_NET_H
#define BULWARK_NET_H

#include <stdbool.h>
#include "common/common.h"
#include "wireguard-conf/conf.h"

/* MTU of the WireGuard device: uplink MTU minus 80 (outer IPv6 40 + UDP 8 + WireGuard header
 * 16 + tag 16), rounded down to a multiple of 16 because WireGuard pads the inner packet to 16. */
#define BW_WG_OVERHEAD 80
unsigned bw_net_mtu_for(unsigned uplink_mtu);

/* Load the node's private key, creating it (0600, atomically) when create is set and missing
 * (with a note saying so; notes may be NULL). */
int bw_net_node_key(const struct bw_conf *c, bool create, struct bw_secret *key, struct bw_notes *notes);

struct bw_net_result {
	unsigned peers_added, peers_updated, peers_removed;
	unsigned prefixes_added, prefixes_removed;
	/* Where a reconcile's time went, in ms (for benchmarks): reading the device (dump, or its
	 * stand-in from `applied`) with the node key, the WireGuard set of new and changed peers,
	 * the datapath peer map, the WireGuard removals. */
	double ms_read, ms_wg_add, ms_datapath, ms_wg_remove;
	/* bw_net_up: why it failed, or a note worth logging on success (a stale socket removed);
	 * empty otherwise. This library does not print: callers log it. */
	char msg[256];
	/* bw_net_up: what it did on the way, failed or not (bpffs mounted, key created, an older
	 * build's pins converted): callers log them (bw_notes_log) before msg. */
	struct bw_notes notes;
};

/* Create or expect the device, set key/port/fwmark/MTU, bring it up. *created (may be NULL)
 * tells whether this call created it; a device it created is removed again when it fails.
 * msg: the reason on failure, a note (or "") on success; notes: a key created (may be NULL). */
int bw_net_device_up(const struct bw_conf *c, bool *created, struct bw_notes *notes, char *msg, size_t len);
/* Remove a device this process created (rollback), waiting for its wireguard-go to exit; msg
 * says what happened. */
int bw_net_device_undo(const struct bw_conf *c, char *msg, size_t len);
/* Make WireGuard and (when pin_dir's datapath exists) the datapath peer map equal to c. */
int bw_net_reconcile(const struct bw_conf *c, const char *pin_dir, struct bw_net_result *res);
/*
 * The same, but trusting that WireGuard and the peer map still hold exactly what `applied` (the
 * configuration of this device's last successful reconcile) put there: no device dump, no map
 * walk, so a one-peer change costs one peer's worth of syscalls. Drift made behind our back is
 * not seen: callers run bw_net_reconcile periodically. A change to the device settings (name,
 * key file, port, fwmark) falls back to bw_net_reconcile. After a failure the state is unknown:
 * the next call must be bw_net_reconcile.
 */
int bw_net_reconcile_since(const struct bw_conf *applied, const struct bw_conf *c, const char *pin_dir,
			   struct bw_net_result *res);
/*
 * The datapath's desired state for c, built in one place (net/desired.c): protected prefixes,
 * allowlist, settings and the peer map's entries. bw_net_peer_prefixes is the peer map part
 * alone: every allowed IP of every peer with the peer's value (bw_dp_peer_value).
 */
struct bw_dp_desired;
struct bw_dp_peer_prefix;
int bw_net_desired(const struct bw_conf *c, struct bw_dp_desired *d);
int bw_net_peer_prefixes(const struct bw_conf_peer *peers, size_t n, struct bw_dp_peer_prefix **out,
			 size_t *nout);
/* Device up, reconcile, attach the datapath (uplinks from c). bpffs is checked (and mounted
 * when missing) first; a failure part-way removes the device when this call created it. */
int bw_net_up(const struct bw_conf *c, const char *pin_dir, struct bw_net_result *res);
/* Remove the WireGuard device. The datapath stays attached: protected traffic is dropped. */
int bw_net_down(const struct bw_conf *c, char *msg, size_t len);
/*
 * Attested mesh (net/mesh.c): pairwise WireGuard PSKs derived from the mesh secret the key
 * service gives attested nodes ([Node] MeshSecret). The label and the derivation are an interface:
 * every node of a cluster must compute the same value (wireguard-conf/README.md).
 */
#define BW_MESH_PSK_LABEL "bulwark mesh psk v1"
#define BW_MESH_SECRET_MIN 32 /* bytes; the resource must be exactly this long */
int bw_net_mesh_psk(const struct bw_secret *mesh, const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);
/* Set every peer's PSK to its pairwise value with this node's public key self. */
int bw_net_mesh_apply(struct bw_conf *c, const struct bw_secret *mesh, const uint8_t self[32]);
/* The same with this node's own public key (from its key file); on failure the peers are dropped. */
int bw_net_mesh_set(struct bw_conf *c, const struct bw_secret *mesh, struct bw_notes *notes);
/* Without the secret: no peer at all (fail closed; reconcile refuses PSK-less peers anyway). */
void bw_net_mesh_drop_peers(struct bw_conf *c);
/* Attest with [Node] Attester and fetch [Node] MeshSecret from KeyService (tries handshakes;
 * each retry reported through log, which may be NULL). */
int bw_net_mesh_fetch(const struct bw_conf *c, int tries, bw_log_fn log, struct bw_secret *out, char *err,
		      size_t errlen);

/* For one-shot callers (the CLI): fetch, derive and set every PSK; on failure the peers are
 * dropped (the device comes up with none: fail closed) and err says why. log: as for
 * bw_net_mesh_fetch; notes: as for bw_net_node_key. */
int bw_net_mesh_prepare(struct bw_conf *c, bw_log_fn log, struct bw_notes *notes, char *err, size_t errlen);

/* This node's [Peer] stanza for the others (endpoint: override, else the first uplink address). */
int bw_net_export_peer(const struct bw_conf *c, const char *endpoint, FILE *out);

#endif
