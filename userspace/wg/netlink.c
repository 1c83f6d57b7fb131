// SPDX-License-Identifier: GPL-2.0-only
/* One netlink exchange over libmnl: what the genl backend (kernel.c) and rtnl (link.c) share. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include "wg/internal.h"

int bw_nl_open(struct bw_nl *n, int bus)
{
	memset(n, 0, sizeof(*n));
	n->seq = (unsigned)time(NULL);
	if (!(n->sock = mnl_socket_open(bus)))
		return -errno;
	if (mnl_socket_bind(n->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;
		bw_nl_close(n);
		return r;
	}
	n->portid = mnl_socket_get_portid(n->sock);
	return 0;
}

void bw_nl_close(struct bw_nl *n)
{
	if (n->sock)
		mnl_socket_close(n->sock);
	n->sock = NULL;
}

int bw_nl_run(struct bw_nl *n, struct nlmsghdr *nlh, int (*cb)(const struct nlmsghdr *, void *), void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE * 4];
	unsigned seq = nlh->nlmsg_seq = ++n->seq;

	if (mnl_socket_sendto(n->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(n->sock, buf, sizeof(buf));
		int r;

		if (len < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)len, seq, n->portid, cb, data);
		if (r <= MNL_CB_STOP)
			return r < 0 ? -errno : 0;
	}
}
