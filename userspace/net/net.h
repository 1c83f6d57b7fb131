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

/* Load the node's private key, creating it (0600, atomically) when create is set and missing. */
int bw_net_node_key(const struct bw_conf *c, bool create, struct bw_secret *key);

struct bw_net_result {
	unsigned peers_added, peers_updated, peers_removed;
	unsigned prefixes_added, prefixes_removed;
};

/* Create or expect the device, set key/port/fwmark/MTU, bring it up. *created (may be NULL)
 * tells whether this call created it; a device it created is removed again when it fails. */
int bw_net_device_up(const struct bw_conf *c, bool *created);
/* Remove a device this process created (rollback), waiting for its wireguard-go to exit. */
int bw_net_device_undo(const struct bw_conf *c);
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
/* Device up, reconcile, attach the datapath (uplinks from c). bpffs is checked (and mounted
 * when missing) first; a failure part-way removes the device when this call created it. */
int bw_net_up(const struct bw_conf *c, const char *pin_dir, struct bw_net_result *res);
/* Remove the WireGuard device. The datapath stays attached: protected traffic is dropped. */
int bw_net_down(const struct bw_conf *c);
/* This node's [Peer] stanza for the others (endpoint: override, else the first uplink address). */
int bw_net_export_peer(const struct bw_conf *c, const char *endpoint, FILE *out);

#endif
