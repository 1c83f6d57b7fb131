// SPDX-License-Identifier: GPL-2.0-only
/* The kernel backend: WireGuard's generic netlink family (libmnl). */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <openssl/crypto.h>
#include "wg/internal.h"

/* wireguard-tools' size: a page, capped at 8 KiB; large sets are split across messages. */
#define WG_BUF 8192

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr))
		if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID)
			*(uint16_t *)data = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static struct nlmsghdr *genl_hdr(char *buf, uint16_t type, uint16_t flags, uint8_t cmd)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = cmd == CTRL_CMD_GETFAMILY ? 1 : WG_GENL_VERSION;
	return nlh;
}

/* A genl socket with the wireguard family resolved; -EPROTONOSUPPORT without kernel WireGuard. */
static int genl_open(struct bw_nl *n, uint16_t *family)
{
	char buf[256];
	struct nlmsghdr *nlh;
	int r;

	if ((r = bw_nl_open(n, NETLINK_GENERIC)) < 0)
		return r;
	*family = 0;
	nlh = genl_hdr(buf, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, CTRL_CMD_GETFAMILY);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	r = bw_nl_run(n, nlh, family_cb, family);
	if (r < 0 || !*family) {
		bw_nl_close(n);
		return r < 0 && r != -ENOENT ? r : -EPROTONOSUPPORT;
	}
	return 0;
}

/* ---- get ---- */

struct get_ctx {
	struct bw_wg_device *d;
	int err;
};

static int parse_allowed(const struct nlattr *nest, struct bw_wg_peer *p)
{
	struct nlattr *a, *b;

	mnl_attr_for_each_nested(a, nest) {
		struct bw_cidr c = { 0 };
		struct bw_cidr *na;
		uint16_t fam = 0;

		mnl_attr_for_each_nested(b, a) {
			switch (mnl_attr_get_type(b)) {
			case WGALLOWEDIP_A_FAMILY: fam = mnl_attr_get_u16(b); break;
			case WGALLOWEDIP_A_IPADDR:
				memcpy(c.addr, mnl_attr_get_payload(b), mnl_attr_get_payload_len(b) > 16 ? 16 : mnl_attr_get_payload_len(b));
				break;
			case WGALLOWEDIP_A_CIDR_MASK: c.len = mnl_attr_get_u8(b); break;
			}
		}
		c.family = fam == AF_INET6 ? 6 : 4;
		if (!(na = realloc(p->allowed_ips, (p->n_allowed_ips + 1) * sizeof(*na))))
			return -ENOMEM;
		p->allowed_ips = na;
		na[p->n_allowed_ips++] = c;
	}
	return 0;
}

static int parse_peer(const struct nlattr *nest, struct bw_wg_device *d)
{
	struct bw_wg_peer tmp = { 0 }, *p = &tmp;
	const struct nlattr *a;
	const void *key = NULL;
	int r = 0;

	mnl_attr_for_each_nested(a, nest)
		if (mnl_attr_get_type(a) == WGPEER_A_PUBLIC_KEY && mnl_attr_get_payload_len(a) == BW_WG_KEY_LEN)
			key = mnl_attr_get_payload(a);
	if (!key)
		return -EPROTO;
	/* A peer split across dump messages continues in the next one: merge by key. */
	if (d->n_peers && !memcmp(d->peers[d->n_peers - 1].public_key, key, BW_WG_KEY_LEN)) {
		p = &d->peers[d->n_peers - 1];
	} else {
		struct bw_wg_peer *np = realloc(d->peers, (d->n_peers + 1) * sizeof(*np));
		if (!np)
			return -ENOMEM;
		d->peers = np;
		p = &np[d->n_peers++];
		memset(p, 0, sizeof(*p));
		memcpy(p->public_key, key, BW_WG_KEY_LEN);
	}
	mnl_attr_for_each_nested(a, nest) {
		switch (mnl_attr_get_type(a)) {
		case WGPEER_A_PRESHARED_KEY: {
			static const uint8_t zero[BW_WG_KEY_LEN];
			memcpy(p->psk, mnl_attr_get_payload(a), BW_WG_KEY_LEN);
			if (memcmp(p->psk, zero, BW_WG_KEY_LEN))
				p->flags |= BW_WGPEER_HAS_PSK;
			break;
		}
		case WGPEER_A_ENDPOINT: {
			size_t l = mnl_attr_get_payload_len(a);
			if (l == sizeof(struct sockaddr_in) || l == sizeof(struct sockaddr_in6)) {
				memcpy(&p->endpoint, mnl_attr_get_payload(a), l);
				p->flags |= BW_WGPEER_HAS_ENDPOINT;
			}
			break;
		}
		case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
			if ((p->keepalive = mnl_attr_get_u16(a)))
				p->flags |= BW_WGPEER_HAS_KEEPALIVE;
			break;
		case WGPEER_A_LAST_HANDSHAKE_TIME:
			p->last_handshake_sec = ((const struct timespec *)mnl_attr_get_payload(a))->tv_sec;
			break;
		case WGPEER_A_RX_BYTES: p->rx_bytes = mnl_attr_get_u64(a); break;
		case WGPEER_A_TX_BYTES: p->tx_bytes = mnl_attr_get_u64(a); break;
		case WGPEER_A_ALLOWEDIPS: r = parse_allowed(a, p); break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int get_cb(const struct nlmsghdr *nlh, void *data)
{
	struct get_ctx *g = data;
	struct bw_wg_device *d = g->d;
	struct nlattr *a, *p;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
		switch (mnl_attr_get_type(a)) {
		case WGDEVICE_A_PRIVATE_KEY:
			memcpy(d->private_key, mnl_attr_get_payload(a), BW_WG_KEY_LEN);
			d->flags |= BW_WGDEV_HAS_PRIVATE_KEY;
			break;
		case WGDEVICE_A_PUBLIC_KEY:
			memcpy(d->public_key, mnl_attr_get_payload(a), BW_WG_KEY_LEN);
			d->flags |= BW_WGDEV_HAS_PUBLIC_KEY;
			break;
		case WGDEVICE_A_LISTEN_PORT: d->listen_port = mnl_attr_get_u16(a); break;
		case WGDEVICE_A_FWMARK: d->fwmark = mnl_attr_get_u32(a); break;
		case WGDEVICE_A_PEERS:
			mnl_attr_for_each_nested(p, a)
				if ((g->err = parse_peer(p, d)) < 0)
					return MNL_CB_ERROR;
			break;
		}
	}
	return MNL_CB_OK;
}

int bw_wg_kernel_get(const char *ifname, struct bw_wg_device **out)
{
	char buf[256];
	struct get_ctx g = { calloc(1, sizeof(struct bw_wg_device)), 0 };
	struct nlmsghdr *nlh;
	struct bw_nl n;
	uint16_t family;
	int r;

	if (!g.d)
		return -ENOMEM;
	if ((r = genl_open(&n, &family)) < 0) {
		free(g.d);
		return r;
	}
	snprintf(g.d->name, sizeof(g.d->name), "%s", ifname);
	nlh = genl_hdr(buf, family, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, WG_CMD_GET_DEVICE);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	r = bw_nl_run(&n, nlh, get_cb, &g);
	bw_nl_close(&n);
	if (r < 0 || g.err < 0) {
		bw_wg_device_free(g.d);
		return g.err < 0 ? g.err : r;
	}
	*out = g.d;
	return 0;
}

/* ---- set ---- */

static bool put_allowed(struct nlmsghdr *nlh, const struct bw_cidr *c)
{
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, WG_BUF, 0);

	if (!nest)
		return false;
	if (!mnl_attr_put_u16_check(nlh, WG_BUF, WGALLOWEDIP_A_FAMILY, c->family == 4 ? AF_INET : AF_INET6) ||
	    !mnl_attr_put_check(nlh, WG_BUF, WGALLOWEDIP_A_IPADDR, c->family == 4 ? 4 : 16, c->addr) ||
	    !mnl_attr_put_u8_check(nlh, WG_BUF, WGALLOWEDIP_A_CIDR_MASK, c->len)) {
		mnl_attr_nest_cancel(nlh, nest);
		return false;
	}
	mnl_attr_nest_end(nlh, nest);
	return true;
}

/* Peer header attributes; first piece only for flags that must not repeat (REPLACE). */
static bool put_peer_head(struct nlmsghdr *nlh, const struct bw_wg_peer *p, bool first)
{
	uint32_t flags = 0;

	if (!mnl_attr_put_check(nlh, WG_BUF, WGPEER_A_PUBLIC_KEY, BW_WG_KEY_LEN, p->public_key))
		return false;
	if (p->flags & BW_WGPEER_REMOVE)
		flags |= WGPEER_F_REMOVE_ME;
	if (first && (p->flags & BW_WGPEER_REPLACE_ALLOWEDIPS))
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (p->flags & BW_WGPEER_UPDATE_ONLY)
		flags |= WGPEER_F_UPDATE_ONLY;
	if (flags && !mnl_attr_put_u32_check(nlh, WG_BUF, WGPEER_A_FLAGS, flags))
		return false;
	if (!first || (p->flags & BW_WGPEER_REMOVE))
		return true;
	if ((p->flags & BW_WGPEER_HAS_PSK) &&
	    !mnl_attr_put_check(nlh, WG_BUF, WGPEER_A_PRESHARED_KEY, BW_WG_KEY_LEN, p->psk))
		return false;
	if ((p->flags & BW_WGPEER_HAS_ENDPOINT) &&
	    !mnl_attr_put_check(nlh, WG_BUF, WGPEER_A_ENDPOINT,
				p->endpoint.sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
				&p->endpoint))
		return false;
	if ((p->flags & BW_WGPEER_HAS_KEEPALIVE) &&
	    !mnl_attr_put_u16_check(nlh, WG_BUF, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p->keepalive))
		return false;
	return true;
}

int bw_wg_kernel_set(const char *ifname, const struct bw_wg_device *dev)
{
	char *buf = calloc(1, WG_BUF);
	size_t peer = 0, aip = 0;
	bool first_msg = true;
	struct bw_nl n;
	uint16_t family;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	if ((r = genl_open(&n, &family)) < 0) {
		free(buf);
		return r;
	}
	/* Each message is applied on its own; device attributes ride only in the first. */
	do {
		struct nlmsghdr *nlh = genl_hdr(buf, family, NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE);
		struct nlattr *peers;
		bool full = false;

		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
		if (first_msg) {
			if (dev->flags & BW_WGDEV_HAS_PRIVATE_KEY)
				mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, BW_WG_KEY_LEN, dev->private_key);
			if (dev->flags & BW_WGDEV_HAS_LISTEN_PORT)
				mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev->listen_port);
			if (dev->flags & BW_WGDEV_HAS_FWMARK)
				mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev->fwmark);
			if (dev->flags & BW_WGDEV_REPLACE_PEERS)
				mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
		}
		first_msg = false;
		if (peer < dev->n_peers && (peers = mnl_attr_nest_start_check(nlh, WG_BUF, WGDEVICE_A_PEERS))) {
			for (; peer < dev->n_peers && !full; peer++, aip = 0) {
				const struct bw_wg_peer *p = &dev->peers[peer];
				struct nlattr *pn = mnl_attr_nest_start_check(nlh, WG_BUF, 0), *an = NULL;

				if (!pn || !put_peer_head(nlh, p, aip == 0)) {
					if (pn)
						mnl_attr_nest_cancel(nlh, pn);
					full = true;
					break;
				}
				if (p->n_allowed_ips && !(p->flags & BW_WGPEER_REMOVE)) {
					if (!(an = mnl_attr_nest_start_check(nlh, WG_BUF, WGPEER_A_ALLOWEDIPS))) {
						/* no room for the list: keep the head only if it is the first piece */
						full = true;
					} else {
						for (; aip < p->n_allowed_ips; aip++)
							if (!put_allowed(nlh, &p->allowed_ips[aip])) {
								full = true;
								break;
							}
						mnl_attr_nest_end(nlh, an);
					}
				}
				mnl_attr_nest_end(nlh, pn);
				if (full)
					break; /* resume this peer at allowed IP aip in the next message */
			}
			mnl_attr_nest_end(nlh, peers);
		}
		r = bw_nl_run(&n, nlh, NULL, NULL);
		OPENSSL_cleanse(buf, WG_BUF);
	} while (r == 0 && peer < dev->n_peers);
	bw_nl_close(&n);
	free(buf);
	return r;
}
