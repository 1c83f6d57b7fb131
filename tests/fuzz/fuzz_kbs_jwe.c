// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the client's JWE parser and decryption (flattened JSON, protected/unprotected
 * headers, epk, key unwrap, GCM) with a fixed EC P-256 tee key. An input starting with '!' is
 * instead a plaintext: encrypt to the key, decrypt, and the round trip must be exact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/pem.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

/* Test-only key; the seeds in tests/fuzz/corpus/fuzz_kbs_jwe are encrypted to it. */
static const char key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOqOa98Bt4JtEhRJI\n"
	"d9is2DIAESTdP3B4YIfROE9p1Q6hRANCAATq90SFvHDZgcuaEnZ/ZPPqwp9LRmQX\n"
	"WQftKZNookb2XehY2/txUpQmQl8ZSxav54EluSUomOChyHGxMR1kTPHB\n"
	"-----END PRIVATE KEY-----\n";

static EVP_PKEY *key(void)
{
	static EVP_PKEY *k;

	if (!k) {
		BIO *b = BIO_new_mem_buf(key_pem, -1);
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_secret out = { 0 };
	char err[BW_ERR_LEN];

	if (size > 0 && data[0] == '!') {
		struct json_object *jwk = NULL;
		char *jwe = NULL;
		if (bw_jwk_public(key(), &jwk) < 0 || bw_jwe_encrypt(jwk, data + 1, size - 1, &jwe) < 0)
			abort();
		if (bw_jwe_decrypt(key(), jwe, strlen(jwe), &out, err, sizeof(err)) < 0 || out.len != size - 1 ||
		    memcmp(out.data, data + 1, size - 1))
			abort();
		free(jwe);
		json_object_put(jwk);
	} else {
		uint8_t buf[64];
		size_t n = 0;
		int a = bw_jwe_decrypt(key(), (const char *)data, size, &out, err, sizeof(err));
		int b = bw_jwe_decrypt_into(key(), (const char *)data, size, buf, sizeof(buf), &n, err, sizeof(err));
		/* Both paths agree whenever the plaintext fits the buffer. */
		if ((a == 0 && !out.data) || (a == 0 && out.len <= sizeof(buf) && (b != 0 || n != out.len ||
		    memcmp(buf, out.data, n))) || (b == 0 && a != 0))
			abort();
	}
	bw_secret_free(&out);
	return 0;
}
