// SPDX-License-Identifier: GPL-2.0-only
/* The WireGuard device's link over rtnetlink (libmnl): create, inspect, bring up, delete. */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include "wg/internal.h"

extern char **environ;

struct link_info {
	unsigned mtu;
	char kind[32];
};

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_info *li = data;
	struct nlattr *a, *b;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_MTU:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				li->mtu = mnl_attr_get_u32(a);
			break;
		case IFLA_LINKINFO:
			mnl_attr_for_each_nested(b, a)
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND &&
				    mnl_attr_validate(b, MNL_TYPE_STRING) == 0)
					snprintf(li->kind, sizeof(li->kind), "%s", mnl_attr_get_str(b));
			break;
		}
	}
	return MNL_CB_OK;
}

static struct nlmsghdr *link_msg(char *buf, uint16_t type, uint16_t flags, const char *ifname)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	return nlh;
}

/* One request on a fresh rtnetlink socket. */
static int rtnl(struct nlmsghdr *nlh, struct link_info *li)
{
	struct bw_nl n;
	int r = bw_nl_open(&n, NETLINK_ROUTE);

	if (r < 0)
		return r;
	r = bw_nl_run(&n, nlh, li ? link_cb : NULL, li);
	bw_nl_close(&n);
	return r;
}

static int link_get(const char *ifname, struct link_info *li)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	memset(li, 0, sizeof(*li));
	return rtnl(link_msg(buf, RTM_GETLINK, 0, ifname), li);
}

int bw_wg_link_kind(const char *ifname, char *kind, size_t size)
{
	struct link_info li;
	int r = link_get(ifname, &li);

	if (r == 0)
		snprintf(kind, size, "%s", li.kind);
	return r;
}

int bw_wg_link_mtu(const char *ifname, unsigned *mtu)
{
	struct link_info li;
	int r = link_get(ifname, &li);

	if (r == 0)
		*mtu = li.mtu;
	return r;
}

int bw_wg_link_up(const char *ifname, unsigned mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifname);
	struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return rtnl(nlh, NULL);
}

static int kernel_link_add(const char *ifname)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifname);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);

	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "wireguard");
	mnl_attr_nest_end(nlh, info);
	return rtnl(nlh, NULL);
}

/* wireguard-go daemonises itself; wait (5 s) for its UAPI socket. */
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

int bw_wg_device_add(const char *ifname, char *err, size_t errlen)
{
	int rk, r;

	if (bw_wg_uapi_exists(ifname) || if_nametoindex(ifname))
		return -EEXIST;
	/* Kernel WireGuard when the kernel has it (the link kind exists), wireguard-go otherwise. */
	if ((rk = kernel_link_add(ifname)) == 0)
		return BW_WG_KERNEL;
	if ((r = start_wireguard_go(ifname)) == 0)
		return BW_WG_USERSPACE;
	snprintf(err, errlen, "cannot create WireGuard device %s: no kernel WireGuard (%s) and wireguard-go failed (%s)",
		 ifname, strerror(-rk), strerror(-r));
	return r;
}

int bw_wg_device_del(const char *ifname, bool wait, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	bool uapi = wait && bw_wg_uapi_exists(ifname);
	int r = rtnl(link_msg(buf, RTM_DELLINK, 0, ifname), NULL);

	if (r == -ENODEV)
		r = 0;
	if (r < 0) {
		snprintf(err, errlen, "deleting %s: %s", ifname, strerror(-r));
		return r;
	}
	/* wireguard-go exits when its TUN device is gone: wait (5 s) for its socket to go. */
	for (int i = 0; uapi && i < 50 && bw_wg_uapi_exists(ifname); i++)
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	if (uapi && bw_wg_uapi_exists(ifname)) {
		snprintf(err, errlen, "deleted %s, but its wireguard-go did not exit", ifname);
		return -EBUSY;
	}
	return 0;
}

int bw_wg_remove_stale(const char *ifname)
{
	int r;

	if (bw_wg_uapi_dead(ifname) != 1)
		return 0;
	r = bw_wg_uapi_unlink(ifname);
	return r < 0 ? r : 1;
}
