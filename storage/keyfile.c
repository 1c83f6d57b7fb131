// SPDX-License-Identifier: GPL-2.0-only
/* The key-file key source: 32 bytes from a 0600 file, straight into locked memory. */
#include <errno.h>
#include <string.h>
#include "bulwark/storage.h"
#include "common/common.h"
#include "storage/internal.h"

static int key_file_get(void *ctx, const char *id, uint8_t *key, char *err, size_t len)
{
	_cleanup_secret_ struct bw_secret s = { 0 };
	const char *path = ctx;
	int r = bw_read_key_file(path, BW_VOL_KEY_LEN, &s);

	(void)id;
	if (r == -EPERM)
		return bw_errf(err, len, -EINVAL, "key file %s: must be owned by us with mode 0600 (no group/other access)", path);
	if (r == -EINVAL)
		return bw_errf(err, len, -EINVAL, "key file %s: must be a regular file of exactly %d bytes", path, BW_VOL_KEY_LEN);
	if (r < 0)
		return bw_errf(err, len, r == -ENOENT ? -EINVAL : r, "key file %s: %s", path, strerror(-r));
	memcpy(key, s.data, BW_VOL_KEY_LEN);
	return 0;
}

void bw_vol_key_file_source(struct bw_vol_key_source *ks, const char *path)
{
	*ks = (struct bw_vol_key_source){ .name = "key file", .get = key_file_get, .ctx = (void *)path };
}
