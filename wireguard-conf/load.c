// SPDX-License-Identifier: GPL-2.0-only
/* Loading the node file and the peers directory from disk, and the checks across files. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "wireguard-conf/conf.h"

void bw_conf_peers_free(struct bw_conf_peer *peers, size_t n)
{
	for (size_t i = 0; peers && i < n; i++) {
		OPENSSL_cleanse(peers[i].psk, sizeof(peers[i].psk));
		free(peers[i].allowed_ips);
		peers[i].allowed_ips = NULL;
	}
}

void bw_conf_free(struct bw_conf *c)
{
	bw_conf_peers_free(c->peers, c->n_peers);
	free(c->peers);
	c->peers = NULL;
	c->n_peers = 0;
}

static int conf_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 5 && !strcmp(d->d_name + n - 5, ".conf");
}

struct owner {
	struct bw_cidr cidr;
	size_t peer;
};

static int owner_cmp(const void *a, const void *b)
{
	const struct owner *x = a, *y = b;
	int d = x->cidr.family - y->cidr.family;

	if (!d)
		d = memcmp(x->cidr.addr, y->cidr.addr, 16);
	return d ? d : x->cidr.len - y->cidr.len;
}

/* Two peers may not claim the same key or the same prefix: WireGuard would silently move it. */
static int check_peers(const struct bw_conf_peer *p, size_t n, char *err, size_t errlen)
{
	_cleanup_free_ struct owner *all = NULL;
	size_t total = 0, k = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (!memcmp(p[i].public_key, p[j].public_key, 32)) {
				snprintf(err, errlen, "%s: PublicKey already used by %s", p[i].file, p[j].file);
				return -EINVAL;
			}
	for (size_t i = 0; i < n; i++)
		total += p[i].n_allowed_ips;
	if (!total)
		return 0;
	if (!(all = calloc(total, sizeof(*all))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < p[i].n_allowed_ips; j++)
			all[k++] = (struct owner){ p[i].allowed_ips[j], i };
	qsort(all, total, sizeof(*all), owner_cmp);
	for (size_t i = 1; i < total; i++)
		if (bw_cidr_eq(&all[i].cidr, &all[i - 1].cidr)) {
			char buf[64];
			snprintf(err, errlen, "%s: AllowedIPs %s also claimed by %s", p[all[i].peer].file,
				 bw_cidr_str(&all[i].cidr, buf, sizeof(buf)), p[all[i - 1].peer].file);
			return -EINVAL;
		}
	return 0;
}

/* skip: a file never to read as a peer (the node file, when it shares the directory), or NULL */
static int load_peers(const char *dir, const struct stat *skip, struct bw_conf_peer **out, size_t *n, char *err,
		      size_t errlen)
{
	struct dirent **names = NULL;
	struct bw_conf_peer *peers = NULL;
	size_t count = 0;
	int nn = scandir(dir, &names, conf_file, alphasort), r = 0;

	if (nn < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if ((size_t)nn > BW_CONF_MAX_PEERS) {
		snprintf(err, errlen, "%s: more than %u peer files", dir, BW_CONF_MAX_PEERS);
		r = -E2BIG;
		goto out;
	}
	if (nn && !(peers = calloc((size_t)nn, sizeof(*peers)))) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < nn; i++) {
		char path[PATH_MAX];
		_cleanup_free_ char *text = NULL;
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		/* Compared after following symlinks: kubelet presents files as links into ..data. */
		if (skip && !stat(path, &st) && st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)
			continue;
		if ((r = bw_read_file(path, BW_CONF_MAX_FILE, &text, NULL)) < 0) {
			snprintf(err, errlen, "%s: %s", path, r == -EFBIG ? "file too large" : strerror(-r));
			goto out;
		}
		if ((r = bw_conf_parse_peer(path, text, &peers[count], err, errlen)) < 0)
			goto out;
		count++;
	}
	r = check_peers(peers, count, err, errlen);
out:
	for (int i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	if (r < 0) {
		bw_conf_peers_free(peers, count);
		free(peers);
		return r;
	}
	*out = peers;
	*n = count;
	return 0;
}

int bw_conf_load_peers(const char *dir, struct bw_conf_peer **out, size_t *n, char *err, size_t errlen)
{
	return load_peers(dir, NULL, out, n, err, errlen);
}

/* This node's public key from PrivateKeyFile (base64 and a newline, 0600), when there is one. */
static int self_public_key(const struct bw_conf *c, uint8_t pub[32])
{
	_cleanup_secret_ struct bw_secret text = { 0 }, priv = { 0 };
	EVP_PKEY *k = NULL;
	size_t len = 32;
	char b64[45];
	int r;

	if ((r = bw_read_key_file(c->iface.private_key_file, 45, &text)) < 0)
		return r;
	if (text.data[44] != '\n' || (r = bw_secret_new(&priv, 32)) < 0)
		return r < 0 ? r : -EINVAL;
	memcpy(b64, text.data, 44);
	b64[44] = '\0';
	r = bw_key_from_base64(b64, priv.data);
	OPENSSL_cleanse(b64, sizeof(b64));
	if (r < 0)
		return r;
	if (!(k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv.data, 32)))
		return -EINVAL;
	if (EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != 32)
		r = -EINVAL;
	EVP_PKEY_free(k);
	return r;
}

/* WireGuard ignores a peer with the device's own key, the datapath would not: leave it out. */
static void drop_self(struct bw_conf *c)
{
	uint8_t pub[32];

	if (self_public_key(c, pub) < 0)
		return; /* no key yet: no peer can be this node */
	for (size_t i = 0; i < c->n_peers; i++) {
		if (memcmp(c->peers[i].public_key, pub, 32))
			continue;
		snprintf(c->self_peer, sizeof(c->self_peer), "%s", c->peers[i].file);
		bw_conf_peers_free(&c->peers[i], 1);
		memmove(&c->peers[i], &c->peers[i + 1], (c->n_peers - i - 1) * sizeof(c->peers[0]));
		c->n_peers--;
		break;
	}
}

int bw_conf_load(const char *node_file, struct bw_conf *out, char *err, size_t errlen)
{
	_cleanup_free_ char *text = NULL;
	char tmp[PATH_MAX];
	const char *dir;
	struct stat self;
	int r;

	if ((r = bw_read_file(node_file, BW_CONF_MAX_FILE, &text, NULL)) < 0) {
		snprintf(err, errlen, "%s: %s", node_file, r == -EFBIG ? "file too large" : strerror(-r));
		return r;
	}
	if ((r = bw_conf_parse_node(node_file, text, out, err, errlen)) < 0)
		return r;
	/* A relative PeersDir is relative to the node file, like an include. */
	snprintf(tmp, sizeof(tmp), "%s", node_file);
	if (out->node.peer_source == BW_PEERS_KUBERNETES)
		snprintf(out->peers_path, sizeof(out->peers_path), "%s", dirname(tmp));
	else if (out->node.peers_dir[0] != '/')
		snprintf(out->peers_path, sizeof(out->peers_path), "%s/%s", dirname(tmp), out->node.peers_dir);
	else
		snprintf(out->peers_path, sizeof(out->peers_path), "%s", out->node.peers_dir);
	/* Peers from the cluster's Node objects (bulwarkd fills them in): no directory to read. */
	if (out->node.peer_source == BW_PEERS_KUBERNETES)
		return 0;
	dir = out->peers_path;
	/* The node file may share a directory with the peer files (PeersDir = ., one ConfigMap). */
	if (stat(node_file, &self) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", node_file, strerror(errno));
		return r;
	}
	if ((r = load_peers(dir, &self, &out->peers, &out->n_peers, err, errlen)) < 0) {
		if (r == -ENOENT || r == -ENOTDIR) {
			char why[BW_ERR_LEN / 2];
			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "%s: [Node] PeersDir: %s (mount the peer files there, or set PeersDir)",
				 node_file, why);
		}
		bw_conf_free(out);
		return r;
	}
	/* One source of truth for PSKs: with a mesh secret they are derived, never written. */
	for (size_t i = 0; out->node.mesh_secret[0] && i < out->n_peers; i++) {
		if (out->peers[i].has_psk) {
			snprintf(err, errlen, "%s: PresharedKey is not allowed while %s sets MeshSecret (PSKs are derived from it)",
				 out->peers[i].file, node_file);
			bw_conf_free(out);
			return -EINVAL;
		}
	}
	drop_self(out);
	return 0;
}
