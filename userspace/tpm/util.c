// SPDX-License-Identifier: GPL-2.0-only
/* tpm component helpers: PCR selection, nonce, PCR digest. */
#include <errno.h>
#include <string.h>
#include <openssl/evp.h>
#include "tpm/internal.h"
#include "tpm/tpm.h"

void bw_tpm_pcr_selection(TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	memset(sel->pcrSelections[0].pcrSelect, 0xff, 3);
}

void bw_tpm_nonce(const uint8_t *report_data, size_t len, uint8_t out[32])
{
	memset(out, 0, 32);
	if (report_data && len)
		memcpy(out, report_data, len < 32 ? len : 32);
}

int bw_tpm_pcr_digest(const uint8_t pcrs[][32], uint8_t out[32])
{
	unsigned int n = 0;

	if (!EVP_Digest(pcrs, (size_t)BW_TPM_PCRS * 32, out, &n, EVP_sha256(), NULL) || n != 32)
		return -EIO;
	return 0;
}
