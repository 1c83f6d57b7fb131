/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * WireGuard devices behind one interface; the backend is chosen per device by one probe:
 *  - kernel: generic netlink family "wireguard" (libmnl), for kernel WireGuard devices;
 *  - userspace: the UAPI protocol over /var/run/wireguard/<ifname>.sock (wireguard-go).
 * The backends themselves are private to wg/ (wg/internal.h).
 * All functions return 0 or a negative errno. Keys in these structs are wiped by the free
 * functions; callers keep private keys in struct bw_secret otherwise.
 */
#ifndef BULWARK_WG_H
#define BULWARK_WG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "common/common.h"

#define BW_WG_KEY_LEN 32

enum bw_wg_peer_flags {
	BW_WGPEER_REMOVE = 1 << 0,          /* remove this peer */
	BW_WGPEER_REPLACE_ALLOWEDIPS = 1 << 1,
	BW_WGPEER_UPDATE_ONLY = 1 << 2,     /* do not create the peer if missing */
	BW_WGPEER_HAS_PSK = 1 << 3,
	BW_WGPEER_HAS_ENDPOINT = 1 << 4,
	BW_WGPEER_HAS_KEEPALIVE = 1 << 5,
};

struct bw_wg_peer {
	uint8_t public_key[BW_WG_KEY_LEN];
	uint8_t psk[BW_WG_KEY_LEN];
	uint32_t flags;                    /* enum bw_wg_peer_flags (set), HAS_* (get) */
	union bw_sockaddr endpoint;        /* with BW_WGPEER_HAS_ENDPOINT */
	uint16_t keepalive;
	struct bw_cidr *allowed_ips;
	size_t n_allowed_ips;
	/* get only */
	int64_t last_handshake_sec;
	uint64_t rx_bytes, tx_bytes;
};

enum bw_wg_dev_flags {
	BW_WGDEV_HAS_PRIVATE_KEY = 1 << 0,
	BW_WGDEV_HAS_LISTEN_PORT = 1 << 1,
	BW_WGDEV_HAS_FWMARK = 1 << 2,
	BW_WGDEV_REPLACE_PEERS = 1 << 3,
	BW_WGDEV_HAS_PUBLIC_KEY = 1 << 4, /* get only */
};

struct bw_wg_device {
	char name[16];
	uint32_t flags;
	uint8_t private_key[BW_WG_KEY_LEN];
	uint8_t public_key[BW_WG_KEY_LEN];
	uint16_t listen_port;
	uint32_t fwmark;
	struct bw_wg_peer *peers;
	size_t n_peers;
};

enum bw_wg_backend { BW_WG_NONE, BW_WG_KERNEL, BW_WG_USERSPACE };

/* Which backend serves ifname in the current network namespace (BW_WG_NONE: no such device):
 * one probe, no dump. bw_wg_get and bw_wg_set dispatch on it. */
enum bw_wg_backend bw_wg_backend_of(const char *ifname);
const char *bw_wg_backend_name(enum bw_wg_backend b);

int bw_wg_get(const char *ifname, struct bw_wg_device **out);
/* Apply dev (peers are changes, not the full set, unless BW_WGDEV_REPLACE_PEERS). */
int bw_wg_set(const char *ifname, const struct bw_wg_device *dev);
void bw_wg_device_free(struct bw_wg_device *dev);

/*
 * The device's life (rtnetlink via libmnl, or a wireguard-go process). Failures fill err.
 * add: a kernel WireGuard link when the kernel has WireGuard, else `wireguard-go ifname` (waits
 * 5 s for its socket); returns the backend made, -EEXIST when the device exists.
 * del: removes the link (a missing one is not an error); with wait, waits 5 s for wireguard-go
 * to exit (-EBUSY when it did not).
 */
int bw_wg_device_add(const char *ifname, char *err, size_t errlen);
int bw_wg_device_del(const char *ifname, bool wait, char *err, size_t errlen);
/* A UAPI socket nobody listens on (wireguard-go gone) is stale: remove it. 1 removed, 0 none. */
int bw_wg_remove_stale(const char *ifname);
/* The device exists and, for wireguard-go, its process answers on the UAPI socket. */
bool bw_wg_device_alive(const char *ifname);
/* Any link's MTU; set a link's MTU (0: keep) and bring it up. */
int bw_wg_link_mtu(const char *ifname, unsigned *mtu);
int bw_wg_link_up(const char *ifname, unsigned mtu);

/* X25519: public key for a private key (OpenSSL). */
int bw_wg_public_key(const uint8_t priv[BW_WG_KEY_LEN], uint8_t pub[BW_WG_KEY_LEN]);
/* Generate a private key into s (32 bytes of locked memory). */
int bw_wg_generate_key(struct bw_secret *s);

#endif
