// SPDX-License-Identifier: GPL-2.0-only
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"

int bw_cidr_parse(const char *s, struct bw_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	char *end;
	long len;
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int bits;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = 4, bits = 32;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = 6, bits = 128;
	else
		return -EINVAL;
	if (!slash) {
		out->len = bits;
		return 0;
	}
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	if (errno || *end || end == slash + 1 || len < 0 || len > bits)
		return -EINVAL;
	out->len = (uint8_t)len;
	/* Host bits set usually means a typo in the prefix; refuse rather than guess. */
	for (int i = out->len; i < bits; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	return 0;
}

const char *bw_cidr_str(const struct bw_cidr *c, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, c->len);
	return buf;
}

bool bw_cidr_eq(const struct bw_cidr *a, const struct bw_cidr *b)
{
	return a->family == b->family && a->len == b->len && !memcmp(a->addr, b->addr, 16);
}

int bw_endpoint_parse(const char *s, union bw_sockaddr *out)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (!colon || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &out->in6.sin6_addr) != 1)
			return -EINVAL;
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &out->in.sin_addr) != 1)
		return -EINVAL;
	out->in.sin_family = AF_INET;
	out->in.sin_port = htons((uint16_t)port);
	return 0;
}

const char *bw_endpoint_str(const union bw_sockaddr *ep, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (ep->sa.sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", inet_ntop(AF_INET6, &ep->in6.sin6_addr, a, sizeof(a)),
			 ntohs(ep->in6.sin6_port));
	else if (ep->sa.sa_family == AF_INET)
		snprintf(buf, size, "%s:%u", inet_ntop(AF_INET, &ep->in.sin_addr, a, sizeof(a)),
			 ntohs(ep->in.sin_port));
	else
		snprintf(buf, size, "(none)");
	return buf;
}

bool bw_endpoint_eq(const union bw_sockaddr *a, const union bw_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET6)
		return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) && a->in6.sin6_port == b->in6.sin6_port;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr && a->in.sin_port == b->in.sin_port;
	return true;
}
