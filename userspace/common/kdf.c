// SPDX-License-Identifier: GPL-2.0-only
/* HKDF-SHA256 (RFC 5869), the one key derivation every component uses (OpenSSL's EVP_KDF). */
#include <errno.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include "common/common.h"

static EVP_KDF *hkdf;
static pthread_once_t hkdf_once = PTHREAD_ONCE_INIT;
/* Fetched once: an OpenSSL 3 fetch costs more than a derivation. */
static void hkdf_fetch(void) { hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL); }

int bw_hkdf_sha256(const void *key, size_t key_len, const void *salt, size_t salt_len, const void *info,
		   size_t info_len, uint8_t *out, size_t out_len)
{
	OSSL_PARAM p[5], *q = p;
	EVP_KDF_CTX *ctx;
	int r;

	pthread_once(&hkdf_once, hkdf_fetch);
	ctx = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
	if (!ctx)
		return -ENOMEM;
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
	if (salt_len)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*q = OSSL_PARAM_construct_end();
	r = EVP_KDF_derive(ctx, out, out_len, p) > 0 ? 0 : -EIO;
	EVP_KDF_CTX_free(ctx);
	return r;
}
