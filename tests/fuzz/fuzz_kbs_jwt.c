// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the key service's token parser (compact JWS, ES256) and the resource endpoint that
 * authenticates with it: the input is the bearer token, and its first line also a resource path.
 * No input may verify (only the service holds its signing key) or reach a key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_ks_ctx *c = fuzz_ks_ctx(16);
	char *s = strndup((const char *)data, size), err[BW_ERR_LEN];
	struct json_object *claims = NULL;
	struct bw_ks_reply r = { 0 };

	if (!s)
		return 0;
	if (bw_jwt_verify(c->signing_key, BW_KS_ISSUER, s, 1000, &claims, err, sizeof(err)) == 0)
		abort(); /* nobody but the service holds the signing key */
	s[strcspn(s, "\n")] = '\0';
	bw_ks_handle_resource(c, NULL, s, s, 1000, &r);
	if (r.status == 200)
		abort();
	free(r.body);
	free(s);
	return 0;
}
