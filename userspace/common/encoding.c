// SPDX-License-Identifier: GPL-2.0-only
/*
 * base64, base64url and hex without data-dependent branches or table lookups: each character is
 * computed from its value with masks built by arithmetic, so the timing of an encode or decode
 * says nothing about the key it handles. The masks rely on >> of a negative int being arithmetic
 * (it is on every compiler bulwark builds with).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "common/common.h"

/* All ones when lo <= c <= hi, else 0 (c, lo, hi in 0..255). */
static inline int in_range(int c, int lo, int hi)
{
	return ((lo - 1 - c) & (c - hi - 1)) >> 8;
}

/* The base64 character for a 6-bit value. */
static inline char b64_char(unsigned int v, bool url)
{
	int x = (int)(v & 63), c = 'A' + x;
	int c62 = url ? '-' : '+', c63 = url ? '_' : '/';

	c += ((25 - x) >> 8) & ('a' - 'A' - 26);   /* 26..51: 'a'.. */
	c += ((51 - x) >> 8) & ('0' - 'a' - 26);   /* 52..61: '0'.. */
	c += ((61 - x) >> 8) & (c62 - ('0' + 10)); /* 62 */
	c += ((62 - x) >> 8) & (c63 - c62 - 1);    /* 63 */
	return (char)c;
}

/* The 6-bit value of a base64 character, or -1. */
static inline int b64_value(unsigned char ch, bool url)
{
	int c = ch, v = -1;
	int c62 = url ? '-' : '+', c63 = url ? '_' : '/';

	v += in_range(c, 'A', 'Z') & (c - 'A' + 1);
	v += in_range(c, 'a', 'z') & (c - 'a' + 26 + 1);
	v += in_range(c, '0', '9') & (c - '0' + 52 + 1);
	v += in_range(c, c62, c62) & (62 + 1);
	v += in_range(c, c63, c63) & (63 + 1);
	return v;
}

size_t bw_base64_len(size_t len, unsigned int flags)
{
	if (flags & BW_B64_NOPAD)
		return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
	return (len + 2) / 3 * 4;
}

size_t bw_base64_encode(const uint8_t *in, size_t len, unsigned int flags, char *out)
{
	bool url = flags & BW_B64_URL;
	size_t i, o = 0;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64_char(v >> 18, url);
		out[o++] = b64_char(v >> 12, url);
		out[o++] = b64_char(v >> 6, url);
		out[o++] = b64_char(v, url);
	}
	if (len - i) {
		size_t r = len - i;
		uint32_t v = (uint32_t)in[i] << 16 | (r == 2 ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = b64_char(v >> 18, url);
		out[o++] = b64_char(v >> 12, url);
		if (r == 2)
			out[o++] = b64_char(v >> 6, url);
		if (!(flags & BW_B64_NOPAD)) {
			if (r == 1)
				out[o++] = '=';
			out[o++] = '=';
		}
	}
	out[o] = '\0';
	return o;
}

int bw_base64_encode_alloc(const uint8_t *in, size_t len, unsigned int flags, char **out)
{
	char *s;

	if (len > (SIZE_MAX - 8) / 4 * 3)
		return -EFBIG;
	s = malloc(bw_base64_len(len, flags) + 1);
	if (!s)
		return -ENOMEM;
	bw_base64_encode(in, len, flags, s);
	*out = s;
	return 0;
}

int bw_base64_decode(const char *in, size_t inlen, unsigned int flags, uint8_t *out, size_t cap,
		     size_t *outlen)
{
	bool url = flags & BW_B64_URL;
	size_t pad = 0, n = inlen, rem, need, i, o = 0;
	uint32_t bad = 0;

	/* The layout (length, padding) is public; only the characters' values are secret. */
	while (pad < n && pad < 3 && in[n - 1 - pad] == '=')
		pad++;
	if (pad > 2 || (pad && n % 4))
		return -EINVAL;
	n -= pad;
	rem = n % 4;
	if (rem == 1 || (rem && !pad && !(flags & BW_B64_NOPAD)))
		return -EINVAL;
	need = n / 4 * 3 + (rem ? rem - 1 : 0);
	if (need > cap)
		return -EMSGSIZE;
	for (i = 0; i + 4 <= n; i += 4) {
		int a = b64_value((unsigned char)in[i], url), b = b64_value((unsigned char)in[i + 1], url);
		int c = b64_value((unsigned char)in[i + 2], url), d = b64_value((unsigned char)in[i + 3], url);
		uint32_t v = (uint32_t)(a & 63) << 18 | (uint32_t)(b & 63) << 12 | (uint32_t)(c & 63) << 6 |
			     (uint32_t)(d & 63);

		bad |= (uint32_t)(a | b | c | d) >> 31;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	if (rem) {
		int a = b64_value((unsigned char)in[i], url), b = b64_value((unsigned char)in[i + 1], url);
		int c = rem == 3 ? b64_value((unsigned char)in[i + 2], url) : 0;
		uint32_t v = (uint32_t)(a & 63) << 18 | (uint32_t)(b & 63) << 12 | (uint32_t)(c & 63) << 6;

		bad |= (uint32_t)(a | b | c) >> 31;
		/* The bits past the last whole byte must be zero: one text per byte string. */
		bad |= (v & (rem == 2 ? 0xffffu : 0xffu)) != 0;
		out[o++] = (uint8_t)(v >> 16);
		if (rem == 3)
			out[o++] = (uint8_t)(v >> 8);
	}
	if (bad) {
		OPENSSL_cleanse(out, need);
		return -EINVAL;
	}
	*outlen = o;
	return 0;
}

int bw_base64_decode_alloc(const char *in, unsigned int flags, uint8_t **out, size_t *len)
{
	size_t n = strlen(in), cap = n / 4 * 3 + 3;
	_cleanup_free_ uint8_t *buf = malloc(cap + 1);
	int r;

	if (!buf)
		return -ENOMEM;
	r = bw_base64_decode(in, n, flags, buf, cap, len);
	if (r < 0)
		return r;
	buf[*len] = 0;
	*out = TAKE_PTR(buf);
	return 0;
}

void bw_hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = in[i] >> 4, lo = in[i] & 15;

		/* 0..9 -> '0'.., 10..15 -> 'a'.. ('a' - '0' - 10 = 39) */
		out[2 * i] = (char)('0' + hi + (((9 - hi) >> 8) & 39));
		out[2 * i + 1] = (char)('0' + lo + (((9 - lo) >> 8) & 39));
	}
	out[2 * n] = '\0';
}

/* The value of a hex digit, or -1. */
static inline int hex_value(unsigned char ch)
{
	int c = ch, v = -1;

	v += in_range(c, '0', '9') & (c - '0' + 1);
	v += in_range(c, 'a', 'f') & (c - 'a' + 10 + 1);
	v += in_range(c, 'A', 'F') & (c - 'A' + 10 + 1);
	return v;
}

int bw_hex_decode(const char *in, uint8_t *out, size_t n)
{
	uint32_t bad = 0;

	if (strnlen(in, 2 * n + 1) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value((unsigned char)in[2 * i]), lo = hex_value((unsigned char)in[2 * i + 1]);

		bad |= (uint32_t)(hi | lo) >> 31;
		out[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
	}
	if (bad) {
		OPENSSL_cleanse(out, n);
		return -EINVAL;
	}
	return 0;
}

void bw_key_to_base64(const uint8_t key[static BW_KEY_LEN], char out[static BW_KEY_B64_LEN + 1])
{
	bw_base64_encode(key, BW_KEY_LEN, 0, out);
}

int bw_key_from_base64(const char *s, uint8_t key[static BW_KEY_LEN])
{
	size_t len = 0;

	/* 44 characters with one '=': exactly 32 bytes, nothing else. */
	if (strnlen(s, BW_KEY_B64_LEN + 1) != BW_KEY_B64_LEN ||
	    bw_base64_decode(s, BW_KEY_B64_LEN, 0, key, BW_KEY_LEN, &len) < 0)
		return -EINVAL;
	if (len != BW_KEY_LEN) {
		OPENSSL_cleanse(key, BW_KEY_LEN);
		return -EINVAL;
	}
	return 0;
}
