// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: bw_tpm_verify on arbitrary JSON. The seed corpus (tests/fuzz/corpus/
 * fuzz_tpm_evidence) holds real swtpm quotes (RSA and ECC AKs) made for the report data below,
 * so mutations reach the TPM structure unmarshalling, the signature and the PCR digest checks.
 * Regenerate: tpmtool evidence --tcti T --ak-handle H --report-data 000102..1f (32 bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tpm/tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t rd[32] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
					16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *ev;
	struct bw_tpm_claims c;
	char err[256];
	int r;

	if (!tok)
		return 0;
	ev = json_tokener_parse_ex(tok, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
	json_tokener_free(tok);
	if (!ev)
		return 0;
	r = bw_tpm_verify(ev, rd, sizeof(rd), &c, err, sizeof(err));
	/* Every failure must say why; a success must carry a hex AK id. */
	if ((r < 0 && !err[0]) || (r == 0 && strlen(c.ak_id) != 64))
		abort();
	json_object_put(ev);
	return 0;
}
