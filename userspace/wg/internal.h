/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The two WireGuard backends behind wg.h (as wireguard-tools' ipc-linux.h / ipc-uapi.h):
 * kernel.c speaks generic netlink, uapi.c wireguard-go's text protocol. wg.h dispatches on one
 * probe (bw_wg_backend_of); nothing outside wg/ includes this header.
 */
#ifndef BW_WG_INTERNAL_H
#define BW_WG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "wg/wg.h"

/* kernel.c: generic netlink family "wireguard" (libmnl). */
int bw_wg_kernel_get(const char *ifname, struct bw_wg_device **out);
int bw_wg_kernel_set(const char *ifname, const struct bw_wg_device *dev);

/* uapi.c: /var/run/wireguard/<ifname>.sock (wireguard-go). */
int bw_wg_uapi_get(const char *ifname, struct bw_wg_device **out);
int bw_wg_uapi_set(const char *ifname, const struct bw_wg_device *dev);
bool bw_wg_uapi_exists(const char *ifname);
/* A socket nobody listens on; -1: cannot tell (treated as alive). */
int bw_wg_uapi_dead(const char *ifname);
int bw_wg_uapi_unlink(const char *ifname);

/* netlink.c: one request/response exchange over a libmnl socket, shared by genl and rtnl. */
struct mnl_socket;
struct nlmsghdr;
struct bw_nl {
	struct mnl_socket *sock;
	unsigned seq, portid;
};
int bw_nl_open(struct bw_nl *n, int bus);
void bw_nl_close(struct bw_nl *n);
/* Send nlh (its seq is set here), run cb on every reply until the ACK/DONE; 0 or -errno. */
int bw_nl_run(struct bw_nl *n, struct nlmsghdr *nlh, int (*cb)(const struct nlmsghdr *, void *), void *data);

/* link.c: rtnetlink. The link's kind ("wireguard" for a kernel device), "" when it has none;
 * -ENODEV when there is no such link. */
int bw_wg_link_kind(const char *ifname, char *kind, size_t size);

#endif
