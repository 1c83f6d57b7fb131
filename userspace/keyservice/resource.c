// SPDX-License-Identifier: GPL-2.0-only
/*
 * Resources are derived, never stored: HKDF-SHA256(master secret, salt, info, 32 bytes).
 * bulwark/volume/<id> uses info "key-<id>", Constellation's derivation for volume keys, so the
 * same master secret and salt give the same keys; every other path uses the path as info.
 */
#include <errno.h>
#include <string.h>
#include "keyservice/keyservice.h"

#define VOLUME_PREFIX "bulwark/volume/"
#define MAX_SECRET_FILE 4096

int bw_ks_info(const char *path, char *buf, size_t size)
{
	int n;

	if (!strncmp(path, VOLUME_PREFIX, strlen(VOLUME_PREFIX)))
		n = snprintf(buf, size, "key-%s", path + strlen(VOLUME_PREFIX));
	else
		n = snprintf(buf, size, "%s", path);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int bw_ks_derive_into(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
		      uint8_t *out)
{
	char info[300];
	int r = bw_ks_info(path, info, sizeof(info));

	return r < 0 ? r : bw_hkdf_sha256(master->data, master->len, salt->data, salt->len, info, strlen(info), out,
					 BW_KS_RESOURCE_LEN);
}

int bw_ks_derive(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
		 struct bw_secret *out)
{
	_cleanup_secret_ struct bw_secret key = { 0 };
	int r = bw_secret_new(&key, BW_KS_RESOURCE_LEN);

	if (r == 0)
		r = bw_ks_derive_into(master, salt, path, key.data);
	if (r < 0)
		return r;
	*out = TAKE_SECRET(key);
	return 0;
}

int bw_ks_read_secret(const char *path, size_t min, struct bw_secret *out)
{
	return bw_read_key_file_range(path, min, MAX_SECRET_FILE, out);
}
