// SPDX-License-Identifier: GPL-2.0-only
/* The WireGuard device as the configuration wants it: key, port, fwmark, MTU, up. The device's
 * life (link or wireguard-go) is wg/'s; this file reports failures in msg and never prints. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include "net/net.h"
#include "wg/wg.h"

unsigned bw_net_mtu_for(unsigned uplink_mtu)
{
	return uplink_mtu > BW_WG_OVERHEAD + 1280 ? ((uplink_mtu - BW_WG_OVERHEAD) & ~15u) : 1280;
}

/* Remove a device this process created, and wait (bounded) for its wireguard-go to be gone. */
int bw_net_device_undo(const struct bw_conf *c, char *msg, size_t len)
{
	int r = bw_wg_device_del(c->iface.device, true, msg, len);

	if (r == 0)
		snprintf(msg, len, "rolled back: removed %s, which this run had created", c->iface.device);
	return r;
}

int bw_net_device_up(const struct bw_conf *c, bool *created, struct bw_notes *notes, char *msg, size_t len)
{
	const char *name = c->iface.device;
	_cleanup_secret_ struct bw_secret key = { 0 };
	struct bw_wg_device dev = { 0 };
	char note[160] = "";
	bool made = false;
	unsigned mtu = 1500;
	int r;

	if ((r = bw_net_node_key(c, true, &key, notes)) < 0) {
		snprintf(msg, len, "WireGuard key %s: %s", c->iface.private_key_file,
			 r == -EPERM ? "must be 0600 and owned by us" : strerror(-r));
		return r;
	}
	if (bw_wg_remove_stale(name) > 0)
		snprintf(note, sizeof(note), "removed stale UAPI socket of %s (no wireguard-go listening)", name);
	if ((r = bw_wg_device_add(name, msg, len)) >= 0)
		made = true;
	else if (r != -EEXIST)
		goto out;
	if (!c->iface.mtu && bw_wg_link_mtu(c->node.uplinks[0], &mtu) < 0)
		mtu = 1500;
	mtu = c->iface.mtu ? c->iface.mtu : bw_net_mtu_for(mtu);
	memcpy(dev.private_key, key.data, BW_WG_KEY_LEN);
	dev.flags = BW_WGDEV_HAS_PRIVATE_KEY | BW_WGDEV_HAS_LISTEN_PORT | BW_WGDEV_HAS_FWMARK;
	dev.listen_port = c->iface.listen_port;
	dev.fwmark = c->iface.fwmark;
	r = bw_wg_set(name, &dev);
	OPENSSL_cleanse(dev.private_key, sizeof(dev.private_key));
	if (r < 0) {
		snprintf(msg, len, "configuring %s: %s", name, strerror(-r));
		goto out;
	}
	if ((r = bw_wg_link_up(name, mtu)) < 0)
		snprintf(msg, len, "bringing %s up with MTU %u: %s", name, mtu, strerror(-r));
out:
	/* Half-made is worse than not made: a device we created and could not finish goes again. */
	if (r < 0 && made) {
		char undo[160];
		size_t l = strlen(msg);

		bw_net_device_undo(c, undo, sizeof(undo));
		snprintf(msg + l, len - l, "; %s", undo);
		made = false;
	} else if (r == 0) {
		snprintf(msg, len, "%s", note);
	}
	if (created)
		*created = made;
	return r;
}

int bw_net_down(const struct bw_conf *c, char *msg, size_t len)
{
	/* wireguard-go exits when its TUN device is gone. */
	return bw_wg_device_del(c->iface.device, false, msg, len);
}
