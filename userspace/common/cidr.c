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
