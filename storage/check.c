// SPDX-License-Identifier: GPL-2.0-only
/* The LUKS2 header allow-list: what bulwark activates, and nothing else. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>
#include "bulwark/storage.h"
#include "storage/internal.h"

__attribute__((format(printf, 3, 4)))
static int refuse(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EMEDIUMTYPE;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

static bool str_is(struct json_object *o, const char *key, const char *want)
{
	const char *v = str(o, key);
	return v && !strcmp(v, want);
}

static int64_t num(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return -1;
	/* LUKS2 writes sizes as strings or numbers depending on the field. */
	return json_object_is_type(v, json_type_string) ? strtoll(json_object_get_string(v), NULL, 10)
							 : json_object_get_int64(v);
}

static int check_segment(struct json_object *seg, bool *integrity, char *err, size_t len)
{
	struct json_object *in;
	const char *enc = str(seg, "encryption");

	if (!str_is(seg, "type", "crypt"))
		return refuse(err, len, "segments.0.type is '%s', expected 'crypt'", str(seg, "type") ?: "(none)");
	if (!enc || strcmp(enc, BW_VOL_CIPHER))
		return refuse(err, len, "segments.0.encryption is '%s', expected '" BW_VOL_CIPHER "'", enc ?: "(none)");
	if (num(seg, "sector_size") != BW_VOL_SECTOR)
		return refuse(err, len, "segments.0.sector_size is %lld, expected %d", (long long)num(seg, "sector_size"), BW_VOL_SECTOR);
	*integrity = json_object_object_get_ex(seg, "integrity", &in);
	if (*integrity) {
		if (!str_is(in, "type", "hmac(sha256)"))
			return refuse(err, len, "segments.0.integrity.type is '%s', expected 'hmac(sha256)'", str(in, "type") ?: "(none)");
		if (!str_is(in, "journal_encryption", "none") || !str_is(in, "journal_integrity", "none"))
			return refuse(err, len, "segments.0.integrity: journal_encryption/journal_integrity must be 'none'");
	}
	return 0;
}

static int check_keyslots(struct json_object *ks, char *err, size_t len)
{
	int n = 0;

	json_object_object_foreach(ks, id, slot) {
		struct json_object *area, *kdf;
		const char *kt;

		n++;
		if (!str_is(slot, "type", "luks2"))
			return refuse(err, len, "keyslots.%s.type is '%s', expected 'luks2'", id, str(slot, "type") ?: "(none)");
		if (!json_object_object_get_ex(slot, "area", &area) || !str_is(area, "encryption", BW_VOL_CIPHER) ||
		    num(area, "key_size") != 64)
			return refuse(err, len, "keyslots.%s.area.encryption is '%s', expected '" BW_VOL_CIPHER "' with a 512-bit key",
				      id, area ? str(area, "encryption") ?: "(none)" : "(none)");
		if (!json_object_object_get_ex(slot, "kdf", &kdf) || !(kt = str(kdf, "type")) ||
		    (strcmp(kt, "pbkdf2") && strcmp(kt, "argon2i") && strcmp(kt, "argon2id")))
			return refuse(err, len, "keyslots.%s.kdf.type is not pbkdf2, argon2i or argon2id", id);
	}
	return n ? 0 : refuse(err, len, "keyslots: none");
}

static int check_token(struct json_object *tokens, const char *id, char *err, size_t len)
{
	const char *found = NULL;

	json_object_object_foreach(tokens, tid, tok) {
		(void)tid;
		if (str_is(tok, "type", BW_VOL_TOKEN_TYPE)) {
			if (found)
				return refuse(err, len, "tokens: more than one '" BW_VOL_TOKEN_TYPE "' token");
			found = str(tok, "volume_id") ?: "";
		}
	}
	if (!found)
		return refuse(err, len, "tokens: no '" BW_VOL_TOKEN_TYPE "' token: not a bulwark volume");
	if (strcmp(found, id))
		return refuse(err, len, "tokens: the '" BW_VOL_TOKEN_TYPE "' token names volume '%s', not '%s' (volume swap?)", found, id);
	return 0;
}

int bw_vol_check_luks2_json(const char *json, const char *id, char *err, size_t len)
{
	struct json_object *root = json_tokener_parse(json), *segs, *ks, *tok, *cfg, *req;
	bool integrity = false;
	int n = 0, r;

	if (!root || !json_object_is_type(root, json_type_object))
		r = refuse(err, len, "header metadata is not a JSON object");
	else if (strcasestr(json, "cipher_null"))
		r = refuse(err, len, "cipher_null appears in the header");
	else if (!json_object_object_get_ex(root, "segments", &segs) || !json_object_is_type(segs, json_type_object))
		r = refuse(err, len, "segments missing");
	else if ((n = json_object_object_length(segs)) != 1)
		r = refuse(err, len, "segments: %d, expected exactly one crypt segment", n);
	else if (!json_object_object_get_ex(segs, "0", &segs))
		r = refuse(err, len, "segments: the segment is not segment 0");
	else if ((r = check_segment(segs, &integrity, err, len)) < 0)
		;
	else if (!json_object_object_get_ex(root, "keyslots", &ks) || (r = check_keyslots(ks, err, len)) < 0)
		r = r < 0 ? r : refuse(err, len, "keyslots missing");
	else if (!json_object_object_get_ex(root, "tokens", &tok) || (r = check_token(tok, id, err, len)) < 0)
		r = r < 0 ? r : refuse(err, len, "tokens missing");
	else if (json_object_object_get_ex(root, "config", &cfg) && json_object_object_get_ex(cfg, "requirements", &req))
		r = refuse(err, len, "config.requirements present (reencryption or unknown features)");
	else
		r = 0;
	json_object_put(root);
	return r;
}
