/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef BW_DATAPATH_INTERNAL_H
#define BW_DATAPATH_INTERNAL_H

#include "datapath/datapath.h"

enum bw_dp_map {
	BW_MAP_CONFIG, BW_MAP_PROTECT4, BW_MAP_PROTECT6, BW_MAP_PEER4, BW_MAP_PEER6,
	BW_MAP_ALLOW, BW_MAP_STATS, BW_MAP_EVENTS,
	/* The flow cache: a set, created together (bw_dp_pins_prepare); absent in an older build's
	 * pin directory, whose programs do not cache. */
	BW_MAP_FLOW4, BW_MAP_FLOW6, BW_MAP_FLOW_GEN,
	/* The peer maps' length index (bulwark_abi.h); absent in an older build's pin dir, whose
	 * peer maps are LPM tries. */
	BW_MAP_PEER_LENS, BW_MAP_COUNT,
};
#define BW_MAP_FIRST_CACHE BW_MAP_FLOW4    /* from here on: optional in bw_dp_open */
#define BW_MAP_END_CACHE BW_MAP_PEER_LENS  /* the flow-cache set is [FIRST_CACHE, END_CACHE) */
extern const char *const bw_dp_map_names[BW_MAP_COUNT];

struct bw_dp {
	int fd[BW_MAP_COUNT];       /* -1: not pinned (cache maps of an older build's pin dir) */
	struct bw_flow_gen *gen;    /* bw_flow_gen mmapped; NULL without it */
	struct bw_peer_lens *lens;  /* bw_peer_lens mmapped; NULL without it (peer maps are tries) */
};

/*
 * Make the pin directory loadable by this build: a partial flow-cache set is removed whole; an
 * older build's peer tries are read into *old (heap, *n_old entries; the caller frees) and
 * unpinned, so that loading creates this build's peer maps and bw_dp_peers_restore refills them.
 * What it did to older state (counters restart, flow cache recreated, prefixes moved) goes into
 * notes (may be NULL).
 */
int bw_dp_pins_prepare(const char *dir, struct bw_dp_peer_prefix **old, size_t *n_old, struct bw_notes *notes);
/* The older build's peer tries: entries read out, pins removed (none: *n_old 0), a note saying
 * how many moved. maps.c. */
int bw_dp_peers_take_old(const char *dir, struct bw_dp_peer_prefix **old, size_t *n_old, struct bw_notes *notes);
/*
 * After loading: the peers kept by bw_dp_pins_prepare back in; with rescan (bw_peer_lens was
 * created by this load next to surviving peer maps) every present length's bit set.
 */
int bw_dp_peers_restore(struct bw_dp *dp, const struct bw_dp_peer_prefix *old, size_t n_old, bool rescan);

/* An LPM key for either family, sized for the map it goes to. */
union bw_lpm_key {
	struct bw_lpm_v4 v4;
	struct bw_lpm_v6 v6;
};
void bw_lpm_from_cidr(const struct bw_cidr *c, union bw_lpm_key *k);
void bw_cidr_from_lpm(int family, const void *key, struct bw_cidr *c);

#endif
