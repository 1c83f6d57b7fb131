// SPDX-License-Identifier: GPL-2.0-only
/* The userspace backend: the cross-platform UAPI (wireguard-go): text key=value requests over a unix socket. */
#include <errno.h>
#include <net/if.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <openssl/crypto.h>
#include "wg/internal.h"

#define UAPI_DIR "/var/run/wireguard"
#define UAPI_MAX_REPLY (64u << 20) /* a get of 65,536 peers fits */

static int sock_path(const char *ifname, struct sockaddr_un *sun)
{
	if (!*ifname || strchr(ifname, '/') || strlen(ifname) >= 16)
		return -EINVAL;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), UAPI_DIR "/%s.sock", ifname);
	return 0;
}

bool bw_wg_uapi_exists(const char *ifname)
{
	struct sockaddr_un sun;
	struct stat st;

	return sock_path(ifname, &sun) == 0 && stat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int bw_wg_uapi_dead(const char *ifname)
{
	struct sockaddr_un sun;
	int fd, dead;

	if (!bw_wg_uapi_exists(ifname) || sock_path(ifname, &sun) < 0)
		return 0;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	dead = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno == ECONNREFUSED;
	close(fd);
	return dead;
}

/* Nobody listens: wireguard-go died (SIGKILL, a container restart) and left it behind. */
int bw_wg_uapi_unlink(const char *ifname)
{
	struct sockaddr_un sun;
	int r = sock_path(ifname, &sun);

	if (r < 0)
		return r;
	return unlink(sun.sun_path) < 0 && errno != ENOENT ? -errno : 0;
}

static int uapi_connect(const char *ifname)
{
	struct sockaddr_un sun;
	int fd, r = sock_path(ifname, &sun);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = errno == ECONNREFUSED || errno == ENOENT ? -ENODEV : -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Send a request, read the reply up to the blank line that ends it. */
static int transact(const char *ifname, const char *req, size_t len, char **reply)
{
	_cleanup_close_ int fd = uapi_connect(ifname);
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (fd < 0)
		return fd;
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r;

		if (n + 4097 > cap) {
			char *nb;
			if (cap >= UAPI_MAX_REPLY) {
				free(buf);
				return -EMSGSIZE;
			}
			nb = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = recv(fd, buf + n, cap - n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (n >= 2 && !strcmp(buf + n - 2, "\n\n"))
			break;
	}
	if (!buf) {
		return -EPROTO;
	}
	buf[n] = '\0';
	*reply = buf;
	return 0;
}

static void hex(FILE *f, const char *key, const uint8_t *k)
{
	char h[2 * BW_WG_KEY_LEN + 1];

	bw_hex_encode(k, BW_WG_KEY_LEN, h);
	fprintf(f, "%s=%s\n", key, h);
	OPENSSL_cleanse(h, sizeof(h));
}

static int unhex(const char *s, uint8_t *k)
{
	return bw_hex_decode(s, k, BW_WG_KEY_LEN);
}

static int reply_errno(const char *reply)
{
	const char *e = strstr(reply, "errno=");
	long v;

	if (!e)
		return -EPROTO;
	v = strtol(e + 6, NULL, 10);
	/* wireguard-go reports its own codes as negative errnos, others as positive. */
	return v == 0 ? 0 : v < 0 ? (int)v : -(int)v;
}

int bw_wg_uapi_set(const char *ifname, const struct bw_wg_device *dev)
{
	char *req = NULL, *reply = NULL, ep[80], cidr[64];
	size_t len = 0;
	FILE *f = open_memstream(&req, &len);
	int r;

	if (!f)
		return -ENOMEM;
	fputs("set=1\n", f);
	if (dev->flags & BW_WGDEV_HAS_PRIVATE_KEY)
		hex(f, "private_key", dev->private_key);
	if (dev->flags & BW_WGDEV_HAS_LISTEN_PORT)
		fprintf(f, "listen_port=%u\n", dev->listen_port);
	if (dev->flags & BW_WGDEV_HAS_FWMARK)
		fprintf(f, "fwmark=%u\n", dev->fwmark);
	if (dev->flags & BW_WGDEV_REPLACE_PEERS)
		fputs("replace_peers=true\n", f);
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct bw_wg_peer *p = &dev->peers[i];

		hex(f, "public_key", p->public_key);
		if (p->flags & BW_WGPEER_REMOVE) {
			fputs("remove=true\n", f);
			continue;
		}
		if (p->flags & BW_WGPEER_UPDATE_ONLY)
			fputs("update_only=true\n", f);
		if (p->flags & BW_WGPEER_HAS_PSK)
			hex(f, "preshared_key", p->psk);
		if (p->flags & BW_WGPEER_HAS_ENDPOINT)
			fprintf(f, "endpoint=%s\n", bw_endpoint_str(&p->endpoint, ep, sizeof(ep)));
		if (p->flags & BW_WGPEER_HAS_KEEPALIVE)
			fprintf(f, "persistent_keepalive_interval=%u\n", p->keepalive);
		if (p->flags & BW_WGPEER_REPLACE_ALLOWEDIPS)
			fputs("replace_allowed_ips=true\n", f);
		for (size_t j = 0; j < p->n_allowed_ips; j++)
			fprintf(f, "allowed_ip=%s\n", bw_cidr_str(&p->allowed_ips[j], cidr, sizeof(cidr)));
	}
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(req);
		return -ENOMEM;
	}
	r = transact(ifname, req, len, &reply);
	OPENSSL_cleanse(req, len); /* it may hold the private key */
	free(req);
	if (r < 0)
		return r;
	r = reply_errno(reply);
	free(reply);
	return r;
}

static struct bw_wg_peer *new_peer(struct bw_wg_device *d)
{
	struct bw_wg_peer *np = realloc(d->peers, (d->n_peers + 1) * sizeof(*np));

	if (!np)
		return NULL;
	d->peers = np;
	memset(&np[d->n_peers], 0, sizeof(*np));
	return &np[d->n_peers++];
}

static int add_allowed(struct bw_wg_peer *p, const char *v)
{
	struct bw_cidr c, *na;

	if (bw_cidr_parse(v, &c) < 0)
		return -EPROTO;
	if (!(na = realloc(p->allowed_ips, (p->n_allowed_ips + 1) * sizeof(*na))))
		return -ENOMEM;
	p->allowed_ips = na;
	na[p->n_allowed_ips++] = c;
	return 0;
}

static int get_line(struct bw_wg_device *d, struct bw_wg_peer **cur, const char *k, const char *v)
{
	struct bw_wg_peer *p = *cur;

	if (!strcmp(k, "private_key")) {
		d->flags |= BW_WGDEV_HAS_PRIVATE_KEY;
		return unhex(v, d->private_key);
	}
	if (!strcmp(k, "listen_port"))
		return d->listen_port = (uint16_t)atoi(v), 0;
	if (!strcmp(k, "fwmark"))
		return d->fwmark = (uint32_t)strtoul(v, NULL, 10), 0;
	if (!strcmp(k, "public_key")) {
		if (!(*cur = new_peer(d)))
			return -ENOMEM;
		return unhex(v, (*cur)->public_key);
	}
	if (!p)
		return 0; /* unknown device-level key: newer wireguard-go */
	if (!strcmp(k, "preshared_key")) {
		int r = unhex(v, p->psk);
		static const uint8_t zero[BW_WG_KEY_LEN];
		if (r == 0 && memcmp(p->psk, zero, sizeof(zero)))
			p->flags |= BW_WGPEER_HAS_PSK;
		return r;
	}
	if (!strcmp(k, "endpoint")) {
		if (bw_endpoint_parse(v, &p->endpoint) < 0)
			return -EPROTO;
		p->flags |= BW_WGPEER_HAS_ENDPOINT;
		return 0;
	}
	if (!strcmp(k, "persistent_keepalive_interval")) {
		p->keepalive = (uint16_t)atoi(v);
		if (p->keepalive)
			p->flags |= BW_WGPEER_HAS_KEEPALIVE;
		return 0;
	}
	if (!strcmp(k, "allowed_ip"))
		return add_allowed(p, v);
	if (!strcmp(k, "last_handshake_time_sec"))
		return p->last_handshake_sec = strtoll(v, NULL, 10), 0;
	if (!strcmp(k, "rx_bytes"))
		return p->rx_bytes = strtoull(v, NULL, 10), 0;
	if (!strcmp(k, "tx_bytes"))
		return p->tx_bytes = strtoull(v, NULL, 10), 0;
	return 0;
}

int bw_wg_uapi_get(const char *ifname, struct bw_wg_device **out)
{
	static const char req[] = "get=1\n\n";
	struct bw_wg_device *d = calloc(1, sizeof(*d));
	struct bw_wg_peer *cur = NULL;
	char *reply = NULL, *save = NULL;
	size_t reply_len;
	int r;

	if (!d)
		return -ENOMEM;
	snprintf(d->name, sizeof(d->name), "%s", ifname);
	if ((r = transact(ifname, req, sizeof(req) - 1, &reply)) < 0) {
		free(d);
		return r;
	}
	reply_len = strlen(reply);
	if ((r = reply_errno(reply)) == 0) {
		for (char *line = strtok_r(reply, "\n", &save); line && r == 0; line = strtok_r(NULL, "\n", &save)) {
			char *eq = strchr(line, '=');
			if (!eq)
				continue;
			*eq = '\0';
			r = get_line(d, &cur, line, eq + 1);
		}
	}
	OPENSSL_cleanse(reply, reply_len); /* it held the private key */
	free(reply);
	if (r == 0 && (d->flags & BW_WGDEV_HAS_PRIVATE_KEY) && bw_wg_public_key(d->private_key, d->public_key) == 0)
		d->flags |= BW_WGDEV_HAS_PUBLIC_KEY;
	if (r < 0) {
		bw_wg_device_free(d);
		return r;
	}
	*out = d;
	return 0;
}
