// SPDX-License-Identifier: GPL-2.0-only
/* The node's WireGuard private key: base64 in a 0600 file, as `wg genkey` writes it. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include "net/net.h"
#include "wg/wg.h"

#define KEY_FILE_LEN 45 /* 44 base64 characters and a newline */

/* The key file's directory (0700), made when missing. */
static int mkdir_parents(const char *path)
{
	char dir[512];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (!(slash = strrchr(dir, '/')) || slash == dir)
		return 0;
	*slash = '\0';
	return bw_mkdir_p(dir, 0700);
}

static int create_key(const char *path)
{
	_cleanup_secret_ struct bw_secret key = { 0 };
	_cleanup_secret_ struct bw_secret text = { 0 };
	int r;

	if ((r = mkdir_parents(path)) < 0 || (r = bw_wg_generate_key(&key)) < 0 ||
	    (r = bw_secret_new(&text, KEY_FILE_LEN + 1)) < 0)
		return r;
	bw_key_to_base64(key.data, (char *)text.data);
	text.data[44] = '\n';
	return bw_write_file_atomic(path, text.data, KEY_FILE_LEN, 0600);
}

int bw_net_node_key(const struct bw_conf *c, bool create, struct bw_secret *key, struct bw_notes *notes)
{
	const char *path = c->iface.private_key_file;
	_cleanup_secret_ struct bw_secret text = { 0 };
	char b64[45];
	int r = bw_read_key_file(path, KEY_FILE_LEN, &text);

	if (r == -ENOENT && create) {
		if ((r = create_key(path)) < 0)
			return r;
		bw_note(notes, "created WireGuard key %s", path);
		r = bw_read_key_file(path, KEY_FILE_LEN, &text);
	}
	if (r < 0)
		return r;
	if (text.data[44] != '\n')
		return -EINVAL;
	memcpy(b64, text.data, 44);
	b64[44] = '\0';
	if ((r = bw_secret_new(key, BW_WG_KEY_LEN)) < 0) {
		OPENSSL_cleanse(b64, sizeof(b64));
		return r;
	}
	r = bw_key_from_base64(b64, key->data);
	OPENSSL_cleanse(b64, sizeof(b64));
	if (r < 0)
		bw_secret_free(key);
	return r;
}
