/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark datapath library: loads, attaches and drives the uplink tc programs (bpf/), whose
 * maps are pinned under a pin directory so that state outlives any process.
 *
 * Pin directory: the pin_dir argument, else $BULWARK_PIN_DIR, else /sys/fs/bpf/bulwark.
 * Layout: <pin>/bw_* maps (see bpf/bulwark_abi.h), <pin>/progs/bw_egress, <pin>/progs/bw_ingress.
 * All functions return 0 (or a count) on success and a negative errno on failure.
 */
#ifndef BULWARK_DATAPATH_H
#define BULWARK_DATAPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bulwark_abi.h"
#include "common/common.h"

/* tc filter identity on every uplink: first in line, so no other filter decides before us. */
#define BW_TC_HANDLE 0xb0a
#define BW_TC_PRIORITY 1

const char *bw_reason_name(unsigned reason);
/* Route libbpf's messages through bulwark's logger (common.h): stderr, never stdout. */
void bw_dp_log_init(void);
const char *bw_pin_dir(const char *pin_dir);

struct bw_dp;

/* Open the pinned maps of an attached (or loaded) datapath; -ENOENT when there is none. */
int bw_dp_open(const char *pin_dir, struct bw_dp **out);
void bw_dp_close(struct bw_dp *dp);

/* Desired map contents, applied by bw_dp_apply; built by the caller (net/ builds it from the
 * node configuration and the peer source, bw_net_desired). */
struct bw_dp_prefix {
	struct bw_cidr cidr;
	uint32_t class; /* enum bw_class */
};
struct bw_dp_peer_prefix {
	struct bw_cidr cidr;
	struct bw_peer peer;
};
struct bw_dp_desired {
	struct bw_config config;       /* wg_ifindex 0 here keeps the attached device's index */
	const struct bw_dp_prefix *protect;
	size_t n_protect;
	const struct bw_dp_peer_prefix *peers;
	size_t n_peers;
	const struct bw_allow_key *allow;
	size_t n_allow;
};
/*
 * Make the maps equal to *d: entries are added or updated first, then stale ones removed, so a
 * prefix present before and after is never missing in between. Only differences are written.
 */
int bw_dp_apply(struct bw_dp *dp, const struct bw_dp_desired *d);
/* Free the heap arrays of a desired state built by bw_net_desired. */
void bw_dp_desired_free(struct bw_dp_desired *d);

/*
 * The one diff engine for the peer map (bw_dp_apply uses it too): make it hold exactly want[n].
 * cur[ncur] is what the map holds when the caller vouches for it (NULL: read the map). New and
 * changed entries are written first, then stale ones deleted (a prefix present before and after
 * is never missing); the flow cache is invalidated after each of the two steps. *written and
 * *deleted (may be NULL) count the entries changed. Updates and deletions go in batches
 * (BPF_MAP_UPDATE_BATCH where the kernel has it for the map type).
 */
int bw_dp_peers_sync(struct bw_dp *dp, const struct bw_dp_peer_prefix *want, size_t n,
		     const struct bw_dp_peer_prefix *cur, size_t ncur, size_t *written, size_t *deleted);

/*
 * Load the programs (reusing pinned maps: counters and peers survive), apply *d when given,
 * then attach to every uplink's egress and ingress, replacing our previous filter in place (no
 * moment without one). wg_dev names the WireGuard device that protected traffic is sent into; it
 * may not exist yet (boot): its index is then 0 and protected traffic is dropped until it does.
 */
/*
 * Make sure pin_dir (NULL: the default) lies on a bpffs: mounts bpffs on /sys/fs/bpf when the
 * directory is under it and it is not mounted (not in a mount namespace made just for this
 * process, as `ip netns exec` makes: the pins would die with it), with a note saying so;
 * otherwise fails with a message naming the cause in err (-errno returned). bw_dp_attach calls
 * it. Libraries report, callers log (common.h): notes and err may be NULL.
 */
int bw_dp_bpffs_ensure(const char *pin_dir, struct bw_notes *notes, char *err, size_t len);
/* Route libbpf's messages into bw_log (warnings as warn, the rest as debug): programs call this
 * once at start, so nothing of libbpf's reaches stdout or bypasses the log format. */
void bw_dp_log_init(void);
/* Load, fill (d, when given) and attach to every uplink; -errno and, where there is more to say
 * than strerror (which uplink, why bpffs is missing), a message in err (may be NULL). What it
 * found and fixed on the way (bpffs mounted, an older build's pins converted) goes into notes
 * (may be NULL), also when it fails later. */
int bw_dp_attach(const char *pin_dir, const char *const *uplinks, size_t n_uplinks,
		 const char *wg_dev, const struct bw_dp_desired *d, struct bw_notes *notes, char *err, size_t len);
/* Remove our filters from every device; with purge also unpin maps and programs. */
int bw_dp_detach(const char *pin_dir, bool purge);

/*
 * Invalidate every flow-cache entry (increment bw_flow_gen). The functions here that change a
 * map call it themselves; whoever writes the maps otherwise (bpftool, tests) must call it after
 * (and, for a peer prefix, set its length's bit in bw_peer_lens first: bulwark_abi.h).
 * A no-op on a pin directory without the cache (an older build's programs do not cache).
 */
int bw_dp_flow_invalidate(struct bw_dp *dp);
/* The current generation (0 without the cache); whether the cache maps are pinned at all. */
uint64_t bw_dp_flow_gen(struct bw_dp *dp);
bool bw_dp_flow_pinned(struct bw_dp *dp);

int bw_dp_config_get(struct bw_dp *dp, struct bw_config *cfg);
int bw_dp_config_set(struct bw_dp *dp, const struct bw_config *cfg);

/* Single-peer operations for the WireGuard controller. */
/* A peer's id in the map: the first 32 bits of its public key, so that ids stay put when other
 * peers come and go (an index would renumber, and rewrite, every entry after a removal). */
static inline uint32_t bw_dp_peer_id(const uint8_t *pubkey)
{
	return (uint32_t)pubkey[0] << 24 | (uint32_t)pubkey[1] << 16 | (uint32_t)pubkey[2] << 8 | pubkey[3];
}
/* The peer map's value for a peer: built here only. */
static inline struct bw_peer bw_dp_peer_value(const uint8_t pubkey[32])
{
	struct bw_peer v = { .peer_id = bw_dp_peer_id(pubkey) };

	__builtin_memcpy(v.pubkey, pubkey, sizeof(v.pubkey));
	return v;
}
/* The prefix's host bits are ignored (zeroed), as the programs' probes zero them. */
int bw_dp_peer_set(struct bw_dp *dp, const struct bw_cidr *cidr, const struct bw_peer *peer);
int bw_dp_peer_del(struct bw_dp *dp, const struct bw_cidr *cidr);

typedef int (*bw_dp_peer_cb)(const struct bw_cidr *cidr, const struct bw_peer *peer, void *ctx);
typedef int (*bw_dp_prefix_cb)(const struct bw_cidr *cidr, uint32_t class, void *ctx);
int bw_dp_peers_foreach(struct bw_dp *dp, bw_dp_peer_cb cb, void *ctx);
int bw_dp_protect_foreach(struct bw_dp *dp, bw_dp_prefix_cb cb, void *ctx);

/* Counters summed over CPUs, indexed by enum bw_reason (both directions added up). */
int bw_dp_stats(struct bw_dp *dp, struct bw_stat out[BW_REASON_MAX]);
/* The same per direction: out[enum bw_dir][enum bw_reason]. */
int bw_dp_stats_dir(struct bw_dp *dp, struct bw_stat out[2][BW_REASON_MAX]);
/*
 * Write each bw_stats slot's reason/dir labels (fd: the map) where they are not yet there, so
 * that bpftool names every slot. Counters are kept; called on load, before the programs run.
 */
int bw_dp_stats_label(int fd);

struct bw_dp_attachment {
	int ifindex;
	char ifname[16];
	uint32_t egress_prog_id;  /* 0: not attached in that direction */
	uint32_t ingress_prog_id;
};
/* Our filters on the devices of the current network namespace; returns the count (<= max). */
int bw_dp_attachments(struct bw_dp_attachment *out, size_t max);

/*
 * Is bulwark's verdict final on an uplink? Per direction: our filter is there, runs our pinned
 * program, and nothing runs before it (another tc filter earlier in chain 0, or any tcx program:
 * tcx runs before clsact filters and its verdict can skip them). The worst direction is the
 * uplink's state. Order matters: lower values are worse.
 */
enum bw_uplink_state {
	BW_UPLINK_ENFORCED = 0,
	BW_UPLINK_MISSING,      /* no such device (an uplink removed; re-created ones are re-attached) */
	BW_UPLINK_NOT_ATTACHED, /* our filter is not on the hook */
	BW_UPLINK_NOT_OURS,     /* our filter's slot runs another program */
	BW_UPLINK_PRECEDED,     /* a foreign filter or tcx program runs before ours */
};
struct bw_dp_uplink_dir {
	enum bw_uplink_state state;
	uint32_t prog_id;       /* the program in our filter; 0: no filter */
	unsigned n_before;      /* foreign filters/programs that run before ours */
	unsigned tcx;           /* tcx programs on the hook (counted in n_before) */
	unsigned filters;       /* foreign filters on the hook, before or after ours */
	char before[96];        /* the first of them, e.g. "tc filter pref 1 handle 0x1 bpf program id 42" */
};
struct bw_dp_uplink {
	char name[16];
	int ifindex;
	enum bw_uplink_state state;
	struct bw_dp_uplink_dir dir[2]; /* [0] egress, [1] ingress */
};
const char *bw_dp_uplink_state_name(enum bw_uplink_state s);
int bw_dp_uplink_check(const char *pin_dir, const char *name, struct bw_dp_uplink *u);
/* Check n uplinks into out[n]; returns how many are not enforced, or a negative errno. */
int bw_dp_uplinks_check(const char *pin_dir, const char *const *names, size_t n, struct bw_dp_uplink *out);
/*
 * Put our filters back on one uplink with the pinned programs (no load, no map change): what the
 * agent does when a qdisc was deleted or the device re-created. -ENOENT when the programs are not
 * pinned (then a full bw_dp_attach is needed), -ENODEV when the device does not exist.
 */
int bw_dp_reattach(const char *pin_dir, const char *uplink);
/*
 * Point the datapath at the WireGuard device's current ifindex, or at none (0) when it does not
 * exist: protected packets with a peer are then dropped as dropped-no-device instead of being
 * redirected to a vanished index (which the kernel drops silently, counted as redirected).
 */
int bw_dp_set_wg_device(const char *pin_dir, const char *wg_dev);

/* Drop events: calls cb for each until it returns non-zero, or timeout_ms passes (-1: forever). */
typedef int (*bw_dp_event_cb)(const struct bw_event *e, void *ctx);
int bw_dp_monitor(struct bw_dp *dp, bw_dp_event_cb cb, void *ctx, int timeout_ms);
/*
 * Discard the events already in the ring (left there by earlier drops nobody read); returns how
 * many. The ring has one consumer position: this drains it for every reader.
 */
long bw_dp_monitor_drain(struct bw_dp *dp);

#endif
