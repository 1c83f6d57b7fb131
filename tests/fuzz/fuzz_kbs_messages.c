// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the key service's JSON message parsers — the Request (/auth), the Attestation
 * (/attest, on a fresh session: runtime data, tee-pubkey JWK import, JCS, sample evidence) — and
 * the policy file parser, all on the same input; the strict JSON parser round-trips what it accepts. A forged attestation must never be accepted:
 * the fuzzer cannot know the session's random nonce.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_ks_ctx *c = fuzz_ks_ctx(1 << 20);
	struct bw_ks_reply r = { 0 };
	struct bw_ks_session *s;
	struct bw_ks_policy p;
	struct json_object *o = NULL;
	char err[BW_ERR_LEN], *canon = NULL;

	bw_ks_handle_auth(c, "192.0.2.1", (const char *)data, size, 1000, &r);
	free(r.body);
	r = (struct bw_ks_reply){ 0 };
	s = bw_ks_session_create(c->sessions, "sample", "192.0.2.1", 1000);
	if (s) {
		bw_ks_handle_attest(c, s->id, (const char *)data, size, 1000, &r);
		if (r.status == 200)
			abort();
		free(r.body);
		bw_ks_sessions_purge(c->sessions, 100000); /* keep the table small */
	}
	if (bw_ks_policy_parse((const char *)data, size, &p, err, sizeof(err)) == 0)
		bw_ks_policy_free(&p);
	if (bw_kbs_parse_object((const char *)data, size, &o) == 0) {
		/* Differential: what the strict parser accepted, json-c writes back as text the strict
		 * parser accepts again, with the same members (no lossy or lenient round trip). */
		const char *back = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		struct json_object *again = NULL;
		if (bw_kbs_parse_object(back, strlen(back), &again) < 0 || !json_object_equal(o, again))
			abort();
		json_object_put(again);
		if (bw_jcs(o, &canon, NULL) == 0)
			free(canon);
	}
	json_object_put(o);
	return 0;
}
