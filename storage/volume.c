// SPDX-License-Identifier: GPL-2.0-only
/* Stage and unstage: format only blank devices, activate only validated header copies. */
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include "bulwark/storage.h"
#include "common/common.h"
#include "storage/internal.h"

#define HDR_MAX (4u << 20)        /* LUKS2 metadata is at most 4 MiB */
#define WIPE_BLOCK (1u << 20)
#define WIPE_SAVE_EVERY (16ull << 20) /* record wipe progress in the token every 16 MiB */

__attribute__((format(printf, 4, 5)))
static int say(char *err, size_t len, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

static void crypt_freep(struct crypt_device **cd) { if (*cd) crypt_free(*cd); }
#define _cleanup_crypt_ __attribute__((cleanup(crypt_freep)))

int bw_vol_name(const char *id, char *out, size_t len)
{
	unsigned char md[32];
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > BW_VOL_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return -EINVAL;
	if (len < 36 || !EVP_Digest(id, n, md, NULL, EVP_sha256(), NULL))
		return -EINVAL;
	strcpy(out, "bw-");
	for (int i = 0; i < 16; i++)
		sprintf(out + 3 + 2 * i, "%02x", md[i]);
	return 0;
}

/* ---- the bulwark token: volume id and lifecycle ---- */

struct token {
	char state[16];      /* formatted | wiping | ready */
	uint64_t wipe_offset;
	bool integrity;
};

static int token_write(struct crypt_device *cd, const char *id, const struct token *t)
{
	struct json_object *o = json_object_new_object();
	int tid = -1, r;

	/* Replace our token in place (there is at most one, validated elsewhere). */
	for (int i = 0; i < 32; i++) {
		const char *type;
		if (crypt_token_status(cd, i, &type) == CRYPT_TOKEN_EXTERNAL_UNKNOWN && !strcmp(type, BW_VOL_TOKEN_TYPE))
			tid = i;
	}
	json_object_object_add(o, "type", json_object_new_string(BW_VOL_TOKEN_TYPE));
	json_object_object_add(o, "keyslots", json_object_new_array());
	json_object_object_add(o, "volume_id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(t->state));
	json_object_object_add(o, "integrity", json_object_new_boolean(t->integrity));
	char off[24];
	snprintf(off, sizeof(off), "%llu", (unsigned long long)t->wipe_offset);
	json_object_object_add(o, "wipe_offset", json_object_new_string(off));
	r = crypt_token_json_set(cd, tid >= 0 ? tid : CRYPT_ANY_TOKEN, json_object_to_json_string(o));
	json_object_put(o);
	return r < 0 ? r : 0;
}

static int token_read(struct crypt_device *cd, struct token *t)
{
	for (int i = 0; i < 32; i++) {
		const char *type, *json;
		struct json_object *o, *v;

		if (crypt_token_status(cd, i, &type) != CRYPT_TOKEN_EXTERNAL_UNKNOWN || strcmp(type, BW_VOL_TOKEN_TYPE) ||
		    crypt_token_json_get(cd, i, &json) < 0 || !(o = json_tokener_parse(json)))
			continue;
		memset(t, 0, sizeof(*t));
		if (json_object_object_get_ex(o, "state", &v))
			snprintf(t->state, sizeof(t->state), "%s", json_object_get_string(v));
		if (json_object_object_get_ex(o, "wipe_offset", &v))
			t->wipe_offset = strtoull(json_object_get_string(v), NULL, 10);
		if (json_object_object_get_ex(o, "integrity", &v))
			t->integrity = json_object_get_boolean(v);
		json_object_put(o);
		return 0;
	}
	return -ENOENT;
}

/* ---- device inspection ---- */

static int backing_matches(const char *name, const char *device)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	struct stat a, b;
	const char *dev;

	if (crypt_init_by_name(&cd, name) < 0 || !(dev = crypt_get_device_name(cd)))
		return -ENODEV;
	if (stat(dev, &a) < 0 || stat(device, &b) < 0)
		return -errno;
	return a.st_rdev == b.st_rdev ? 1 : 0;
}

/* 1: no signature and zeros at the start; 0: holds something (described in what). */
static int device_blank(const char *device, char *what, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(device);
	const char *type = NULL;
	unsigned char buf[65536];
	int fd, r;
	ssize_t n;

	if (!pr)
		return -errno ? -errno : -ENODEV;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
	blkid_probe_enable_partitions(pr, 1);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0)
			blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL);
		snprintf(what, len, "a '%s' signature", type ?: "unknown");
	} else if (r == -2) {
		snprintf(what, len, "several conflicting signatures");
	}
	blkid_free_probe(pr);
	if (r == 0 || r == -2)
		return 0;
	if (r < 0)
		return -EIO;
	/* No signature is not proof of no data: the first 64 KiB must be zeros too. */
	if ((fd = open(device, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i]) {
			snprintf(what, len, "data without a known signature (non-zero bytes at offset %zd)", i);
			return 0;
		}
	return 1;
}

/* ---- format and wipe ---- */

struct wipe_ctx {
	struct crypt_device *hdr_cd; /* where the token lives */
	const char *id;
	struct token *t;
	uint64_t base, saved;
	const struct bw_vol_stage_opts *o;
};

static int wipe_progress(uint64_t size, uint64_t offset, void *p)
{
	struct wipe_ctx *w = p;
	uint64_t done = w->base + offset;

	if (done - w->saved >= WIPE_SAVE_EVERY) {
		w->t->wipe_offset = done;
		w->saved = done;
		token_write(w->hdr_cd, w->id, w->t);
	}
	if (w->o->progress)
		return w->o->progress(done, w->base + size, w->o->progress_ctx);
	return 0;
}

/*
 * Zero the whole integrity device once so every sector has a valid tag. Progress lives in the
 * token, so a crash or kill resumes where it stopped instead of formatting again.
 */
static int wipe(struct crypt_device *act_cd, struct crypt_device *hdr_cd, const char *name,
		const struct bw_vol_stage_opts *o, struct token *t, char *err, size_t len)
{
	char tmp[96], path[160];
	struct wipe_ctx w = { hdr_cd, o->id, t, t->wipe_offset, t->wipe_offset, o };
	int r;

	snprintf(tmp, sizeof(tmp), "%s-wipe", name);
	crypt_deactivate(NULL, tmp); /* left over from a killed run */
	r = crypt_activate_by_passphrase(act_cd, tmp, CRYPT_ANY_SLOT, (const char *)o->key, BW_VOL_KEY_LEN,
					 CRYPT_ACTIVATE_PRIVATE | CRYPT_ACTIVATE_NO_JOURNAL);
	if (r < 0)
		return say(err, len, r, "activating for the integrity wipe: %s", strerror(-r));
	snprintf(path, sizeof(path), "%s/%s", crypt_get_dir(), tmp);
	snprintf(t->state, sizeof(t->state), "wiping");
	r = crypt_wipe(act_cd, path, CRYPT_WIPE_ZERO, t->wipe_offset, 0, WIPE_BLOCK, 0, wipe_progress, &w);
	crypt_deactivate(act_cd, tmp);
	if (r < 0) {
		token_write(hdr_cd, o->id, t);
		return say(err, len, r == -EINTR ? -EINTR : r, "integrity wipe stopped at %llu bytes: %s",
			   (unsigned long long)t->wipe_offset, strerror(-r));
	}
	snprintf(t->state, sizeof(t->state), "ready");
	t->wipe_offset = 0;
	return token_write(hdr_cd, o->id, t);
}

static int format(const struct bw_vol_stage_opts *o, const char *name, char *err, size_t len)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	/* The passphrase is 32 random bytes, not a password: one PBKDF2 round set buys nothing,
	 * so the minimum (1000) keeps opening fast. */
	struct crypt_pbkdf_type pbkdf = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
					  .flags = CRYPT_PBKDF_NO_BENCHMARK };
	struct crypt_params_luks2 p = { .sector_size = BW_VOL_SECTOR, .integrity = o->integrity ? "hmac(sha256)" : NULL };
	struct token t = { .state = "formatted", .integrity = o->integrity };
	int r;

	if ((r = crypt_init(&cd, o->device)) < 0 || (r = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
	    (r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, o->integrity ? 96 : 64, &p)) < 0)
		return say(err, len, r, "formatting %s: %s", o->device, strerror(-r));
	if ((r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, (const char *)o->key, BW_VOL_KEY_LEN)) < 0 ||
	    (r = token_write(cd, o->id, &t)) < 0)
		return say(err, len, r, "writing the keyslot and token: %s", strerror(-r));
	if (!o->integrity) {
		snprintf(t.state, sizeof(t.state), "ready");
		return token_write(cd, o->id, &t);
	}
	return wipe(cd, cd, name, o, &t, err, len);
}

/* ---- open an existing volume from a validated detached header copy ---- */

static int read_json(const char *hdr_path, char **json)
{
	_cleanup_free_ char *buf = NULL;
	size_t n;
	uint64_t hdr_size = 0;
	int r = bw_read_file(hdr_path, 2 * HDR_MAX + 65536, &buf, &n);

	if (r < 0)
		return r;
	if (n < 4096 || memcmp(buf, "LUKS\xba\xbe", 6) || buf[6] != 0 || buf[7] != 2)
		return -EMEDIUMTYPE;
	for (int i = 0; i < 8; i++)
		hdr_size = hdr_size << 8 | (unsigned char)buf[8 + i];
	if (hdr_size < 4096 + 2 || hdr_size > HDR_MAX || hdr_size > n)
		return -EMEDIUMTYPE;
	*json = strndup(buf + 4096, hdr_size - 4096);
	return *json ? 0 : -ENOMEM;
}

static int open_existing(const struct bw_vol_stage_opts *o, const char *name, char *err, size_t len)
{
	_cleanup_crypt_ struct crypt_device *disk = NULL, *copy = NULL;
	_cleanup_free_ char *json = NULL;
	char hdr[128];
	struct token t;
	uint32_t flags = CRYPT_ACTIVATE_NO_READ_WORKQUEUE | CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE;
	int r;

	mkdir(BW_VOL_RUN_DIR, 0700);
	snprintf(hdr, sizeof(hdr), BW_VOL_RUN_DIR "/%s.hdr", name);
	unlink(hdr);
	/* One read of the on-disk header; from here on only the copy is used. */
	if ((r = crypt_init(&disk, o->device)) < 0 || (r = crypt_header_backup(disk, CRYPT_LUKS2, hdr)) < 0) {
		unlink(hdr);
		return say(err, len, r, "reading the LUKS2 header of %s: %s", o->device, strerror(-r));
	}
	chmod(hdr, 0600);
	r = read_json(hdr, &json);
	if (r < 0)
		r = say(err, len, r, "the header copy is not LUKS2");
	else if ((r = bw_vol_check_luks2_json(json, o->id, err, len)) < 0)
		;
	else if ((r = crypt_init_data_device(&copy, hdr, o->device)) < 0 || (r = crypt_load(copy, CRYPT_LUKS2, NULL)) < 0)
		r = say(err, len, r, "loading the validated header copy: %s", strerror(-r));
	else if ((r = token_read(copy, &t)) < 0)
		r = say(err, len, r, "token unreadable");
	else if (t.integrity && strcmp(t.state, "ready") &&
		 (r = crypt_load(disk, CRYPT_LUKS2, NULL)) == 0 &&
		 (r = wipe(copy, disk, name, o, &t, err, len)) < 0)
		;
	else {
		if (!t.integrity)
			flags |= CRYPT_ACTIVATE_ALLOW_DISCARDS; /* dm-integrity cannot discard */
		r = crypt_activate_by_passphrase(copy, name, CRYPT_ANY_SLOT, (const char *)o->key, BW_VOL_KEY_LEN, flags);
		if (r == -EPERM)
			r = say(err, len, -EKEYREJECTED, "wrong key: no keyslot of volume '%s' opens with it", o->id);
		else if (r < 0)
			r = say(err, len, r, "activating %s: %s", name, strerror(-r));
	}
	unlink(hdr);
	return r < 0 ? r : 0;
}

int bw_vol_stage(const struct bw_vol_stage_opts *o, char *path, size_t path_len, char *err, size_t len)
{
	char name[64], what[128];
	int lock, r;

	if (!o->key || !o->device || bw_vol_name(o->id, name, sizeof(name)) < 0)
		return say(err, len, -EINVAL, "volume id must be 1-%d printable characters, and a device and key are required", BW_VOL_ID_MAX);
	if (access(o->device, R_OK | W_OK) < 0)
		return say(err, len, -ENOENT, "device %s: %s", o->device, strerror(errno));
	if ((lock = bw_vol_lock(name)) < 0)
		return say(err, len, lock, "another operation on volume '%s' is in progress", o->id);
	bw_vol_lock_global();
	if (crypt_status(NULL, name) == CRYPT_ACTIVE || crypt_status(NULL, name) == CRYPT_BUSY) {
		r = backing_matches(name, o->device);
		if (r == 0)
			r = say(err, len, -EEXIST, "volume '%s' is already staged from another device", o->id);
	} else {
		_cleanup_crypt_ struct crypt_device *cd = NULL;
		bool luks2 = crypt_init(&cd, o->device) == 0 && crypt_load(cd, CRYPT_LUKS2, NULL) == 0;

		if (luks2) {
			r = open_existing(o, name, err, len);
		} else if ((r = device_blank(o->device, what, sizeof(what))) == 1) {
			r = format(o, name, err, len);
			if (r == 0)
				r = open_existing(o, name, err, len);
		} else if (r == 0) {
			r = say(err, len, -ENOTEMPTY, "device %s holds %s: refusing to format it", o->device, what);
		} else {
			r = say(err, len, r, "probing %s: %s", o->device, strerror(-r));
		}
	}
	bw_vol_unlock_global();
	bw_vol_unlock(lock);
	if (r < 0)
		return r;
	snprintf(path, path_len, "%s/%s", crypt_get_dir(), name);
	return 0;
}

int bw_vol_unstage(const char *id, char *err, size_t len)
{
	char name[64];
	int lock, r = 0;

	if (bw_vol_name(id, name, sizeof(name)) < 0)
		return say(err, len, -EINVAL, "volume id must be 1-%d printable characters", BW_VOL_ID_MAX);
	if ((lock = bw_vol_lock(name)) < 0)
		return say(err, len, lock, "another operation on volume '%s' is in progress", id);
	bw_vol_lock_global();
	if (crypt_status(NULL, name) != CRYPT_INACTIVE && crypt_status(NULL, name) != CRYPT_INVALID) {
		r = crypt_deactivate(NULL, name); /* takes the _dif device with it */
		if (r < 0)
			r = say(err, len, r == -EBUSY ? -EBUSY : r, "deactivating %s: %s", name,
				r == -EBUSY ? "still in use (mounted?)" : strerror(-r));
	}
	bw_vol_unlock_global();
	bw_vol_unlock(lock);
	return r;
}

enum bw_vol_code bw_vol_code(int e)
{
	switch (e) {
	case 0: return BW_VOL_OK;
	case -EINVAL: return BW_VOL_INVALID_ARGUMENT;
	case -ENOENT: case -ENODEV: return BW_VOL_NOT_FOUND;
	case -EBUSY: case -EINTR: return BW_VOL_ABORTED;
	case -EEXIST: case -ENOTEMPTY: case -EMEDIUMTYPE: case -EKEYREJECTED: case -EPERM: case -ENOTSUP:
		return BW_VOL_FAILED_PRECONDITION;
	default: return BW_VOL_INTERNAL;
	}
}

const char *bw_vol_code_name(enum bw_vol_code c)
{
	switch (c) {
	case BW_VOL_OK: return "OK";
	case BW_VOL_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
	case BW_VOL_NOT_FOUND: return "NOT_FOUND";
	case BW_VOL_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
	case BW_VOL_ABORTED: return "ABORTED";
	default: return "INTERNAL";
	}
}
