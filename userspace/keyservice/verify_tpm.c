// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tpm verifier: userspace/tpm checks the quote (AK signature, PCR digest, nonce binding);
 * the claims it returns (AK identity, 24 SHA-256 PCRs) are matched against the policy's
 * reference values by bw_ks_policy_match.
 */
#include <errno.h>
#include "keyservice/keyservice.h"
#include "tpm/tpm.h"

static int verify_tpm(const struct bw_ks_policy *p, struct json_object *ev, const uint8_t *rd, size_t len,
		      struct json_object **claims, char *err, size_t errlen)
{
	struct bw_tpm_claims c;
	struct json_object *pcrs;
	char hex[65];
	int r;

	(void)p;
	r = bw_tpm_verify(ev, rd, len, &c, err, errlen);
	if (r < 0)
		return r;
	*claims = json_object_new_object();
	pcrs = json_object_new_array();
	if (!*claims || !pcrs) {
		json_object_put(*claims);
		json_object_put(pcrs);
		return -ENOMEM;
	}
	for (int i = 0; i < BW_TPM_PCRS; i++) {
		bw_hex_encode(c.pcrs[i], 32, hex);
		json_object_array_add(pcrs, json_object_new_string(hex));
	}
	json_object_object_add(*claims, "tee", json_object_new_string("tpm"));
	json_object_object_add(*claims, "ak", json_object_new_string(c.ak_id));
	json_object_object_add(*claims, "pcrs", pcrs);
	return 0;
}

const struct bw_ks_verifier bw_ks_verifier_tpm = { .tee = "tpm", .verify = verify_tpm };
