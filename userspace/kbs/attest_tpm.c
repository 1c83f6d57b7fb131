// SPDX-License-Identifier: GPL-2.0-only
/* The tpm attester: userspace/tpm's quote evidence behind the attester table (see attester.c). */
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

const struct bw_attester bw_attester_tpm = {
	.name = "tpm", .tee = "tpm", .evidence = tpm_evidence,
};
