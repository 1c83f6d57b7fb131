// SPDX-License-Identifier: GPL-2.0-only
/* This node's [Peer] stanza for the other nodes' peers directories. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <string.h>
#include "net/net.h"
#include "wg/wg.h"

/* The first IPv4 address of the first uplink, else its first global IPv6 address. */
static int uplink_address(const struct bw_conf *c, struct bw_cidr *out)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (int want = AF_INET; want && !found; want = want == AF_INET ? AF_INET6 : 0)
		for (i = ifa; i && !found; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != want || strcmp(i->ifa_name, c->node.uplinks[0]))
				continue;
			memset(out, 0, sizeof(*out));
			if (want == AF_INET) {
				memcpy(out->addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
				out->family = 4, out->len = 32;
			} else {
				const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
				if (IN6_IS_ADDR_LINKLOCAL(a))
					continue;
				memcpy(out->addr, a, 16);
				out->family = 6, out->len = 128;
			}
			found = 1;
		}
	freeifaddrs(ifa);
	return found ? 0 : -EADDRNOTAVAIL;
}

int bw_net_export_peer(const struct bw_conf *c, const char *endpoint, FILE *out)
{
	_cleanup_secret_ struct bw_secret key = { 0 };
	struct bw_conf_peer p = { 0 };
	struct bw_cidr addr, allowed[BW_CONF_MAX_LIST + 1];
	int r;

	if ((r = bw_net_node_key(c, false, &key, NULL)) < 0)
		return r;
	if ((r = bw_wg_public_key(key.data, p.public_key)) < 0)
		return r;
	snprintf(p.node, sizeof(p.node), "%s", c->node.name);
	r = uplink_address(c, &addr);
	if (endpoint) {
		if (bw_endpoint_parse(endpoint, &p.endpoint) < 0)
			return -EINVAL;
	} else if (r == 0) {
		if (addr.family == 4) {
			p.endpoint.in.sin_family = AF_INET;
			memcpy(&p.endpoint.in.sin_addr, addr.addr, 4);
			p.endpoint.in.sin_port = htons(c->iface.listen_port);
		} else {
			p.endpoint.in6.sin6_family = AF_INET6;
			memcpy(&p.endpoint.in6.sin6_addr, addr.addr, 16);
			p.endpoint.in6.sin6_port = htons(c->iface.listen_port);
		}
	} else {
		return r;
	}
	memcpy(allowed, c->node.pod_cidrs, c->node.n_pod_cidrs * sizeof(allowed[0]));
	p.n_allowed_ips = c->node.n_pod_cidrs;
	/* With node encryption the node's own address travels inside WireGuard too. */
	if (c->node.node_encryption && r == 0)
		allowed[p.n_allowed_ips++] = addr;
	p.allowed_ips = allowed;
	return bw_conf_write_peer(out, &p, false);
}
