// SPDX-License-Identifier: GPL-2.0-only
/* Backend choice, keys and endpoints shared by both backends. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "wg/wg.h"

enum bw_wg_backend bw_wg_backend_of(const char *ifname)
{
	struct bw_wg_device *d = NULL;

	/* A userspace device is a TUN with a UAPI socket; a kernel one answers genl. */
	if (bw_wg_uapi_exists(ifname))
		return BW_WG_USERSPACE;
	if (if_nametoindex(ifname) && bw_wg_kernel_available() && bw_wg_kernel_get(ifname, &d) == 0) {
		bw_wg_device_free(d);
		return BW_WG_KERNEL;
	}
	return BW_WG_NONE;
}

const char *bw_wg_backend_name(enum bw_wg_backend b)
{
	return b == BW_WG_KERNEL ? "kernel" : b == BW_WG_USERSPACE ? "userspace" : "none";
}

int bw_wg_get(const char *ifname, struct bw_wg_device **out)
{
	switch (bw_wg_backend_of(ifname)) {
	case BW_WG_USERSPACE: return bw_wg_uapi_get(ifname, out);
	case BW_WG_KERNEL: return bw_wg_kernel_get(ifname, out);
	default: return -ENODEV;
	}
}

int bw_wg_set(const char *ifname, const struct bw_wg_device *dev)
{
	if (bw_wg_uapi_exists(ifname))
		return bw_wg_uapi_set(ifname, dev);
	if (if_nametoindex(ifname) && bw_wg_kernel_available())
		return bw_wg_kernel_set(ifname, dev);
	return -ENODEV;
}

void bw_wg_device_free(struct bw_wg_device *dev)
{
	if (!dev)
		return;
	for (size_t i = 0; i < dev->n_peers; i++) {
		OPENSSL_cleanse(dev->peers[i].psk, sizeof(dev->peers[i].psk));
		free(dev->peers[i].allowed_ips);
	}
	free(dev->peers);
	OPENSSL_cleanse(dev, sizeof(*dev));
	free(dev);
}

int bw_wg_public_key(const uint8_t priv[BW_WG_KEY_LEN], uint8_t pub[BW_WG_KEY_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, BW_WG_KEY_LEN);
	size_t len = BW_WG_KEY_LEN;
	int r = 0;

	if (!k)
		return -EINVAL;
	if (EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != BW_WG_KEY_LEN)
		r = -EINVAL;
	EVP_PKEY_free(k);
	return r;
}

int bw_wg_generate_key(struct bw_secret *s)
{
	int r = bw_secret_new(s, BW_WG_KEY_LEN);

	if (r < 0)
		return r;
	if (RAND_priv_bytes(s->data, BW_WG_KEY_LEN) != 1) {
		bw_secret_free(s);
		return -EIO;
	}
	/* Curve25519 clamping, as `wg genkey` does. */
	s->data[0] &= 248;
	s->data[31] = (s->data[31] & 127) | 64;
	return 0;
}

int bw_wg_endpoint_parse(const char *s, struct bw_wg_peer *p)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port == 0 || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(&p->endpoint, 0, sizeof(p->endpoint));
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &p->endpoint.in6.sin6_addr) != 1)
			return -EINVAL;
		p->endpoint.in6.sin6_family = AF_INET6;
		p->endpoint.in6.sin6_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET, host, &p->endpoint.in.sin_addr) == 1) {
		p->endpoint.in.sin_family = AF_INET;
		p->endpoint.in.sin_port = htons((uint16_t)port);
	} else {
		return -EINVAL; /* numeric only: resolving names here would hide failures */
	}
	p->flags |= BW_WGPEER_HAS_ENDPOINT;
	return 0;
}

const char *bw_wg_endpoint_str(const struct bw_wg_peer *p, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (!(p->flags & BW_WGPEER_HAS_ENDPOINT))
		snprintf(buf, size, "(none)");
	else if (p->endpoint.sa.sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", inet_ntop(AF_INET6, &p->endpoint.in6.sin6_addr, a, sizeof(a)),
			 ntohs(p->endpoint.in6.sin6_port));
	else
		snprintf(buf, size, "%s:%u", inet_ntop(AF_INET, &p->endpoint.in.sin_addr, a, sizeof(a)),
			 ntohs(p->endpoint.in.sin_port));
	return buf;
}
