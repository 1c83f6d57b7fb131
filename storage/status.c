// SPDX-License-Identifier: GPL-2.0-only
/*
 * Volume status from device-mapper: table, size, integrity, backing device. No integrity error
 * count: bulwark's integrity is dm-crypt AEAD over dm-integrity with external tags, where a bad
 * tag fails the read (EILSEQ) and logs "INTEGRITY AEAD ERROR" but no kernel counter moves.
 */
#include <errno.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <libdevmapper.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "bulwark/storage.h"
#include "storage/internal.h"
#include "common/common.h"

static void cryptsetup_log(int level, const char *msg, void *usrptr)
{
	size_t n = strlen(msg);

	(void)usrptr;
	while (n && msg[n - 1] == '\n')
		n--;
	bw_log(level == CRYPT_LOG_ERROR ? BW_LOG_ERROR : level == CRYPT_LOG_NORMAL ? BW_LOG_INFO : BW_LOG_DEBUG,
	       "cryptsetup: %.*s", (int)n, msg);
}

void bw_vol_log_init(void)
{
	crypt_set_log_callback(NULL, cryptsetup_log, NULL);
}

/* The dm-crypt table line with the key field elided (it is a keyring reference anyway). */
static void crypt_table(const char *name, char *out, size_t len)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_TABLE);
	uint64_t start, length;
	char *type = NULL, *params = NULL;

	if (!t)
		return;
	if (dm_task_set_name(t, name) && dm_task_run(t)) {
		dm_get_next_target(t, NULL, &start, &length, &type, &params);
		if (type && params) {
			char cipher[64] = "", rest[200] = "";
			/* "<cipher> <key> <iv_offset> <dev> <offset> [opts]": drop <key> */
			if (sscanf(params, "%63s %*s %199[^\n]", cipher, rest) >= 1)
				snprintf(out, len, "%" PRIu64 " %" PRIu64 " %s %s - %s", start, length, type, cipher, rest);
		}
	}
	dm_task_destroy(t);
}

/* The dm UUID libcryptsetup gave the mapping ("CRYPT-LUKS2-<LUKS UUID, no dashes>-<name>"). */
static void dm_uuid(const char *name, char *out, size_t len)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_INFO);
	const char *u;

	if (!t)
		return;
	if (dm_task_set_name(t, name) && dm_task_run(t) && (u = dm_task_get_uuid(t)))
		snprintf(out, len, "%s", u);
	dm_task_destroy(t);
}

/* The token's volume id, kept only when it is this mapping's (its hash is the name). */
static void token_id(struct crypt_device *cd, const char *name, char *out, size_t len)
{
	char want[64];

	if (bw_vol_token_id(cd, out, len) < 0 ||
	    (strcmp(name, BW_STATEDISK_NAME) ? bw_vol_name(out, want, sizeof(want)) < 0 || strcmp(want, name)
					     : strcmp(out, BW_STATEDISK_ID)))
		*out = '\0';
}

/* An integrity device below the crypt device: dm-integrity target present and active. */
static bool has_integrity(const char *dif)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_STATUS);
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	struct dm_info info;
	bool r = false;

	if (!t)
		return false;
	if (dm_task_set_name(t, dif) && dm_task_run(t) && dm_task_get_info(t, &info) && info.exists) {
		dm_get_next_target(t, NULL, &start, &length, &type, &params);
		r = type && !strcmp(type, "integrity");
	}
	dm_task_destroy(t);
	return r;
}

static bool is_volume_name(const char *n, size_t len)
{
	if (len == 35 && !strncmp(n, "bw-", 3) && strspn(n + 3, "0123456789abcdef") == 32)
		return true;
	return len == strlen(BW_STATEDISK_NAME) && !strncmp(n, BW_STATEDISK_NAME, len);
}

static bool is_wipe_name(const char *n)
{
	size_t l = strlen(n);

	return l > 5 && !strcmp(n + l - 5, "-wipe") && is_volume_name(n, l - 5);
}

static bool is_ours(const char *n)
{
	return is_volume_name(n, strlen(n)) || is_wipe_name(n);
}

int bw_vol_status(const char *id, const char *name, struct bw_vol_status *st, char *err, size_t len)
{
	struct crypt_device *cd = NULL;
	struct crypt_active_device ad;
	struct stat sb;
	const char *dev;
	char dif[80];
	int r;

	memset(st, 0, sizeof(*st));
	if (name && (strlen(name) >= sizeof(st->name) || strchr(name, '/')))
		return bw_errf(err, len, -EINVAL, "mapping name '%s' is invalid", name);
	if (name)
		snprintf(st->name, sizeof(st->name), "%s", name);
	else if (bw_vol_name(id, st->name, sizeof(st->name)) < 0)
		return bw_errf(err, len, -EINVAL, "volume id must be 1-%d printable ASCII characters", BW_VOL_ID_MAX);
	snprintf(st->path, sizeof(st->path), "%s/%s", crypt_get_dir(), st->name);
	bw_vol_lock_global();
	r = crypt_status(NULL, st->name);
	if (r != CRYPT_ACTIVE && r != CRYPT_BUSY) {
		bw_vol_unlock_global();
		return 0; /* not staged: active = false */
	}
	st->active = true;
	r = crypt_init_by_name(&cd, st->name);
	if (r == 0 && crypt_get_active_device(cd, st->name, &ad) == 0)
		st->size_bytes = ad.size * 512;
	if (r == 0) {
		snprintf(st->cipher, sizeof(st->cipher), "%s-%s", crypt_get_cipher(cd) ?: "?", crypt_get_cipher_mode(cd) ?: "?");
		st->sector_size = (uint32_t)crypt_get_sector_size(cd);
		dev = crypt_get_device_name(cd);
		if (dev && stat(dev, &sb) == 0)
			snprintf(st->backing, sizeof(st->backing), "%u:%u (%s)", major(sb.st_rdev), minor(sb.st_rdev), dev);
		if (!is_wipe_name(st->name))
			token_id(cd, st->name, st->id, sizeof(st->id));
	}
	dm_uuid(st->name, st->dm_uuid, sizeof(st->dm_uuid));
	crypt_table(st->name, st->table, sizeof(st->table));
	snprintf(dif, sizeof(dif), "%s_dif", st->name);
	st->integrity = has_integrity(dif);
	st->wipe = is_wipe_name(st->name);
	crypt_free(cd);
	bw_vol_unlock_global();
	return 0;
}

/* Active mappings that are bulwark's: bw-<hash> volumes and the state disk, and the "-wipe"
 * mappings that a wipe killed mid-way leaves (unstage removes them). */
int bw_vol_list(char (*names)[64], size_t max, size_t *count)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_LIST);
	struct dm_names *n;
	unsigned next = 0;
	int r = -EIO;

	*count = 0;
	if (!t)
		return -ENOMEM;
	bw_vol_lock_global();
	if (dm_task_run(t) && (n = dm_task_get_names(t))) {
		r = 0;
		if (n->dev)
			do {
				n = (struct dm_names *)((char *)n + next);
				if (is_ours(n->name) && *count < max)
					snprintf(names[(*count)++], 64, "%s", n->name);
				next = n->next;
			} while (next);
	}
	bw_vol_unlock_global();
	dm_task_destroy(t);
	return r;
}
