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
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "bulwark/storage.h"
#include "storage/internal.h"
#include "common/common.h"

static const char *const states[] = {
	[ST_PREPARED] = "prepared", [ST_FORMATTED] = "formatted", [ST_WIPING] = "wiping",
	[ST_WIPED] = "wiped", [ST_READY] = "ready",
};

const char *bw_vol_state_name(enum bw_vol_state s)
{
	return (unsigned)s < sizeof(states) / sizeof(states[0]) ? states[s] : "?";
}

int bw_vol_state_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(s, states[i]))
			return (int)i;
	return -EINVAL;
}

/* Every allow-list refusal below is -EMEDIUMTYPE ("wrong medium type") for the caller. */

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

/* Only the members bulwark writes: anything else is a field some parser might read differently. */
static int only_keys(struct json_object *o, const char *const *allowed, const char *where, char *err, size_t len)
{
	json_object_object_foreach(o, k, v) {
		size_t i = 0;

		(void)v;
		while (allowed[i] && strcmp(allowed[i], k))
			i++;
		if (!allowed[i])
			return bw_errf(err, len, -EMEDIUMTYPE, "%s.%.40s: unexpected member", where, k);
	}
	return 0;
}

static bool is_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string);
}

static int check_segment(struct json_object *segs, int64_t *offset, bool *integrity, char *err, size_t len)
{
	static const char *const keys[] = { "type", "offset", "size", "iv_tweak", "encryption", "sector_size", "integrity",
					    "flags", NULL };
	static const char *const ikeys[] = { "type", "journal_encryption", "journal_integrity", NULL };
	struct json_object *seg = obj(segs, "0"), *in, *flags;
	int n = json_object_object_length(segs), r;
	const char *enc;

	if (n != 1 || !seg)
		return bw_errf(err, len, -EMEDIUMTYPE, "segments: %d segment(s), expected exactly one crypt segment \"0\"", n);
	if ((r = only_keys(seg, keys, "segments.0", err, len)) < 0)
		return r;
	if (!str_is(seg, "type", "crypt"))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.type is '%s', expected 'crypt'", str(seg, "type") ?: "(none)");
	enc = str(seg, "encryption");
	if (!enc || strcmp(enc, BW_VOL_CIPHER))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.encryption is '%s', expected '" BW_VOL_CIPHER "'", enc ?: "(none)");
	if (num(seg, "sector_size") != BW_VOL_SECTOR)
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.sector_size is %lld, expected %d", (long long)num(seg, "sector_size"),
			      BW_VOL_SECTOR);
	if (!is_str(seg, "iv_tweak") || num(seg, "iv_tweak") != 0)
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.iv_tweak is not \"0\"");
	/* bulwark's format puts the data at 16 MiB; 0 would map the header itself */
	*offset = is_str(seg, "offset") ? num(seg, "offset") : -1;
	if (*offset != BW_VOL_DATA_OFFSET)
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.offset is %lld, expected %lld", (long long)*offset,
			      (long long)BW_VOL_DATA_OFFSET);
	if (!str_is(seg, "size", "dynamic"))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.size is '%s', expected 'dynamic' (the whole device)",
			      str(seg, "size") ?: "(not a string)");
	if (json_object_object_get_ex(seg, "flags", &flags) &&
	    (!json_object_is_type(flags, json_type_array) || json_object_array_length(flags)))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.flags present (reencryption or unknown segment flags)");
	*integrity = json_object_object_get_ex(seg, "integrity", &in);
	if (!*integrity)
		return 0;
	if (!json_object_is_type(in, json_type_object) || (r = only_keys(in, ikeys, "segments.0.integrity", err, len)) < 0)
		return r < 0 ? r : bw_errf(err, len, -EMEDIUMTYPE, "segments.0.integrity is not an object");
	if (!str_is(in, "type", BW_VOL_INTEGRITY))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.integrity.type is '%s', expected '" BW_VOL_INTEGRITY "'",
			      str(in, "type") ?: "(none)");
	if (!str_is(in, "journal_encryption", "none") || !str_is(in, "journal_integrity", "none"))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments.0.integrity.journal_encryption/journal_integrity must be 'none'");
	return 0;
}

/*
 * A KDF is work the host chooses for us while we hold the volume lock: only PBKDF2-SHA256, at
 * most BW_VOL_KDF_MAX_ITER iterations (argon2 would also let it choose memory and threads).
 */
static int check_kdf(struct json_object *o, const char *where, char *err, size_t len)
{
	int64_t it = num(o, "iterations");

	if (!str_is(o, "type", "pbkdf2") || !str_is(o, "hash", "sha256"))
		return bw_errf(err, len, -EMEDIUMTYPE, "%s is '%s'/'%s', expected pbkdf2 with sha256", where, str(o, "type") ?: "(none)",
			      str(o, "hash") ?: "(none)");
	if (it < 1000 || it > BW_VOL_KDF_MAX_ITER)
		return bw_errf(err, len, -EMEDIUMTYPE, "%s.iterations is %lld, expected 1000..%d", where, (long long)it, BW_VOL_KDF_MAX_ITER);
	return 0;
}

static int check_keyslots(struct json_object *ks, bool integrity, int64_t areas_lo, int64_t areas_hi, char *err,
			  size_t len)
{
	static const char *const keys[] = { "type", "key_size", "af", "area", "kdf", "priority", NULL };
	static const char *const kdf_keys[] = { "type", "hash", "iterations", "salt", NULL };
	static const char *const area_keys[] = { "type", "offset", "size", "encryption", "key_size", NULL };
	static const char *const af_keys[] = { "type", "stripes", "hash", NULL };
	int vk = integrity ? BW_VOL_VK_INTEGRITY : BW_VOL_VK_PLAIN, r;

	if (!ks)
		return bw_errf(err, len, -EMEDIUMTYPE, "keyslots missing or not an object");
	if (json_object_object_length(ks) > BW_VOL_KEYSLOTS_MAX)
		return bw_errf(err, len, -EMEDIUMTYPE, "keyslots: %d, at most %d", json_object_object_length(ks), BW_VOL_KEYSLOTS_MAX);
	json_object_object_foreach(ks, id, slot) {
		struct json_object *area = obj(slot, "area"), *kdf = obj(slot, "kdf"), *af = obj(slot, "af");
		char where[64];
		int64_t ao = num(area, "offset"), az = num(area, "size");

		if (!json_object_is_type(slot, json_type_object) || !area || !kdf || !af)
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%.8s: not a keyslot object with area, kdf and af", id);
		snprintf(where, sizeof(where), "keyslots.%.8s", id);
		if ((r = only_keys(slot, keys, where, err, len)) < 0 || (r = only_keys(area, area_keys, where, err, len)) < 0 ||
		    (r = only_keys(af, af_keys, where, err, len)) < 0)
			return r;
		if (!str_is(slot, "type", "luks2"))
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%s.type is '%s', expected 'luks2'", id, str(slot, "type") ?: "(none)");
		if (num(slot, "key_size") != vk)
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%s.key_size is %lld, expected %d", id, (long long)num(slot, "key_size"), vk);
		if (!str_is(area, "type", "raw") || !str_is(area, "encryption", BW_VOL_CIPHER) || num(area, "key_size") != 64)
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%s.area.encryption is '%s' (key_size %lld), expected raw '"
				      BW_VOL_CIPHER "' with a 512-bit key", id, str(area, "encryption") ?: "(none)",
				      (long long)num(area, "key_size"));
		if (ao < areas_lo || az <= 0 || az > areas_hi || ao > areas_hi - az || ao % 4096 || az % 4096)
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%s.area (offset %lld, size %lld) is outside the keyslots area", id,
				      (long long)ao, (long long)az);
		snprintf(where, sizeof(where), "keyslots.%.8s.kdf", id);
		if ((r = check_kdf(kdf, where, err, len)) < 0 || (r = only_keys(kdf, kdf_keys, where, err, len)) < 0)
			return r;
		if (!str_is(af, "type", "luks1") || !str_is(af, "hash", "sha256") || num(af, "stripes") != 4000)
			return bw_errf(err, len, -EMEDIUMTYPE, "keyslots.%s.af is not luks1/sha256 with 4000 stripes", id);
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

/* One pbkdf2 digest binding exactly the keyslots to segment 0: no keyslot opens anything else. */
static int check_digests(struct json_object *dg, struct json_object *ks, char *err, size_t len)
{
	static const char *const keys[] = { "type", "keyslots", "segments", "hash", "iterations", "salt", "digest", NULL };
	struct json_object *d = obj(dg, "0"), *segs = NULL, *slots = NULL;
	int r;

	if (!dg || json_object_object_length(dg) != 1 || !d)
		return bw_errf(err, len, -EMEDIUMTYPE, "digests: expected exactly one digest \"0\"");
	if ((r = only_keys(d, keys, "digests.0", err, len)) < 0)
		return r;
	if (!str_is(d, "type", "pbkdf2"))
		return bw_errf(err, len, -EMEDIUMTYPE, "digests.0.type is '%s', expected 'pbkdf2'", str(d, "type") ?: "(none)");
	if ((r = check_kdf(d, "digests.0", err, len)) < 0)
		return r;
	json_object_object_get_ex(d, "segments", &segs);
	json_object_object_get_ex(d, "keyslots", &slots);
	if (!segs || !json_object_is_type(segs, json_type_array) || json_object_array_length(segs) != 1 || !array_has(segs, "0"))
		return bw_errf(err, len, -EMEDIUMTYPE, "digests.0.segments must be exactly [\"0\"]");
	if (!json_object_is_type(slots, json_type_array) || (int)json_object_array_length(slots) != json_object_object_length(ks))
		return bw_errf(err, len, -EMEDIUMTYPE, "digests.0.keyslots must list exactly the keyslots");
	json_object_object_foreach(ks, id, slot) {
		(void)slot;
		if (!array_has(slots, id))
			return bw_errf(err, len, -EMEDIUMTYPE, "digests.0.keyslots does not bind keyslot %s", id);
	}
	return 0;
}

/*
 * Exactly one token, ours, naming this volume (a header copied from another volume is refused),
 * with a well-formed lifecycle: the MAC over it is checked once the key is known.
 */
static int check_token(struct json_object *tokens, const char *id, bool integrity, bool keyless, char *err, size_t len)
{
	static const char *const keys[] = { "type", "keyslots", "volume_id", "state", "integrity", "wipe_offset", "mac", NULL };
	struct json_object *tok = NULL, *v;
	const char *found = NULL, *s;
	int r;

	json_object_object_foreach(tokens, tid, t) {
		if (!str_is(t, "type", BW_VOL_TOKEN_TYPE))
			return bw_errf(err, len, -EMEDIUMTYPE, "tokens.%s.type is '%s': only one '" BW_VOL_TOKEN_TYPE "' token is allowed", tid,
				      str(t, "type") ?: "(none)");
		if (found)
			return bw_errf(err, len, -EMEDIUMTYPE, "tokens: more than one '" BW_VOL_TOKEN_TYPE "' token");
		found = str(t, "volume_id") ?: "";
		tok = t;
	}
	if (!found)
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens: no '" BW_VOL_TOKEN_TYPE "' token: not a bulwark volume");
	if (strcmp(found, id))
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens: the '" BW_VOL_TOKEN_TYPE "' token names volume '%.*s', not '%s' (volume swap?)",
			      BW_VOL_ID_MAX, found, id);
	if ((r = only_keys(tok, keys, "tokens.bulwark", err, len)) < 0)
		return r;
	if (!json_object_object_get_ex(tok, "keyslots", &v) || !json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v))
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens.bulwark.keyslots must be []");
	s = str(tok, "state");
	if (!s || bw_vol_state_parse(s) < 0)
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens.bulwark.state is '%.20s', not a lifecycle state", s ?: "(none)");
	if (keyless && strcmp(s, "prepared"))
		return bw_errf(err, len, -EMEDIUMTYPE, "keyslots: none, but the token's state is '%s': only a 'prepared' header is a format"
			      " cut short", s);
	if (!json_object_object_get_ex(tok, "integrity", &v) || !json_object_is_type(v, json_type_boolean) ||
	    json_object_get_boolean(v) != integrity)
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens.bulwark.integrity disagrees with segment 0");
	s = str(tok, "wipe_offset");
	if (!s || strspn(s, "0123456789") != strlen(s) || !*s || strlen(s) > 19 || strtoull(s, NULL, 10) % BW_VOL_SECTOR)
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens.bulwark.wipe_offset '%.24s' is not a multiple of %d", s ?: "(none)",
			      BW_VOL_SECTOR);
	s = str(tok, "mac");
	if (json_object_object_get_ex(tok, "mac", &v) && (!s || strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64))
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens.bulwark.mac is not 64 hex digits");
	return 0;
}

static int check_config(struct json_object *cfg, int64_t hdr_size, int64_t *keyslots_size, char *err, size_t len)
{
	static const char *const keys[] = { "json_size", "keyslots_size", "flags", "requirements", NULL };
	struct json_object *v;
	int r;

	if (!cfg)
		return bw_errf(err, len, -EMEDIUMTYPE, "config missing");
	if ((r = only_keys(cfg, keys, "config", err, len)) < 0)
		return r;
	if (json_object_object_get_ex(cfg, "requirements", &v))
		return bw_errf(err, len, -EMEDIUMTYPE, "config.requirements present (reencryption or unknown features)");
	if (json_object_object_get_ex(cfg, "flags", &v) && (!json_object_is_type(v, json_type_array) || json_object_array_length(v)))
		return bw_errf(err, len, -EMEDIUMTYPE, "config.flags present (persistent activation flags)");
	if (hdr_size && (!is_str(cfg, "json_size") || num(cfg, "json_size") != hdr_size - LUKS2_BIN_SIZE))
		return bw_errf(err, len, -EMEDIUMTYPE, "config.json_size does not match the binary header's hdr_size");
	*keyslots_size = is_str(cfg, "keyslots_size") ? num(cfg, "keyslots_size") : -1;
	if (*keyslots_size < 0 || *keyslots_size % 4096)
		return bw_errf(err, len, -EMEDIUMTYPE, "config.keyslots_size is missing or not a multiple of 4096");
	return 0;
}

static int check_root(struct json_object *root, const char *id, int64_t hdr_size, bool *integrity, char *err, size_t len)
{
	static const char *const keys[] = { "keyslots", "tokens", "segments", "digests", "config", NULL };
	struct json_object *ks = obj(root, "keyslots"), *tok = obj(root, "tokens");
	int64_t offset = 0, kss = 0, lo = hdr_size ? 2 * hdr_size : 2 * LUKS2_HDR_MIN;
	bool keyless;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return bw_errf(err, len, -EMEDIUMTYPE, "header metadata is not a JSON object");
	if (has_cipher_null(root, 0))
		return bw_errf(err, len, -EMEDIUMTYPE, "cipher_null appears in the header");
	if ((r = only_keys(root, keys, "(top level)", err, len)) < 0)
		return r;
	if (!obj(root, "segments"))
		return bw_errf(err, len, -EMEDIUMTYPE, "segments missing");
	if ((r = check_segment(obj(root, "segments"), &offset, integrity, err, len)) < 0 ||
	    (r = check_config(obj(root, "config"), hdr_size, &kss, err, len)) < 0)
		return r;
	if (lo + kss > offset)
		return bw_errf(err, len, -EMEDIUMTYPE, "config.keyslots_size %lld reaches into the data (offset %lld)", (long long)kss,
			      (long long)offset);
	if ((r = check_keyslots(ks, *integrity, lo, lo + kss, err, len)) < 0 ||
	    (r = check_digests(obj(root, "digests"), ks, err, len)) < 0)
		return r;
	if (!tok)
		return bw_errf(err, len, -EMEDIUMTYPE, "tokens missing");
	keyless = json_object_object_length(ks) == 0;
	if ((r = check_token(tok, id, *integrity, keyless, err, len)) < 0)
		return r;
	if (keyless) {
		/* only an otherwise valid header of this volume, stopped in "prepared", was cut short */
		bw_errf(err, len, -EMEDIUMTYPE, "keyslots: none (a format cut short)");
		return -ENOKEY;
	}
	return 0;
}

int bw_vol_check_luks2_json_hs(const char *json, size_t n, uint64_t hdr_size, const char *id, bool *integrity, char *err,
			       size_t len)
{
	struct json_tokener *tk;
	struct json_object *root;
	bool integ = false;
	int r;

	if (n > LUKS2_HDR_MAX || memchr(json, 0, n))
		return bw_errf(err, len, -EMEDIUMTYPE, "header metadata is longer than LUKS2 allows or holds a NUL");
	if (!(tk = json_tokener_new_ex(BW_VOL_JSON_DEPTH)))
		return -ENOMEM;
	json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tk, json, (int)n);
	if (!root || json_tokener_get_error(tk) != json_tokener_success || json_tokener_get_parse_end(tk) != n)
		r = bw_errf(err, len, -EMEDIUMTYPE, "header metadata is not one JSON value");
	else
		r = check_root(root, id, (int64_t)hdr_size, &integ, err, len);
	json_object_put(root);
	json_tokener_free(tk);
	if (r == 0 && integrity)
		*integrity = integ;
	return r;
}

int bw_vol_check_luks2_json(const char *json, size_t n, const char *id, bool *integrity, char *err, size_t len)
{
	return bw_vol_check_luks2_json_hs(json, n, 0, id, integrity, err, len);
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* SHA-256 over one header (binary + JSON area) with its checksum field zeroed, as LUKS2 defines. */
static int luks2_csum(const uint8_t *h, uint64_t hs, uint8_t out[32])
{
	static const uint8_t zero[LUKS2_CSUM_LEN];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, h, LUKS2_CSUM_OFF) &&
		 EVP_DigestUpdate(c, zero, sizeof(zero)) &&
		 EVP_DigestUpdate(c, h + LUKS2_CSUM_OFF + LUKS2_CSUM_LEN, hs - LUKS2_CSUM_OFF - LUKS2_CSUM_LEN) &&
		 EVP_DigestFinal_ex(c, out, NULL);

	EVP_MD_CTX_free(c);
	return ok ? 0 : -ENOMEM;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* One binary header at off: magic, version, hdr_size, hdr_offset, sha256 checksum, zero padding. */
static int check_bin(const uint8_t *h, const char *magic, uint64_t hs, uint64_t off, const char *which, char *err, size_t len)
{
	uint8_t md[32];

	if (memcmp(h, magic, 8) || be64(h + 8) != hs || be64(h + 256) != off)
		return bw_errf(err, len, -EMEDIUMTYPE, "the %s header is missing or misplaced (magic, hdr_size or offset)", which);
	if (memcmp(h + 72, "sha256", 7) || !all_zero(h + 72 + 7, 32 - 7))
		return bw_errf(err, len, -EMEDIUMTYPE, "the %s header's checksum algorithm is not sha256", which);
	if (!memchr(h + 24, 0, 48) || !memchr(h + 168, 0, 40) || !memchr(h + 208, 0, 48))
		return bw_errf(err, len, -EMEDIUMTYPE, "the %s header's label, UUID or subsystem is not terminated", which);
	if (!all_zero(h + 264, LUKS2_CSUM_OFF - 264) || !all_zero(h + LUKS2_CSUM_OFF + 32, LUKS2_CSUM_LEN - 32) ||
	    !all_zero(h + LUKS2_CSUM_OFF + LUKS2_CSUM_LEN, LUKS2_BIN_SIZE - LUKS2_CSUM_OFF - LUKS2_CSUM_LEN))
		return bw_errf(err, len, -EMEDIUMTYPE, "the %s header's padding is not zero", which);
	if (luks2_csum(h, hs, md) < 0)
		return -ENOMEM;
	if (CRYPTO_memcmp(md, h + LUKS2_CSUM_OFF, 32))
		return bw_errf(err, len, -EMEDIUMTYPE, "the %s header's checksum is wrong (a damaged or forged header)", which);
	return 0;
}

/*
 * A header copy holds two binary headers, each followed by its JSON area. Both checksums must be
 * right: libcryptsetup falls back to scanning for other secondary headers (at 16 KiB ... 4 MiB)
 * when the primary's is not, and would load bytes never validated here. Both must say exactly the
 * same thing (libcryptsetup loads the one with the higher seqid), and the JSON area after the
 * JSON's NUL must be zero, so the validated text is all there is.
 */
int bw_vol_check_luks2_header(const uint8_t *buf, size_t n, const char *id, bool *integrity, char *err, size_t len)
{
	const uint8_t *a = buf, *b;
	uint64_t hs;
	size_t jlen;
	int r;

	if (n < LUKS2_BIN_SIZE || memcmp(a, LUKS2_MAGIC, 8))
		return bw_errf(err, len, -EMEDIUMTYPE, "the header is not LUKS2 (magic/version)");
	hs = be64(a + 8);
	if (hs < LUKS2_HDR_MIN || hs > LUKS2_HDR_MAX || (hs & (hs - 1)) || 2 * hs > n)
		return bw_errf(err, len, -EMEDIUMTYPE, "the header's hdr_size %llu is invalid", (unsigned long long)hs);
	b = buf + hs;
	if ((r = check_bin(a, LUKS2_MAGIC, hs, 0, "primary", err, len)) < 0 ||
	    (r = check_bin(b, LUKS2_MAGIC_2ND, hs, hs, "secondary", err, len)) < 0)
		return r;
	/* hdr_size, seqid, label, checksum_alg | uuid, subsystem (the salts differ by design) */
	if (memcmp(a + 8, b + 8, 104 - 8) || memcmp(a + 168, b + 168, 256 - 168))
		return bw_errf(err, len, -EMEDIUMTYPE, "the primary and secondary headers disagree (seqid, uuid or label)");
	if (memcmp(a + LUKS2_BIN_SIZE, b + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE))
		return bw_errf(err, len, -EMEDIUMTYPE, "the primary and secondary JSON metadata differ");
	jlen = strnlen((const char *)a + LUKS2_BIN_SIZE, hs - LUKS2_BIN_SIZE);
	if (jlen == hs - LUKS2_BIN_SIZE)
		return bw_errf(err, len, -EMEDIUMTYPE, "the JSON metadata is not terminated");
	if (!all_zero(a + LUKS2_BIN_SIZE + jlen, hs - LUKS2_BIN_SIZE - jlen))
		return bw_errf(err, len, -EMEDIUMTYPE, "the JSON area holds bytes after the JSON's end (a hidden header?)");
	return bw_vol_check_luks2_json_hs((const char *)a + LUKS2_BIN_SIZE, jlen, hs, id, integrity, err, len);
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
