/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwarkd's mesh secret fetcher (mesh_source.c): the attested fetch ([Node] MeshSecret) runs on
 * a worker thread, never on the event loop (a key service that accepts and never answers would
 * otherwise stall health, netlink and re-attach for the whole request timeout).
 */
#ifndef BULWARK_AGENT_MESH_SOURCE_H
#define BULWARK_AGENT_MESH_SOURCE_H

#include <stdbool.h>
#include <event2/event.h>
#include "common/common.h"
#include "wireguard-conf/conf.h"

/* Result of one fetch, handed to the loop. On success secret holds the mesh secret (locked
 * memory; the callee takes it over, else it is wiped when the callback returns). */
struct agent_mesh_result {
	int r; /* 0 or -errno */
	char path[256];      /* the resource fetched */
	char from[512];      /* the key service asked */
	char attester[16];
	char err[BW_ERR_LEN];
	struct bw_secret secret;
};

/* on_done(arg, result) runs in the event loop of base when a fetch finished. */
int agent_mesh_start(struct event_base *base, void (*on_done)(void *, struct agent_mesh_result *), void *arg);
/* Ask for c's MeshSecret from c's KeyService. false when a fetch is already running (the caller
 * asks again after its result). */
bool agent_mesh_request(const struct bw_conf *c);
bool agent_mesh_busy(void);
/* Stops the worker (waits for a running fetch, bounded by its timeout); wipes what it held. */
void agent_mesh_stop(void);

#endif
