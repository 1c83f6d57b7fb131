// SPDX-License-Identifier: GPL-2.0-only
/*
 * The LUKS2 header allow-list: what bulwark activates, and nothing else. Works on bytes only (a
 * detached header copy), so it runs without a kernel, in unit tests and under libFuzzer.
 *
 * The host controls the disk, so every field of the header is attacker input: a cipher_null
 * segment or keyslot, a weaker cipher, another sector size, an extra keyslot, or a header taken
 * from another volume (swap) must all be refused before anything is activated.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>
#include "bulwark/storage.h"
#include "storage/internal.h"
#include "common/common.h"

/* Every allow-list refusal is "wrong medium type" for the caller. */
#define refuse(err, len, ...) bw_errf(err, len, -EMEDIUMTYPE, __VA_ARGS__)

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

static bool str_is(struct json_object *o, const char *key, const char *want)
{
	const char *v = str(o, key);

	return v && !strcmp(v, want);
}

static struct json_object *obj(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object) ? v : NULL;
}

/* LUKS2 writes sizes as decimal strings and small numbers as integers; -1 when absent or odd. */
static int64_t num(struct json_object *o, const char *key)
{
	struct json_object *v;
	const char *s;
	char *end;
	long long n;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return -1;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	return errno || end == s || *end || n < 0 ? -1 : n;
}

/* cipher_null anywhere (segment, keyslot area, digest, journal) means plaintext somewhere. */
static bool has_cipher_null(struct json_object *o, int depth)
{
	if (depth > 16)
		return true; /* deeper than any LUKS2 header: refuse rather than recurse */
	switch (json_object_get_type(o)) {
	case json_type_string:
		return strcasestr(json_object_get_string(o), "cipher_null") != NULL;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (has_cipher_null(json_object_array_get_idx(o, i), depth + 1))
				return true;
		return false;
	case json_type_object: {
		json_object_object_foreach(o, k, v)
			if (strcasestr(k, "cipher_null") || has_cipher_null(v, depth + 1))
				return true;
		return false;
	}
	default:
		return false;
	}
}

static int check_segment(struct json_object *segs, bool *integrity, char *err, size_t len)
{
	struct json_object *seg = obj(segs, "0"), *in, *flags;
	int n = json_object_object_length(segs);
	const char *enc;

	if (n != 1 || !seg)
		return refuse(err, len, "segments: %d segment(s), expected exactly one crypt segment \"0\"", n);
	if (!str_is(seg, "type", "crypt"))
		return refuse(err, len, "segments.0.type is '%s', expected 'crypt'", str(seg, "type") ?: "(none)");
	enc = str(seg, "encryption");
	if (!enc || strcmp(enc, BW_VOL_CIPHER))
		return refuse(err, len, "segments.0.encryption is '%s', expected '" BW_VOL_CIPHER "'", enc ?: "(none)");
	if (num(seg, "sector_size") != BW_VOL_SECTOR)
		return refuse(err, len, "segments.0.sector_size is %lld, expected %d", (long long)num(seg, "sector_size"),
			      BW_VOL_SECTOR);
	if (num(seg, "iv_tweak") != 0)
		return refuse(err, len, "segments.0.iv_tweak is not 0");
	if (json_object_object_get_ex(seg, "flags", &flags) &&
	    (!json_object_is_type(flags, json_type_array) || json_object_array_length(flags)))
		return refuse(err, len, "segments.0.flags present (reencryption or unknown segment flags)");
	*integrity = json_object_object_get_ex(seg, "integrity", &in);
	if (!*integrity)
		return 0;
	if (!str_is(in, "type", BW_VOL_INTEGRITY))
		return refuse(err, len, "segments.0.integrity.type is '%s', expected '" BW_VOL_INTEGRITY "'",
			      str(in, "type") ?: "(none)");
	if (!str_is(in, "journal_encryption", "none") || !str_is(in, "journal_integrity", "none"))
		return refuse(err, len, "segments.0.integrity.journal_encryption/journal_integrity must be 'none'");
	return 0;
}

static int check_keyslots(struct json_object *ks, bool integrity, char *err, size_t len)
{
	int vk = integrity ? BW_VOL_VK_INTEGRITY : BW_VOL_VK_PLAIN;

	if (!ks || json_object_object_length(ks) == 0) {
		refuse(err, len, "keyslots: none (a format cut short?)");
		return -ENOKEY;
	}
	json_object_object_foreach(ks, id, slot) {
		struct json_object *area = obj(slot, "area"), *kdf = obj(slot, "kdf"), *af = obj(slot, "af");
		const char *kt = str(kdf, "type");

		if (!str_is(slot, "type", "luks2"))
			return refuse(err, len, "keyslots.%s.type is '%s', expected 'luks2'", id, str(slot, "type") ?: "(none)");
		if (num(slot, "key_size") != vk)
			return refuse(err, len, "keyslots.%s.key_size is %lld, expected %d", id, (long long)num(slot, "key_size"), vk);
		if (!str_is(area, "type", "raw") || !str_is(area, "encryption", BW_VOL_CIPHER) || num(area, "key_size") != 64)
			return refuse(err, len, "keyslots.%s.area.encryption is '%s' (key_size %lld), expected raw '"
				      BW_VOL_CIPHER "' with a 512-bit key", id, str(area, "encryption") ?: "(none)",
				      (long long)num(area, "key_size"));
		if (!kt || (strcmp(kt, "pbkdf2") && strcmp(kt, "argon2i") && strcmp(kt, "argon2id")))
			return refuse(err, len, "keyslots.%s.kdf.type is '%s', expected pbkdf2, argon2i or argon2id", id,
				      kt ?: "(none)");
		if (!str_is(af, "type", "luks1"))
			return refuse(err, len, "keyslots.%s.af.type is not 'luks1'", id);
	}
	return 0;
}

static bool array_has(struct json_object *a, const char *s)
{
	for (size_t i = 0; json_object_is_type(a, json_type_array) && i < json_object_array_length(a); i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		if (json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), s))
			return true;
	}
	return false;
}

/* One pbkdf2 digest binding every keyslot to segment 0: no keyslot opens anything else. */
static int check_digests(struct json_object *dg, struct json_object *ks, char *err, size_t len)
{
	struct json_object *d = obj(dg, "0"), *segs = NULL, *slots = NULL;

	if (!dg || json_object_object_length(dg) != 1 || !d)
		return refuse(err, len, "digests: expected exactly one digest \"0\"");
	if (!str_is(d, "type", "pbkdf2"))
		return refuse(err, len, "digests.0.type is '%s', expected 'pbkdf2'", str(d, "type") ?: "(none)");
	json_object_object_get_ex(d, "segments", &segs);
	json_object_object_get_ex(d, "keyslots", &slots);
	if (!segs || !json_object_is_type(segs, json_type_array) || json_object_array_length(segs) != 1 || !array_has(segs, "0"))
		return refuse(err, len, "digests.0.segments must be exactly [\"0\"]");
	json_object_object_foreach(ks, id, slot) {
		(void)slot;
		if (!array_has(slots, id))
			return refuse(err, len, "digests.0.keyslots does not bind keyslot %s", id);
	}
	return 0;
}

/* Exactly one token, ours, naming this volume: a header copied from another volume is refused. */
static int check_token(struct json_object *tokens, const char *id, char *err, size_t len)
{
	const char *found = NULL;

	json_object_object_foreach(tokens, tid, tok) {
		if (!str_is(tok, "type", BW_VOL_TOKEN_TYPE))
			return refuse(err, len, "tokens.%s.type is '%s': only one '" BW_VOL_TOKEN_TYPE "' token is allowed", tid,
				      str(tok, "type") ?: "(none)");
		if (found)
			return refuse(err, len, "tokens: more than one '" BW_VOL_TOKEN_TYPE "' token");
		found = str(tok, "volume_id") ?: "";
	}
	if (!found)
		return refuse(err, len, "tokens: no '" BW_VOL_TOKEN_TYPE "' token: not a bulwark volume");
	if (strcmp(found, id))
		return refuse(err, len, "tokens: the '" BW_VOL_TOKEN_TYPE "' token names volume '%.*s', not '%s' (volume swap?)",
			      BW_VOL_ID_MAX, found, id);
	return 0;
}

static int check_root(struct json_object *root, const char *id, bool *integrity, char *err, size_t len)
{
	struct json_object *ks = obj(root, "keyslots"), *tok = obj(root, "tokens"), *cfg = obj(root, "config");
	int r;

	if (!json_object_is_type(root, json_type_object))
		return refuse(err, len, "header metadata is not a JSON object");
	if (has_cipher_null(root, 0))
		return refuse(err, len, "cipher_null appears in the header");
	if (!obj(root, "segments"))
		return refuse(err, len, "segments missing");
	if ((r = check_segment(obj(root, "segments"), integrity, err, len)) < 0 ||
	    (r = check_keyslots(ks, *integrity, err, len)) < 0 ||
	    (r = check_digests(obj(root, "digests"), ks, err, len)) < 0)
		return r;
	if (!tok)
		return refuse(err, len, "tokens missing");
	if ((r = check_token(tok, id, err, len)) < 0)
		return r;
	if (!cfg)
		return refuse(err, len, "config missing");
	if (obj(cfg, "requirements"))
		return refuse(err, len, "config.requirements present (reencryption or unknown features)");
	return 0;
}

int bw_vol_check_luks2_json(const char *json, size_t n, const char *id, bool *integrity, char *err, size_t len)
{
	struct json_tokener *tk = json_tokener_new_ex(BW_VOL_JSON_DEPTH);
	struct json_object *root;
	bool integ = false;
	int r;

	if (!tk)
		return -ENOMEM;
	root = json_tokener_parse_ex(tk, json, (int)n);
	if (!root || json_tokener_get_error(tk) != json_tokener_success || json_tokener_get_parse_end(tk) != n)
		r = refuse(err, len, "header metadata is not one JSON value");
	else
		r = check_root(root, id, &integ, err, len);
	json_object_put(root);
	json_tokener_free(tk);
	if (r == 0 && integrity)
		*integrity = integ;
	return r;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * A header copy holds two binary headers, each followed by its JSON area. libcryptsetup may
 * pick either (highest seqid with a valid checksum), so both must say exactly the same thing:
 * then what is validated here is what gets activated, whichever one it loads.
 */
int bw_vol_check_luks2_header(const uint8_t *buf, size_t n, const char *id, bool *integrity, char *err, size_t len)
{
	const uint8_t *a = buf, *b;
	uint64_t hs;
	size_t jlen;

	if (n < LUKS2_BIN_SIZE || memcmp(a, "LUKS\xba\xbe\x00\x02", 8))
		return refuse(err, len, "the header is not LUKS2 (magic/version)");
	hs = be64(a + 8);
	if (hs < LUKS2_HDR_MIN || hs > LUKS2_HDR_MAX || (hs & (hs - 1)) || 2 * hs > n)
		return refuse(err, len, "the header's hdr_size %llu is invalid", (unsigned long long)hs);
	b = buf + hs;
	if (memcmp(b, "SKUL\xba\xbe\x00\x02", 8) || be64(b + 256) != hs)
		return refuse(err, len, "the secondary header is missing or misplaced");
	/* hdr_size, seqid, label, checksum_alg | uuid, subsystem (the salts differ by design) */
	if (memcmp(a + 8, b + 8, 104 - 8) || memcmp(a + 168, b + 168, 256 - 168) || be64(a + 256) != 0)
		return refuse(err, len, "the primary and secondary headers disagree (seqid, uuid or label)");
	if (memcmp(a + LUKS2_BIN_SIZE, b + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE))
		return refuse(err, len, "the primary and secondary JSON metadata differ");
	jlen = strnlen((const char *)a + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE);
	if (jlen == hs - LUKS2_BIN_SIZE)
		return refuse(err, len, "the JSON metadata is not terminated");
	return bw_vol_check_luks2_json((const char *)a + LUKS2_BIN_SIZE, jlen, id, integrity, err, len);
}

/*
 * Where a validated header's metadata and keyslots end (the largest keyslot area end) and where
 * the data starts (segment 0's offset): what a detached copy must hold. Only for JSON that
 * passed bw_vol_check_luks2_json; bounded by LUKS2's own limits.
 */
int bw_vol_luks2_extent(const char *json, size_t n, uint64_t *areas_end, uint64_t *data_offset)
{
	struct json_tokener *tk = json_tokener_new_ex(BW_VOL_JSON_DEPTH);
	struct json_object *root, *ks;
	int64_t end = 0, off;
	int r = 0;

	if (!tk)
		return -ENOMEM;
	root = json_tokener_parse_ex(tk, json, (int)n);
	json_tokener_free(tk);
	if (!root)
		return -EMEDIUMTYPE;
	off = num(obj(obj(root, "segments"), "0"), "offset");
	ks = obj(root, "keyslots");
	json_object_object_foreach(ks, id, slot) {
		struct json_object *area = obj(slot, "area");
		int64_t o = num(area, "offset"), z = num(area, "size");

		(void)id;
		if (o < 0 || z < 0 || o > LUKS2_DATA_MAX || z > LUKS2_DATA_MAX)
			r = -EMEDIUMTYPE;
		else if (o + z > end)
			end = o + z;
	}
	if (off < 0 || off > LUKS2_DATA_MAX || end > off)
		r = -EMEDIUMTYPE;
	json_object_put(root);
	*areas_end = (uint64_t)end;
	*data_offset = (uint64_t)off;
	return r;
}
