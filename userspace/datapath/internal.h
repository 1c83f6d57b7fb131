/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef BW_DATAPATH_INTERNAL_H
#define BW_DATAPATH_INTERNAL_H

#include "datapath/datapath.h"

enum bw_dp_map {
	BW_MAP_CONFIG, BW_MAP_PROTECT4, BW_MAP_PROTECT6, BW_MAP_PEER4, BW_MAP_PEER6,
	BW_MAP_ALLOW, BW_MAP_STATS, BW_MAP_EVENTS,
	/* The flow cache: a set, created together (bw_dp_pins_prepare); absent in an older build's
	 * pin directory, whose programs do not cache. */
	BW_MAP_FLOW4, BW_MAP_FLOW6, BW_MAP_FLOW_GEN, BW_MAP_COUNT,
};
#define BW_MAP_FIRST_CACHE BW_MAP_FLOW4
extern const char *const bw_dp_map_names[BW_MAP_COUNT];

struct bw_dp {
	int fd[BW_MAP_COUNT];       /* -1: not pinned (cache maps of an older build's pin dir) */
	struct bw_flow_gen *gen;    /* bw_flow_gen mmapped; NULL without it */
};

/* Make the pin directory loadable by this build: a partial flow-cache set is removed whole. */
int bw_dp_pins_prepare(const char *dir);

/* An LPM key for either family, sized for the map it goes to. */
union bw_lpm_key {
	struct bw_lpm_v4 v4;
	struct bw_lpm_v6 v6;
};
void bw_lpm_from_cidr(const struct bw_cidr *c, union bw_lpm_key *k);
void bw_cidr_from_lpm(int family, const void *key, struct bw_cidr *c);

#endif
