/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark encodings: base64 (RFC 4648 section 4), base64url (section 5) and hex, in one place.
 * Part of the common component; included by common/common.h.
 *
 * Every decoder is strict: the alphabet and nothing else (no whitespace, no '=' inside the text),
 * at most two '=' and only where they complete the last quantum, no leftover bits set in the last
 * character (RFC 4648 section 3.5: one text per byte string). Encoders and decoders run in time
 * that depends on the lengths only, never on the bytes: no branch and no table lookup indexed by
 * a secret byte, so they are fit for key material.
 */
#ifndef BULWARK_COMMON_ENCODING_H
#define BULWARK_COMMON_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Flags for the base64 functions. */
#define BW_B64_URL   0x1u /* base64url alphabet ('-', '_') instead of ('+', '/') */
#define BW_B64_NOPAD 0x2u /* encode: no '=' padding; decode: padding optional (checked when present).
			   * Without it the decoder requires padding (the text is a multiple of 4). */
#define BW_B64_JOSE  (BW_B64_URL | BW_B64_NOPAD) /* base64url unpadded, as JOSE (RFC 7515) writes it */

/* Characters (without the NUL) that len bytes encode to. */
size_t bw_base64_len(size_t len, unsigned int flags);
/* Encode len bytes into out, which holds bw_base64_len(len, flags) + 1 bytes; NUL-terminated.
 * Returns the length written without the NUL. */
size_t bw_base64_encode(const uint8_t *in, size_t len, unsigned int flags, char *out);
/* The same into a malloc'ed string; -ENOMEM, -EFBIG. */
int bw_base64_encode_alloc(const uint8_t *in, size_t len, unsigned int flags, char **out);

/*
 * Decode the inlen characters of in into out (cap bytes); *outlen is the byte count. -EINVAL for
 * a text that is not base64 of the requested kind (out is wiped then), -EMSGSIZE when the bytes
 * would not fit in cap (checked before anything is decoded).
 */
int bw_base64_decode(const char *in, size_t inlen, unsigned int flags, uint8_t *out, size_t cap,
		     size_t *outlen);
/* Decode the NUL-terminated in into a malloc'ed buffer with a NUL after the *len bytes. */
int bw_base64_decode_alloc(const char *in, unsigned int flags, uint8_t **out, size_t *len);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void bw_hex_encode(const uint8_t *in, size_t n, char *out);
/* Exactly 2n hex digits (either case) and the NUL into n bytes; -EINVAL otherwise (out wiped). */
int bw_hex_decode(const char *in, uint8_t *out, size_t n);

/* 32-byte keys (WireGuard private, public and preshared keys; volume keys) as wg(8) writes them:
 * 43 base64 characters and one '='. */
#define BW_KEY_LEN 32
#define BW_KEY_B64_LEN 44 /* characters, without the NUL */
void bw_key_to_base64(const uint8_t key[static BW_KEY_LEN], char out[static BW_KEY_B64_LEN + 1]);
/* Exactly the 44-character padded form; -EINVAL otherwise (key wiped). */
int bw_key_from_base64(const char *s, uint8_t key[static BW_KEY_LEN]);

#endif
