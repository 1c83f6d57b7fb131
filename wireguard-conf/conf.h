/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark configuration: the node file ([Node] + [Interface]) and the peers directory (one
 * wg-quick style [Peer] file per remote node). Format: wireguard-conf/README.md.
 *
 * Loading is all or nothing: any error rejects the whole configuration and names file:line.
 * Sizes are bounded (BW_CONF_MAX_*), so a hostile file cannot exhaust memory.
 */
#ifndef BULWARK_CONF_H
#define BULWARK_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "common/common.h"

#define BW_CONF_MAX_FILE (1u << 20)   /* bytes per file */
#define BW_CONF_MAX_LINE 4096
#define BW_CONF_MAX_LIST 64           /* uplinks, CIDR lists, allowlist entries in [Node] */
#define BW_CONF_MAX_ALLOWED_IPS 1024  /* per peer */
#define BW_CONF_MAX_PEERS 65536

/* UDP ports the datapath always treats as an overlay: VXLAN (4789, Linux's 8472), Geneve (6081). */
#define BW_CONF_OVERLAY_DEFAULTS { 4789, 8472, 6081 }

enum bw_conf_dir { BW_CONF_EGRESS = 1, BW_CONF_INGRESS = 2, BW_CONF_BOTH = 3 };

struct bw_conf_allow {
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t dir;   /* enum bw_conf_dir */
	uint16_t port;
};

struct bw_conf_node {
	char name[64];
	char uplinks[BW_CONF_MAX_LIST][16];
	size_t n_uplinks;
	struct bw_cidr protected_cidrs[BW_CONF_MAX_LIST]; /* the cluster's pod CIDRs */
	size_t n_protected;
	struct bw_cidr node_cidrs[BW_CONF_MAX_LIST];      /* the cluster's node addresses */
	size_t n_node_cidrs;
	struct bw_cidr pod_cidrs[BW_CONF_MAX_LIST];       /* this node's own pods */
	size_t n_pod_cidrs;
	bool node_encryption;
	struct bw_conf_allow allow[BW_CONF_MAX_LIST];
	size_t n_allow;
	uint16_t overlay_port;   /* the first of overlay_ports; 0: none configured */
	/* UDP ports of overlays (VXLAN, Geneve, FOU...) between nodes: encrypted like pod traffic.
	 * OverlayPort and OverlayPorts add up; BW_CONF_OVERLAY_DEFAULTS are protected regardless. */
	uint16_t overlay_ports[BW_CONF_MAX_LIST];
	size_t n_overlay_ports;
	bool no_flow_cache;      /* FlowCache = false: the datapath walks its tries for every packet */
	char state_dir[256];
	char peers_dir[256];
	char key_service[512];
	/* Attested mesh (wireguard-conf/README.md): the KBS resource every node's pairwise
	 * WireGuard PSKs are derived from, and how this node attests to get it. */
	char mesh_secret[256];   /* "" : no mesh secret (PSKs only as the peer files say) */
	char key_service_ca[256];/* "" : the system trust store */
	char attester[16];       /* tpm (default), tsm or sample */
	char tpm_tcti[256];      /* "" : tpm2-tss's default TCTI */
	/* Where peers come from: the peers directory (default) or the cluster's Node objects
	 * (userspace/k8s); with kubernetes, PeersDir is not read and PodCIDRs come from the Node. */
	enum { BW_PEERS_DIRECTORY, BW_PEERS_KUBERNETES } peer_source;
	char kube_api[512];      /* "" : https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT */
	char kube_token_file[256]; /* "" : the service account token */
	char kube_ca_file[256];  /* "" : the service account CA */
	char kubeconfig[256];    /* a kubeconfig file instead of the three above ("" : none) */
};

struct bw_conf_iface {
	char device[16];
	char private_key_file[256];
	uint16_t listen_port;
	uint32_t fwmark;
	uint32_t mtu;            /* 0: derive from the uplink */
};

struct bw_conf_peer {
	char file[256];          /* where it came from, for messages */
	char node[64];
	uint8_t public_key[32];
	bool has_psk;
	uint8_t psk[32];         /* wiped by bw_conf_free */
	union bw_sockaddr endpoint; /* parsed from "a.b.c.d:port" / "[v6]:port"; AF_UNSPEC: none */
	struct bw_cidr *allowed_ips;
	size_t n_allowed_ips;
	uint16_t keepalive;
};

struct bw_conf {
	char path[256];
	/* The peer file that holds this node itself (same public key as PrivateKeyFile's), left
	 * out of peers: when every node gets the same peer set, its own file is among them. */
	char self_peer[256];
	/* Where the peers come from, resolved once (bw_conf_load): PeersDir against the node file's
	 * directory; with PeerSource = kubernetes the node file's directory (what is watched). */
	char peers_path[4096];
	struct bw_conf_node node;
	struct bw_conf_iface iface;
	struct bw_conf_peer *peers;
	size_t n_peers;
};

/* Parse a node file's text (path only for messages). On error err holds "path:line: what". */
int bw_conf_parse_node(const char *path, const char *text, struct bw_conf *out, char *err, size_t errlen);
/* Parse one peer file's text into *out (allocates allowed_ips). */
int bw_conf_parse_peer(const char *path, const char *text, struct bw_conf_peer *out, char *err, size_t errlen);
/*
 * Read the node file, then every *.conf in its PeersDir (sorted); all or nothing. A relative
 * PeersDir is relative to the node file's directory, an absolute one may be anywhere (its own
 * mount). The node file itself is never read as a peer, even in the same directory. Name, when
 * the file has none, comes from the NODE_NAME environment variable, else the host name (lower
 * case); bw_conf_set_node_name overrides all three. A peer with this node's own
 * public key is left out and named in self_peer.
 */
int bw_conf_load(const char *node_file, struct bw_conf *out, char *err, size_t errlen);
/*
 * The node's name for every later parse, over the file's Name, NODE_NAME and the host name
 * (bulwarkd --node-name); NULL clears it. -EINVAL when it is not a node name.
 */
int bw_conf_set_node_name(const char *name);
/* Read only the peers directory (for reconcile on change). */
int bw_conf_load_peers(const char *dir, struct bw_conf_peer **out, size_t *n, char *err, size_t errlen);
void bw_conf_peers_free(struct bw_conf_peer *peers, size_t n);
void bw_conf_free(struct bw_conf *c);

/*
 * Watching the node file and the peers directory (wireguard-conf/watch.c): changes by hand, by
 * `mv`, and kubelet's atomic `..data` symlink swaps in ConfigMap/Secret volumes. Call arm after
 * init and again after every event, before reading the configuration (a swap retires the
 * directories a watch followed). arm returns the first error (the peers directory's first) but
 * arms what it can. read drains the inotify fd: 1 when something happened, 0 when not.
 */
#define BW_CONF_WATCH_MAX 32
struct bw_conf_watch {
	int fd;
	int wd[BW_CONF_WATCH_MAX];
	size_t n;
};
int bw_conf_watch_init(struct bw_conf_watch *w);
int bw_conf_watch_arm(struct bw_conf_watch *w, const char *node_file, const char *peers_dir);
int bw_conf_watch_read(struct bw_conf_watch *w);
void bw_conf_watch_close(struct bw_conf_watch *w);

/*
 * Writers. bw_conf_write_node emits the node file; bw_conf_write_peer a peer file. With wg_only,
 * bulwark-only keys are left out and the result is what `wg setconf` accepts (the [Interface]
 * part then carries PrivateKey only when private_key is given).
 */
int bw_conf_write_node(FILE *f, const struct bw_conf *c);
int bw_conf_write_peer(FILE *f, const struct bw_conf_peer *p, bool wg_only);
int bw_conf_write_wg(FILE *f, const struct bw_conf *c, const uint8_t *private_key);

#endif
