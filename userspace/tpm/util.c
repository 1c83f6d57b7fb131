// SPDX-License-Identifier: GPL-2.0-only
/* tpm component helpers: PCR selection, nonce, PCR digest, base64 and hex. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
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

char *bw_tpm_b64(const uint8_t *in, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	char *out;

	if (len > 1 << 20)
		return NULL;
	out = malloc(n);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int bw_tpm_unb64(const char *in, uint8_t *out, size_t max)
{
	size_t len = strlen(in), pad = 0, i, n;
	unsigned char *tmp;
	int r;

	/* Check the size before decoding anything: the input comes from the network. */
	if (len == 0 || len % 4)
		return -EINVAL;
	if (len / 4 * 3 > max + 2)
		return -E2BIG;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!b64_char(in[i]))
			return -EINVAL;
	n = len / 4 * 3 - pad;
	if (n > max)
		return -E2BIG;
	tmp = malloc(len / 4 * 3);
	if (!tmp)
		return -ENOMEM;
	/* EVP_DecodeBlock keeps the padding's zero bytes in its count; we drop them. */
	r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (r < 0 || (size_t)r != len / 4 * 3) {
		free(tmp);
		return -EINVAL;
	}
	memcpy(out, tmp, n);
	free(tmp);
	return (int)n;
}

void bw_tpm_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int bw_tpm_unhex(const char *in, uint8_t *out, size_t n)
{
	size_t i;

	if (strlen(in) != 2 * n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
