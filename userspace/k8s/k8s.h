/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kubernetes peer source ([Node] PeerSource = kubernetes; userspace/k8s/README.md).
 *
 * A watcher thread lists then watches the cluster's Node objects (resourceVersion, bookmarks,
 * 410 -> relist, reconnect with backoff), publishes this node's WireGuard public key and
 * endpoint (InternalIP:ListenPort) as annotations on its own Node with a JSON merge patch that
 * touches nothing else, and hands every complete desired peer set to a callback:
 * peers = every other node with a valid key annotation (AllowedIPs = its spec.podCIDRs,
 * Endpoint = its endpoint annotation), plus this node's own spec.podCIDRs.
 * A failed list or watch never produces a set: the caller keeps what it applied last.
 * libcurl + json-c; the bearer token file is re-read on every request (rotation).
 */
#ifndef BULWARK_K8S_H
#define BULWARK_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "wireguard-conf/conf.h"

#define BW_K8S_ANN_KEY "bulwark.dev/wireguard-public-key"
#define BW_K8S_ANN_ENDPOINT "bulwark.dev/wireguard-endpoint"
#define BW_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define BW_K8S_MAX_NODES 65536

struct bw_k8s_config {
	char api[512];        /* https://host:port */
	char token_file[256];
	char ca_file[256];
	char node[64];        /* this node's Node name */
	uint16_t listen_port; /* WireGuard ListenPort, for the published endpoint */
	uint8_t public_key[32];
};

/* One complete desired state. Owned by whoever receives it; free with bw_k8s_set_free. */
struct bw_k8s_set {
	struct bw_conf_peer *peers;
	size_t n_peers;
	struct bw_cidr pod_cidrs[2]; /* this node's spec.podCIDRs */
	size_t n_pod_cidrs;
};

/*
 * Fill cfg from the node file's KubeAPI / KubeTokenFile / KubeCAFile (in-cluster defaults:
 * KUBERNETES_SERVICE_HOST/PORT and BW_K8S_SA_DIR/{token,ca.crt}), its Name (NODE_NAME is
 * already applied by the loader) and ListenPort, and the node's public key.
 */
int bw_k8s_config_from(const struct bw_conf *c, const uint8_t public_key[32], struct bw_k8s_config *cfg,
		       char *err, size_t errlen);

/* Called from the watcher thread with a new set (ownership passes to the callee). */
typedef void (*bw_k8s_set_cb)(void *arg, struct bw_k8s_set *set);
/* Called from the watcher thread when the API becomes unreachable (reachable=false, why) or back. */
typedef void (*bw_k8s_state_cb)(void *arg, bool reachable, const char *why);

struct bw_k8s_watcher;
int bw_k8s_start(const struct bw_k8s_config *cfg, bw_k8s_set_cb on_set, bw_k8s_state_cb on_state, void *arg,
		 struct bw_k8s_watcher **out);
void bw_k8s_stop(struct bw_k8s_watcher *w);
void bw_k8s_set_free(struct bw_k8s_set *s);

#endif
