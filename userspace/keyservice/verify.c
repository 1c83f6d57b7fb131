// SPDX-License-Identifier: GPL-2.0-only
/*
 * Evidence verifiers. Each checks that the evidence binds the expected report data and turns
 * it into claims the policy matches on: {"tee": T, ...}.
 *   sample  only when the policy enables it; compares report_data, proves nothing else.
 *   tpm     userspace/tpm's bw_tpm_verify (AK signature, PCR digest, nonce binding), linked
 *           in by verify_tpm.o; the weak reference keeps the table valid without it.
 */
#include <errno.h>
#include <string.h>
#include "keyservice/keyservice.h"

extern const struct bw_ks_verifier bw_ks_verifier_tpm __attribute__((weak));

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); return (code); } while (0)

static int verify_sample(const struct bw_ks_policy *p, struct json_object *ev, const uint8_t *rd,
			 size_t len, struct json_object **claims, char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *got = NULL;
	const char *b64 = bw_json_str(ev, "report_data"), *svn = bw_json_str(ev, "svn");
	size_t n;

	if (!p->sample)
		FAIL(-EPERM, "sample evidence is disabled by the policy");
	if (!b64 || !svn || strlen(svn) > 64 || bw_base64_decode_alloc(b64, BW_B64_NOPAD, &got, &n) < 0)
		FAIL(-EBADMSG, "sample evidence needs svn and base64 report_data");
	/* The sample attester may pad or truncate; it must carry at least our digest's bytes. */
	if (n < len || !bw_memeq_ct(got, rd, len))
		FAIL(-EKEYREJECTED, "sample evidence report_data does not bind this session's nonce and key");
	*claims = json_object_new_object();
	if (!*claims)
		return -ENOMEM;
	json_object_object_add(*claims, "tee", json_object_new_string("sample"));
	json_object_object_add(*claims, "svn", json_object_new_string(svn));
	return 0;
}

static const struct bw_ks_verifier verifier_sample = { .tee = "sample", .verify = verify_sample };

const struct bw_ks_verifier *bw_ks_verifier_find(const char *tee)
{
	const struct bw_ks_verifier *all[] = { &verifier_sample, &bw_ks_verifier_tpm };

	for (size_t i = 0; tee && i < ARRAY_SIZE(all); i++)
		if (all[i] && !strcmp(all[i]->tee, tee))
			return all[i];
	return NULL;
}
