// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the base64/base64url/hex decoders of common/encoding against OpenSSL and themselves.
 * Whatever a decoder accepts is the one canonical text of its bytes (re-encoding gives the input
 * back) and OpenSSL's decoder reads the same bytes from it; whatever OpenSSL reads from a text it
 * would itself write, ours accepts; every byte string survives encode + decode.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/common.h"

#define MAX 4096

static void check_base64(const char *text, size_t n, unsigned int flags)
{
	static uint8_t out[MAX], ref[MAX + 3];
	static char back[2 * MAX], std[MAX + 4];
	size_t len, i;
	bool padded = n && text[n - 1] == '=';
	int r = bw_base64_decode(text, n, flags, out, sizeof(out), &len), k;

	/* The same text in the standard alphabet and padded, for OpenSSL. */
	for (i = 0; i < n; i++) {
		char c = text[i];
		if (flags & BW_B64_URL)
			c = c == '-' ? '+' : c == '_' ? '/' : (c == '+' || c == '/') ? '*' : c;
		std[i] = c;
	}
	while (i % 4)
		std[i++] = '=';
	k = EVP_DecodeBlock(ref, (const unsigned char *)std, (int)i);

	if (r == 0) {
		if (bw_base64_encode(out, len, (flags & BW_B64_URL) | (padded ? 0 : BW_B64_NOPAD), back) != n ||
		    memcmp(back, text, n))
			abort(); /* accepted a text that is not the canonical one */
		if (k < 0 || (size_t)k < len || memcmp(ref, out, len))
			abort(); /* OpenSSL reads other bytes */
		return;
	}
	if (r != -EINVAL && r != -EMSGSIZE)
		abort();
	/* Rejected: then it is not a text OpenSSL reads and would write itself (with the padding the
	 * flags ask for). */
	if (k >= 0 && !memchr(text, '\0', n) && (n % 4 == 0 || (!padded && (flags & BW_B64_NOPAD)))) {
		size_t eq = 0;
		char again[MAX + 8];

		while (eq < i && eq < 3 && std[i - 1 - eq] == '=')
			eq++;
		if (eq <= 2 && (size_t)k >= eq &&
		    (size_t)EVP_EncodeBlock((unsigned char *)again, ref, k - (int)eq) == i && !memcmp(again, std, i))
			abort(); /* a canonical text we refused */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[MAX];
	static char text[2 * MAX + 1];
	size_t len;

	if (size > MAX)
		return 0;
	for (unsigned int f = 0; f < 4; f++)
		check_base64((const char *)data, size, f);

	/* bytes -> text -> bytes */
	for (unsigned int f = 0; f < 4; f++) {
		size_t n = bw_base64_encode(data, size, f, text);

		if (n != bw_base64_len(size, f) || bw_base64_decode(text, n, f, out, sizeof(out), &len) ||
		    len != size || memcmp(out, data, size))
			abort();
	}
	bw_hex_encode(data, size, text);
	if (bw_hex_decode(text, out, size) || memcmp(out, data, size))
		abort();

	/* hex text: accepted only when it is 2n digits, and then it is our text up to case */
	if (size % 2 == 0 && !memchr(data, '\0', size)) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (bw_hex_decode(text, out, size / 2) == 0) {
			char back[MAX + 1];

			bw_hex_encode(out, size / 2, back);
			for (size_t i = 0; i < size; i++)
				if (back[i] != (text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]))
					abort();
		}
	}
	return 0;
}
