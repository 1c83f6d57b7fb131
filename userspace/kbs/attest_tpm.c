// SPDX-License-Identifier: GPL-2.0-only
/* The tpm attester: userspace/tpm's quote evidence behind the attester table (see attester.c). */
#include <stdio.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"
#include "tpm/tpm.h"

static int tpm_evidence(const struct bw_attester_opts *o, const uint8_t *rd, size_t len,
			struct json_object **out, char *err, size_t errlen)
{
	struct bw_tpm_opts t = { .tcti = o->tcti, .ak_handle = o->ak_handle };

	/* The quote's qualifying data is the report data truncated to 32 bytes (CoCo's choice). */
	return bw_tpm_evidence(&t, rd, len, out, err, errlen);
}

static int tpm_probe(const struct bw_attester_opts *o, char *err, size_t errlen)
{
	int r = bw_tpm_present(o->tcti);

	if (r < 0)
		snprintf(err, errlen, "attester tpm: no TPM device (%s): nothing to attest with; --tcti selects another",
			 o->tcti ? o->tcti : "neither /dev/tpmrm0 nor /dev/tpm0 exists");
	return r;
}

const struct bw_attester bw_attester_tpm = {
	.name = "tpm", .tee = "tpm", .evidence = tpm_evidence, .probe = tpm_probe,
};
