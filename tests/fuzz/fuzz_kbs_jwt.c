// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the key service's token parser (compact JWS, ES256) and the resource endpoint that
 * authenticates with it: the input is the bearer token, and its first line also a resource path.
 * A token the service itself signed must verify; nothing unsigned may reach a key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "keyservice/keyservice.h"

static struct ks_ctx *ctx(void)
{
	static struct ks_ctx c;
	static const char pol[] = "{\"sample\":true,\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"*\"]}]}";
	char err[KS_ERRLEN];

	if (!c.signing_key) {
		c.signing_key = bw_key_new(BW_KEY_EC_P256);
		c.sessions = ks_sessions_new(16, 300);
		c.token_lifetime = 60;
		if (ks_policy_parse(pol, strlen(pol), &c.policy, err, sizeof(err)) < 0 ||
		    bw_secret_new(&c.master, 32) < 0 || bw_secret_new(&c.salt, 32) < 0)
			abort();
	}
	return &c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_ctx *c = ctx();
	char *s = strndup((const char *)data, size), err[KS_ERRLEN];
	struct json_object *claims = NULL;
	struct ks_reply r = { 0 };

	if (!s)
		return 0;
	if (bw_jwt_verify(c->signing_key, s, 1000, &claims, err, sizeof(err)) == 0)
		abort(); /* nobody but the service holds the signing key */
	s[strcspn(s, "\n")] = '\0';
	ks_handle_resource(c, NULL, s, s, 1000, &r);
	if (r.status == 200)
		abort();
	free(r.body);
	free(s);
	return 0;
}
