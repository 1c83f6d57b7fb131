// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the LUKS2 header allow-list on attacker-controlled bytes, as JSON metadata and as a
 * whole binary header copy (both metadata areas). It must never crash, and whatever it accepts
 * must really be bulwark's profile: an independent oracle re-parses the accepted text and checks
 * the whole of it (segment, keyslots and their KDF cost, digest, token, no cipher_null).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/sha.h>
#include "bulwark/storage.h"
#include "common/common.h"

#define HS 16384

/* The value at a '/'-separated path of object members, or NULL. */
static struct json_object *at(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL;

	strncpy(buf, path, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	for (char *k = strtok_r(buf, "/", &save); k && o; k = strtok_r(NULL, "/", &save))
		if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, k, &o))
			return NULL;
	return o;
}

static int has(struct json_object *o, const char *path, const char *want)
{
	struct json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), want);
}

static long long number(struct json_object *o, const char *path)
{
	struct json_object *v = at(o, path);

	if (!v || json_object_is_type(v, json_type_string))
		return v ? atoll(json_object_get_string(v)) : -1;
	return json_object_is_type(v, json_type_int) ? (long long)json_object_get_int64(v) : -1;
}

/* Aborts unless text is bulwark's profile for volume pvc-1. */
static void oracle(const char *text, size_t n, int integrity)
{
	char *copy = strndup(text, n);
	struct json_object *root = copy ? json_tokener_parse(copy) : NULL, *ks, *tok = NULL;
	int slots = 0, tokens = 0;

	if (!root || json_object_object_length(root) != 5 || json_object_object_length(at(root, "segments")) != 1 ||
	    !has(root, "segments/0/type", "crypt") || !has(root, "segments/0/encryption", "aes-xts-plain64") ||
	    number(root, "segments/0/sector_size") != 4096 || !has(root, "segments/0/offset", "16777216") ||
	    !has(root, "segments/0/size", "dynamic") || !has(root, "segments/0/iv_tweak", "0") ||
	    (at(root, "segments/0/integrity") != NULL) != integrity ||
	    (integrity && !has(root, "segments/0/integrity/type", "hmac(sha256)")) ||
	    json_object_object_length(at(root, "digests")) != 1 || !has(root, "digests/0/type", "pbkdf2") ||
	    number(root, "digests/0/iterations") > 100000 || at(root, "config/requirements"))
		abort();
	if (strcasestr(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), "cipher_null"))
		abort();
	ks = at(root, "keyslots");
	json_object_object_foreach(ks, id, slot) {
		(void)id;
		slots++;
		if (!has(slot, "kdf/type", "pbkdf2") || number(slot, "kdf/iterations") > 100000 ||
		    number(slot, "kdf/iterations") < 1000 || !has(slot, "area/encryption", "aes-xts-plain64") ||
		    number(slot, "key_size") != (integrity ? 96 : 64))
			abort();
	}
	json_object_object_foreach(at(root, "tokens"), tid, t) {
		(void)tid;
		tokens++;
		tok = t;
	}
	if (slots < 1 || slots > 4 || tokens != 1 || !has(tok, "type", "bulwark") || !has(tok, "volume_id", "pvc-1"))
		abort();
	json_object_put(root);
	free(copy);
}

static void seal(uint8_t *p)
{
	memset(p + 448, 0, 64);
	SHA256(p, HS, p + 448);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t hdr[2 * HS];
	char err[BW_ERR_LEN];
	bool integrity;

	/* The input as the JSON area; its length, not a NUL, bounds it. */
	if (bw_vol_check_luks2_json((const char *)data, size, "pvc-1", &integrity, err, sizeof(err)) == 0)
		oracle((const char *)data, size, integrity);
	/* The input as a raw header copy... */
	if (bw_vol_check_luks2_header(data, size, "pvc-1", &integrity, err, sizeof(err)) == 0 && size >= 2 * HS)
		oracle((const char *)data + 4096, strnlen((const char *)data + 4096, size - 4096), integrity);
	/* ...and wrapped into two well-formed, checksummed binary headers, so the JSON checks are
	 * reached too. */
	if (size < HS - 4096) {
		memset(hdr, 0, sizeof(hdr));
		for (int c = 0; c < 2; c++) {
			uint8_t *p = hdr + c * HS;
			memcpy(p, c ? "SKUL\xba\xbe\x00\x02" : "LUKS\xba\xbe\x00\x02", 8);
			p[8 + 6] = HS >> 8;
			if (c)
				p[256 + 6] = HS >> 8;
			memcpy(p + 72, "sha256", 6);
			memcpy(p + 4096, data, size);
			seal(p);
		}
		if (bw_vol_check_luks2_header(hdr, sizeof(hdr), "pvc-1", &integrity, err, sizeof(err)) == 0)
			oracle((const char *)hdr + 4096, strnlen((const char *)hdr + 4096, HS - 4096), integrity);
	}
	return 0;
}
