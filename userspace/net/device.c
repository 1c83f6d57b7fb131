// SPDX-License-Identifier: GPL-2.0-only
/* The WireGuard link: kernel device via libnl-route, or a wireguard-go process. */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <netlink/route/link.h>
#include <openssl/crypto.h>
#include "net/net.h"
#include "wg/wg.h"

extern char **environ;

unsigned bw_net_mtu_for(unsigned uplink_mtu)
{
	return uplink_mtu > BW_WG_OVERHEAD + 1280 ? ((uplink_mtu - BW_WG_OVERHEAD) & ~15u) : 1280;
}

static int nl_sock(struct nl_sock **out)
{
	struct nl_sock *s = nl_socket_alloc();
	int r;

	if (!s)
		return -ENOMEM;
	if ((r = nl_connect(s, NETLINK_ROUTE)) < 0) {
		nl_socket_free(s);
		return -ECONNREFUSED;
	}
	*out = s;
	return 0;
}

static int create_kernel_link(struct nl_sock *s, const char *name)
{
	struct rtnl_link *l = rtnl_link_alloc();
	int r;

	if (!l)
		return -ENOMEM;
	rtnl_link_set_name(l, name);
	r = rtnl_link_set_type(l, "wireguard");
	if (r == 0)
		r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(l);
	if (r == -NLE_EXIST)
		return 0;
	return r < 0 ? -EOPNOTSUPP : 0;
}

/* wireguard-go daemonises itself; wait for its UAPI socket. */
static int start_wireguard_go(const char *name)
{
	char *argv[] = { "wireguard-go", (char *)name, NULL };
	pid_t pid;
	int status, r;

	r = posix_spawnp(&pid, "wireguard-go", NULL, NULL, argv, environ);
	if (r)
		return -r;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return -ECHILD;
	for (int i = 0; i < 50 && !bw_wg_uapi_exists(name); i++)
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	return bw_wg_uapi_exists(name) ? 0 : -ETIMEDOUT;
}

static unsigned uplink_mtu(struct nl_sock *s, const struct bw_conf *c)
{
	struct rtnl_link *l = NULL;
	unsigned mtu = 1500;

	if (rtnl_link_get_kernel(s, 0, c->node.uplinks[0], &l) == 0) {
		mtu = rtnl_link_get_mtu(l);
		rtnl_link_put(l);
	}
	return mtu;
}

static int set_up(struct nl_sock *s, const char *name, unsigned mtu)
{
	struct rtnl_link *cur = NULL, *chg = rtnl_link_alloc();
	int r;

	if (!chg)
		return -ENOMEM;
	if ((r = rtnl_link_get_kernel(s, 0, name, &cur)) < 0) {
		rtnl_link_put(chg);
		return -ENODEV;
	}
	rtnl_link_set_mtu(chg, mtu);
	rtnl_link_set_flags(chg, IFF_UP);
	r = rtnl_link_change(s, cur, chg, 0);
	rtnl_link_put(cur);
	rtnl_link_put(chg);
	return r < 0 ? -EIO : 0;
}

/* Remove a device this process created, and wait (bounded) for its wireguard-go to be gone. */
int bw_net_device_undo(const struct bw_conf *c)
{
	int r = bw_net_down(c);

	for (int i = 0; i < 50 && bw_wg_uapi_exists(c->iface.device); i++)
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	if (bw_wg_uapi_exists(c->iface.device))
		bw_err("rolling back: wireguard-go of %s did not exit", c->iface.device);
	else
		bw_info("rolled back: removed %s, which this run had created", c->iface.device);
	return r;
}

int bw_net_device_up(const struct bw_conf *c, bool *created)
{
	const char *name = c->iface.device;
	struct nl_sock *s = NULL;
	_cleanup_secret_ struct bw_secret key = { 0 };
	struct bw_wg_device dev = { 0 };
	bool made = false;
	unsigned mtu;
	int r;

	if ((r = bw_net_node_key(c, true, &key)) < 0) {
		bw_err("WireGuard key %s: %s", c->iface.private_key_file,
		       r == -EPERM ? "must be 0600 and owned by us" : strerror(-r));
		return r;
	}
	if ((r = nl_sock(&s)) < 0)
		return r;
	if ((r = bw_wg_uapi_remove_stale(name)) > 0)
		bw_warn("removed stale UAPI socket of %s (no wireguard-go listening)", name);
	if (!bw_wg_uapi_exists(name) && !if_nametoindex(name)) {
		/* Kernel WireGuard when the kernel has it, wireguard-go otherwise. */
		if ((!bw_wg_kernel_available() || create_kernel_link(s, name) < 0) &&
		    (r = start_wireguard_go(name)) < 0) {
			bw_err("cannot create WireGuard device %s: no kernel WireGuard and wireguard-go failed (%s)",
			       name, strerror(-r));
			goto out;
		}
		made = true;
	}
	mtu = c->iface.mtu ? c->iface.mtu : bw_net_mtu_for(uplink_mtu(s, c));
	memcpy(dev.private_key, key.data, BW_WG_KEY_LEN);
	dev.flags = BW_WGDEV_HAS_PRIVATE_KEY | BW_WGDEV_HAS_LISTEN_PORT | BW_WGDEV_HAS_FWMARK;
	dev.listen_port = c->iface.listen_port;
	dev.fwmark = c->iface.fwmark;
	r = bw_wg_set(name, &dev);
	OPENSSL_cleanse(dev.private_key, sizeof(dev.private_key));
	if (r < 0) {
		bw_err("configuring %s: %s", name, strerror(-r));
		goto out;
	}
	r = set_up(s, name, mtu);
out:
	nl_socket_free(s);
	/* Half-made is worse than not made: a device we created and could not finish goes again. */
	if (r < 0 && made) {
		bw_net_device_undo(c);
		made = false;
	}
	if (created)
		*created = made;
	return r;
}

int bw_net_down(const struct bw_conf *c)
{
	struct nl_sock *s = NULL;
	struct rtnl_link *l = NULL;
	int r;

	if ((r = nl_sock(&s)) < 0)
		return r;
	if (rtnl_link_get_kernel(s, 0, c->iface.device, &l) == 0) {
		r = rtnl_link_delete(s, l) < 0 ? -EIO : 0;
		rtnl_link_put(l);
	}
	nl_socket_free(s);
	/* wireguard-go exits when its TUN device is gone. */
	return r;
}
