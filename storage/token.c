// SPDX-License-Identifier: GPL-2.0-only
/*
 * The bulwark LUKS2 token: which volume this header belongs to (checked on every open, so a
 * header copied from another volume is refused) and where its lifecycle stands, so that an
 * interrupted format or wipe resumes instead of starting over.
 *
 *   {"type":"bulwark","keyslots":[],"volume_id":"pvc-1","state":"wiping","integrity":true,
 *    "wipe_offset":"16777216"}
 */
#include <errno.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "storage/internal.h"

#define TOKENS_MAX 32 /* LUKS2_TOKENS_MAX */

static const char *const states[] = {
	[ST_PREPARED] = "prepared", [ST_FORMATTED] = "formatted", [ST_WIPING] = "wiping",
	[ST_WIPED] = "wiped", [ST_READY] = "ready",
};

const char *bw_vol_state_name(enum bw_vol_state s)
{
	return (unsigned)s < sizeof(states) / sizeof(states[0]) ? states[s] : "?";
}

static int find(struct crypt_device *cd)
{
	for (int i = 0; i < TOKENS_MAX; i++) {
		const char *type;

		if (crypt_token_status(cd, i, &type) == CRYPT_TOKEN_EXTERNAL_UNKNOWN && !strcmp(type, BW_VOL_TOKEN_TYPE))
			return i;
	}
	return -ENOENT;
}

int bw_vol_token_read(struct crypt_device *cd, struct bw_vol_token *t)
{
	struct json_object *o, *v;
	const char *json, *s;
	int id = find(cd), r = -EMEDIUMTYPE;

	if (id < 0)
		return id;
	if (crypt_token_json_get(cd, id, &json) < 0 || !(o = json_tokener_parse(json)))
		return -EMEDIUMTYPE;
	memset(t, 0, sizeof(*t));
	s = json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v) : "";
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(s, states[i])) {
			t->state = i;
			r = 0;
		}
	if (json_object_object_get_ex(o, "integrity", &v))
		t->integrity = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "wipe_offset", &v))
		t->wipe_offset = strtoull(json_object_get_string(v), NULL, 10);
	json_object_put(o);
	return r;
}

/* Replaces bulwark's token in place (there is at most one; the allow-list checks that). */
int bw_vol_token_write(struct crypt_device *cd, const char *id, const struct bw_vol_token *t)
{
	struct json_object *o = json_object_new_object();
	char off[24];
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
	r = crypt_token_json_set(cd, tid >= 0 ? tid : CRYPT_ANY_TOKEN, json_object_to_json_string(o));
	json_object_put(o);
	return r < 0 ? r : 0;
}
