/* SPDX-License-Identifier: GPL-2.0-only */
/* bulwarkd's Kubernetes peer source glue (k8s_source.c); no-ops unless PeerSource = kubernetes. */
#ifndef BULWARK_AGENT_K8S_SOURCE_H
#define BULWARK_AGENT_K8S_SOURCE_H

#include <stdbool.h>
#include <event2/event.h>
#include "wireguard-conf/conf.h"

/* Start the watcher; on_change(arg) runs in the event loop whenever a new peer set arrived. */
int agent_k8s_start(const struct bw_conf *c, struct event_base *base, void (*on_change)(void *), void *arg);
/* Replace c's peers (and this node's pod CIDRs) with the latest set from the cluster. */
int agent_k8s_fill(struct bw_conf *c);
bool agent_k8s_reachable(void);
/* The device now uses c's key file: when its public key changed (rotation), publish it. */
void agent_k8s_key_applied(const struct bw_conf *c);
void agent_k8s_stop(void);

#endif
