// SPDX-License-Identifier: GPL-2.0-only
/*
 * The bulwark LUKS2 token: which volume this header belongs to (checked on every open, so a
 * header copied from another volume is refused) and where its lifecycle stands, so that an
 * interrupted format or wipe resumes instead of starting over.
 *
 *   {"type":"bulwark","keyslots":[],"volume_id":"pvc-1","state":"wiping","integrity":true,
 *    "wipe_offset":"16777216","mac":"<64 hex>"}
 *
 * The host can rewrite it, so from "formatted" on it carries an HMAC-SHA256 under a key derived
 * from the volume key (HKDF, salt = the volume UUID): only a holder of the key can move the
 * lifecycle. A replayed old token still verifies; the wipe guards against that itself (volume.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "common/common.h"
#include "storage/internal.h"

#define TOKENS_MAX 32 /* LUKS2_TOKENS_MAX */
#define MAC_INFO "bulwark lifecycle token v1"

static int find(struct crypt_device *cd)
{
	for (int i = 0; i < TOKENS_MAX; i++) {
		const char *type;

		if (crypt_token_status(cd, i, &type) == CRYPT_TOKEN_EXTERNAL_UNKNOWN && !strcmp(type, BW_VOL_TOKEN_TYPE))
			return i;
	}
	return -ENOENT;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Strict: the allow-list has checked the shape already; anything odd here is refused too. */
int bw_vol_token_read(struct crypt_device *cd, struct bw_vol_token *t)
{
	struct json_object *o, *v;
	const char *json, *s;
	char *end;
	int id = find(cd), r = -EMEDIUMTYPE, st;

	if (id < 0)
		return id;
	if (crypt_token_json_get(cd, id, &json) < 0 || !(o = json_tokener_parse(json)))
		return -EMEDIUMTYPE;
	memset(t, 0, sizeof(*t));
	s = json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v) : "";
	if ((st = bw_vol_state_parse(s ?: "")) < 0)
		goto out;
	t->state = (enum bw_vol_state)st;
	if (!json_object_object_get_ex(o, "integrity", &v) || !json_object_is_type(v, json_type_boolean))
		goto out;
	t->integrity = json_object_get_boolean(v);
	if (!json_object_object_get_ex(o, "wipe_offset", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	s = json_object_get_string(v);
	errno = 0;
	t->wipe_offset = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ')
		goto out;
	if (json_object_object_get_ex(o, "mac", &v)) {
		if (!json_object_is_type(v, json_type_string) || unhex(json_object_get_string(v), t->mac, sizeof(t->mac)) < 0)
			goto out;
		t->has_mac = true;
	}
	r = 0;
out:
	json_object_put(o);
	return r;
}

int bw_vol_token_id(struct crypt_device *cd, char *out, size_t len)
{
	struct json_object *o, *v;
	const char *json, *s;
	int id = find(cd), r = -EMEDIUMTYPE;

	if (id < 0)
		return id;
	if (crypt_token_json_get(cd, id, &json) < 0 || !(o = json_tokener_parse(json)))
		return -EMEDIUMTYPE;
	s = json_object_object_get_ex(o, "volume_id", &v) && json_object_is_type(v, json_type_string)
		    ? json_object_get_string(v) : NULL;
	if (s && strlen(s) < len) {
		snprintf(out, len, "%s", s);
		r = 0;
	}
	json_object_put(o);
	return r;
}

int bw_vol_token_key(const uint8_t *vk, size_t vk_len, const char *uuid, uint8_t out[32])
{
	return bw_hkdf_sha256(vk, vk_len, uuid, strlen(uuid), MAC_INFO, sizeof(MAC_INFO) - 1, out, 32);
}

/* HMAC-SHA256 over "bulwark-token-v1\n<uuid>\n<id>\n<state>\n<0|1>\n<wipe_offset>". */
static int token_mac(const struct bw_vol_token *t, const char *uuid, const char *id, const uint8_t *key, uint8_t out[32])
{
	char msg[512];
	unsigned int n = 32;
	int m = snprintf(msg, sizeof(msg), "bulwark-token-v1\n%s\n%s\n%s\n%d\n%" PRIu64, uuid, id,
			 bw_vol_state_name(t->state), t->integrity ? 1 : 0, t->wipe_offset);

	if (m < 0 || (size_t)m >= sizeof(msg) || !HMAC(EVP_sha256(), key, 32, (const uint8_t *)msg, (size_t)m, out, &n))
		return -EINVAL;
	return 0;
}

int bw_vol_token_verify(const struct bw_vol_token *t, const char *uuid, const char *id, const uint8_t *key)
{
	uint8_t want[32];
	int r;

	if (!t->has_mac)
		return -EBADMSG;
	r = token_mac(t, uuid, id, key, want) == 0 && !CRYPTO_memcmp(want, t->mac, 32) ? 0 : -EBADMSG;
	OPENSSL_cleanse(want, sizeof(want));
	return r;
}

/* Replaces bulwark's token in place (there is at most one; the allow-list checks that). */
int bw_vol_token_write(struct crypt_device *cd, const char *id, const struct bw_vol_token *t, const uint8_t *mac_key)
{
	struct json_object *o = json_object_new_object();
	uint8_t mac[32];
	char off[24], hex[65];
	int tid = find(cd), r;

	if (!o)
		return -ENOMEM;
	snprintf(off, sizeof(off), "%" PRIu64, t->wipe_offset);
	json_object_object_add(o, "type", json_object_new_string(BW_VOL_TOKEN_TYPE));
	json_object_object_add(o, "keyslots", json_object_new_array());
	json_object_object_add(o, "volume_id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(bw_vol_state_name(t->state)));
	json_object_object_add(o, "integrity", json_object_new_boolean(t->integrity));
	json_object_object_add(o, "wipe_offset", json_object_new_string(off));
	if (mac_key) {
		if ((r = token_mac(t, crypt_get_uuid(cd) ?: "", id, mac_key, mac)) < 0) {
			json_object_put(o);
			return r;
		}
		bw_hex_encode(mac, 32, hex);
		json_object_object_add(o, "mac", json_object_new_string(hex));
	}
	r = crypt_token_json_set(cd, tid >= 0 ? tid : CRYPT_ANY_TOKEN, json_object_to_json_string(o));
	json_object_put(o);
	return r < 0 ? r : 0;
}
