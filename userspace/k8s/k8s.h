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
#include "common/common.h"
#include "wireguard-conf/conf.h"

#define BW_K8S_ANN_KEY "bulwark.dev/wireguard-public-key"
#define BW_K8S_ANN_ENDPOINT "bulwark.dev/wireguard-endpoint"
#define BW_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define BW_K8S_MAX_NODES 65536

struct bw_k8s_config {
	char api[512];        /* https://host:port (with a kubeconfig: its server, for messages) */
	char token_file[256];
	char ca_file[256];
	char kubeconfig[1024]; /* "" : api/token_file/ca_file; else read for every request */
	char node[64];        /* this node's Node name */
	uint16_t listen_port; /* WireGuard ListenPort, for the published endpoint */
	uint8_t public_key[32];
	/* The watcher never prints: what it does and meets (annotations published, 410 -> relist,
	 * API unreachable / back, watch errors) goes to this hook, from the watcher thread, one
	 * line each (bulwarkd sets bw_log_hook). NULL: not reported. */
	bw_log_fn log;
	void *log_ctx;
};

/* One complete desired state. Owned by whoever receives it; free with bw_k8s_set_free. */
struct bw_k8s_set {
	struct bw_conf_peer *peers;
	size_t n_peers;
	struct bw_cidr pod_cidrs[2]; /* this node's spec.podCIDRs */
	size_t n_pod_cidrs;
};

/*
 * How one request reaches the API: from a kubeconfig file (its current context) or from
 * KubeAPI/KubeTokenFile/KubeCAFile. Token, CA and client certificate inline (-data) or as files;
 * inline material in locked memory. A CA of neither kind: the system trust store.
 */
struct bw_k8s_auth {
	char server[512];
	char ca_file[1024];
	struct bw_secret ca;      /* PEM, from certificate-authority-data */
	struct bw_secret token;   /* from token (NUL-terminated) */
	char token_file[1024];
	char cert_file[1024];
	struct bw_secret cert;    /* PEM, from client-certificate-data */
	char key_file[1024];
	struct bw_secret key;     /* PEM, from client-key-data */
};
/*
 * Read a kubeconfig: its current-context's cluster (server: https only; certificate-authority or
 * -data; insecure-skip-tls-verify refused) and user (token or tokenFile; client-certificate and
 * client-key, or their -data; exec/auth-provider/basic auth refused with a message). Relative
 * paths are relative to the file's directory. 0, or -errno with err naming the file and field.
 */
int bw_k8s_kubeconfig_load(const char *path, struct bw_k8s_auth *a, char *err, size_t errlen);
/* The same from text in memory (path only names it in messages and anchors relative paths). */
int bw_k8s_kubeconfig_parse(const char *path, const char *text, size_t len, struct bw_k8s_auth *a, char *err,
			    size_t errlen);
void bw_k8s_auth_free(struct bw_k8s_auth *a);

/*
 * Fill cfg from the node file's Kubeconfig (or KUBECONFIG, when the node file names no API
 * either) or its KubeAPI / KubeTokenFile / KubeCAFile (in-cluster defaults:
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
/*
 * This node's WireGuard key changed (rotation): the watcher publishes the new public key on its
 * Node and no longer counts it as a peer's. Safe from any thread; the open watch is resumed.
 */
void bw_k8s_set_public_key(struct bw_k8s_watcher *w, const uint8_t public_key[32]);
void bw_k8s_stop(struct bw_k8s_watcher *w);
void bw_k8s_set_free(struct bw_k8s_set *s);

#endif
