/* SPDX-License-Identifier: GPL-2.0-only */
/* The key-service context the kbs fuzz targets share: a sample-enabled policy allowing all. */
#ifndef BULWARK_FUZZ_KBS_H
#define BULWARK_FUZZ_KBS_H

#include <stdlib.h>
#include <string.h>
#include "kbs/internal.h"
#include "keyservice/keyservice.h"

static inline struct bw_ks_ctx *fuzz_ks_ctx(size_t max_sessions)
{
	static struct bw_ks_ctx c;
	static const char pol[] = "{\"sample\":true,\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"*\"]}]}";
	char err[BW_ERR_LEN];

	if (!c.signing_key) {
		c.signing_key = bw_jwk_new(BW_JWK_EC_P256);
		c.sessions = bw_ks_sessions_new(&(struct bw_ks_session_limits){ .max = max_sessions, .lifetime = 300 });
		c.token_lifetime = 60;
		if (!c.signing_key || !c.sessions || bw_ks_policy_parse(pol, strlen(pol), &c.policy, err, sizeof(err)) < 0 ||
		    bw_secret_new(&c.master, 32) < 0 || bw_secret_new(&c.salt, 32) < 0)
			abort();
	}
	return &c;
}

#endif
