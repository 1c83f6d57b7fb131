// SPDX-License-Identifier: GPL-2.0-only
/*
 * Resources are derived, never stored: HKDF-SHA256(master secret, salt, info, 32 bytes).
 * bulwark/volume/<id> uses info "key-<id>", Constellation's derivation for volume keys, so the
 * same master secret and salt give the same keys; every other path uses the path as info.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include "keyservice/keyservice.h"

#define VOLUME_PREFIX "bulwark/volume/"
#define MAX_SECRET_FILE 4096

int ks_info(const char *path, char *buf, size_t size)
{
	int n;

	if (!strncmp(path, VOLUME_PREFIX, strlen(VOLUME_PREFIX)))
		n = snprintf(buf, size, "key-%s", path + strlen(VOLUME_PREFIX));
	else
		n = snprintf(buf, size, "%s", path);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static EVP_KDF *hkdf;
static pthread_once_t hkdf_once = PTHREAD_ONCE_INIT;
static void hkdf_fetch(void) { hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL); }

int ks_derive_into(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
		   uint8_t *out)
{
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[5];
	char info[300];
	int r = ks_info(path, info, sizeof(info));

	if (r < 0)
		return r;
	/* Fetch once: an OpenSSL 3 fetch costs more than the derivation. */
	pthread_once(&hkdf_once, hkdf_fetch);
	ctx = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
	if (!ctx)
		return -ENOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, master->data, master->len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt->data, salt->len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, strlen(info));
	params[4] = OSSL_PARAM_construct_end();
	r = EVP_KDF_derive(ctx, out, KS_RESOURCE_LEN, params) > 0 ? 0 : -EIO;
	EVP_KDF_CTX_free(ctx);
	return r;
}

int ks_derive(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
	      struct bw_secret *out)
{
	_cleanup_secret_ struct bw_secret key = { 0 };
	int r = bw_secret_new(&key, KS_RESOURCE_LEN);

	if (r == 0)
		r = ks_derive_into(master, salt, path, key.data);
	if (r < 0)
		return r;
	*out = key;
	key = (struct bw_secret){ 0 };
	return 0;
}

int ks_read_secret(const char *path, size_t min, struct bw_secret *out)
{
	return bw_read_key_file_range(path, min, MAX_SECRET_FILE, out);
}
