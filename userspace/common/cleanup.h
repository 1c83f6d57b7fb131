/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark cleanup helpers, systemd style: one free-on-scope-exit helper per type, declared here
 * once. Part of the common component; included by common/common.h.
 *
 *   _cleanup_free_ char *s = NULL;          free()
 *   _cleanup_close_ int fd = -1;            close() when >= 0
 *   _cleanup_fclose_ FILE *f = NULL;        fclose()
 *   _cleanup_secret_ struct bw_secret k;    bw_secret_free(): wiped, unlocked, unmapped
 *   _cleanup_pkey_ EVP_PKEY *key = NULL;    EVP_PKEY_free()
 *   _cleanup_pkey_ctx_ EVP_PKEY_CTX *c = NULL;       EVP_PKEY_CTX_free()
 *   _cleanup_cipher_ctx_ EVP_CIPHER_CTX *c = NULL;   EVP_CIPHER_CTX_free()
 *   _cleanup_bn_ BIGNUM *n = NULL;          BN_free()
 *   _cleanup_openssl_ uint8_t *der = NULL;  OPENSSL_free() (what OpenSSL allocated for us)
 *   _cleanup_json_ struct json_object *o;   json_object_put()
 *   _cleanup_crypt_ struct crypt_device *cd = NULL;   crypt_free()
 *
 * Ownership leaves such a variable only through TAKE_PTR / TAKE_FD / TAKE_SECRET, which return
 * the value and leave the variable empty, so the cleanup does nothing.
 */
#ifndef BULWARK_COMMON_CLEANUP_H
#define BULWARK_COMMON_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <json-c/json_object.h>
#include <libcryptsetup.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

/* bw_<fn>p: the cleanup function for pointers of type, calling fn on them when not NULL. */
#define BW_DEFINE_POINTER_CLEANUP(type, fn)                   \
	static inline void bw_##fn##p(type **p)                 \
	{                                                     \
		if (*p)                                       \
			fn(*p);                               \
	}

static inline void bw_freep(void *p) { free(*(void **)p); }
static inline void bw_closep(int *fd) { if (*fd >= 0) close(*fd); }
BW_DEFINE_POINTER_CLEANUP(FILE, fclose)
BW_DEFINE_POINTER_CLEANUP(EVP_PKEY, EVP_PKEY_free)
BW_DEFINE_POINTER_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
BW_DEFINE_POINTER_CLEANUP(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free)
BW_DEFINE_POINTER_CLEANUP(BIGNUM, BN_free)
static inline void bw_openssl_freep(void *p) { OPENSSL_free(*(void **)p); }
BW_DEFINE_POINTER_CLEANUP(struct json_object, json_object_put)
BW_DEFINE_POINTER_CLEANUP(struct crypt_device, crypt_free)
struct bw_secret;
void bw_secret_free(struct bw_secret *s);
static inline void bw_secret_freep(struct bw_secret *s) { bw_secret_free(s); }

#define _cleanup_free_ __attribute__((cleanup(bw_freep)))
#define _cleanup_close_ __attribute__((cleanup(bw_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(bw_fclosep)))
#define _cleanup_secret_ __attribute__((cleanup(bw_secret_freep)))
#define _cleanup_pkey_ __attribute__((cleanup(bw_EVP_PKEY_freep)))
#define _cleanup_pkey_ctx_ __attribute__((cleanup(bw_EVP_PKEY_CTX_freep)))
#define _cleanup_cipher_ctx_ __attribute__((cleanup(bw_EVP_CIPHER_CTX_freep)))
#define _cleanup_bn_ __attribute__((cleanup(bw_BN_freep)))
#define _cleanup_openssl_ __attribute__((cleanup(bw_openssl_freep)))
#define _cleanup_json_ __attribute__((cleanup(bw_json_object_putp)))
#define _cleanup_crypt_ __attribute__((cleanup(bw_crypt_freep)))

/* Hand ownership out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })
#define TAKE_SECRET(s) ({ struct bw_secret _t = (s); (s) = (struct bw_secret){ 0 }; _t; })

#endif
