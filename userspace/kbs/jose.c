// SPDX-License-Identifier: GPL-2.0-only
/*
 * JWK and flattened JWE (RFC 7516/7518) as KBS uses them: ECDH-ES+A256KW over P-256 or
 * RSA-OAEP-256 for the content key, A256GCM for the content. All crypto is OpenSSL 3: the
 * Concat KDF of RFC 7518 §4.6.2 is OpenSSL's single-step KDF (SSKDF, SP 800-56C).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

#define ALG_ECDH "ECDH-ES+A256KW"
#define ALG_RSA "RSA-OAEP-256"
#define CEK_LEN 32
#define IV_LEN 12
#define TAG_LEN 16

/* OpenSSL 3 algorithm fetches cost more than the operations here: fetch once per process. */
static struct {
	EVP_KDF *sskdf;
	EVP_CIPHER *wrap, *gcm;
} algs;
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

static void algs_fetch(void)
{
	algs.sskdf = EVP_KDF_fetch(NULL, "SSKDF", NULL);
	algs.wrap = EVP_CIPHER_fetch(NULL, "AES-256-WRAP", NULL);
	algs.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static void algs_init(void) { pthread_once(&algs_once, algs_fetch); }

static void keygen_ctx_free(void *c) { EVP_PKEY_CTX_free(c); }

static pthread_key_t keygen_key;
static pthread_once_t keygen_once = PTHREAD_ONCE_INIT;
static void keygen_key_make(void) { pthread_key_create(&keygen_key, keygen_ctx_free); }

/* One P-256 key generation context per thread (a context is not shareable between threads). */
static EVP_PKEY_CTX *ec_keygen_ctx(void)
{
	EVP_PKEY_CTX *c;

	pthread_once(&keygen_once, keygen_key_make);
	c = pthread_getspecific(keygen_key);
	if (c)
		return c;
	c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!c || EVP_PKEY_keygen_init(c) <= 0 || EVP_PKEY_CTX_set_group_name(c, "P-256") <= 0) {
		EVP_PKEY_CTX_free(c);
		return NULL;
	}
	pthread_setspecific(keygen_key, c);
	return c;
}

EVP_PKEY *bw_jwk_new(enum bw_jwk_type type)
{
	EVP_PKEY_CTX *c;
	EVP_PKEY *k = NULL;

	if (type == BW_JWK_RSA3072)
		return EVP_RSA_gen(3072);
	c = ec_keygen_ctx();
	return c && EVP_PKEY_generate(c, &k) > 0 ? k : NULL;
}

static bool is_ec(EVP_PKEY *k) { return EVP_PKEY_is_a(k, "EC"); }

static void add_b64(struct json_object *o, const char *key, const uint8_t *buf, size_t len)
{
	char *s = NULL;

	if (bw_base64_encode_alloc(buf, len, BW_B64_JOSE, &s) == 0)
		json_object_object_add(o, key, json_object_new_string(s));
	free(s);
}

static int add_bn(struct json_object *o, const char *name, EVP_PKEY *k, const char *param, int pad)
{
	_cleanup_bn_ BIGNUM *bn = NULL;
	uint8_t buf[1024];
	char *s;
	int n;

	if (!EVP_PKEY_get_bn_param(k, param, &bn))
		return -EINVAL;
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	if (n <= 0 || BN_num_bytes(bn) > (int)sizeof(buf))
		return -EINVAL;
	if (bw_base64_encode_alloc(buf, (size_t)n, BW_B64_JOSE, &s) < 0)
		return -ENOMEM;
	json_object_object_add(o, name, json_object_new_string(s));
	free(s);
	return 0;
}

/* x and y from the uncompressed point: one export instead of two big-number conversions. */
static int add_point(struct json_object *o, EVP_PKEY *k)
{
	uint8_t pub[65];
	size_t len = 0;

	if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len) || len != 65 ||
	    pub[0] != 0x04)
		return -EINVAL;
	add_b64(o, "x", pub + 1, 32);
	add_b64(o, "y", pub + 33, 32);
	return 0;
}

int bw_jwk_public(EVP_PKEY *key, struct json_object **out)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	if (is_ec(key)) {
		json_object_object_add(o, "kty", json_object_new_string("EC"));
		json_object_object_add(o, "crv", json_object_new_string("P-256"));
		json_object_object_add(o, "alg", json_object_new_string(ALG_ECDH));
		r = add_point(o, key);
	} else {
		json_object_object_add(o, "kty", json_object_new_string("RSA"));
		json_object_object_add(o, "alg", json_object_new_string(ALG_RSA));
		r = add_bn(o, "n", key, OSSL_PKEY_PARAM_RSA_N, 0);
		if (r == 0)
			r = add_bn(o, "e", key, OSSL_PKEY_PARAM_RSA_E, 0);
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(o);
	return 0;
}

static int get_b64(struct json_object *o, const char *key, uint8_t **buf, size_t *len)
{
	const char *s = bw_json_str(o, key);

	return s ? bw_base64_decode_alloc(s, BW_B64_JOSE, buf, len) : -EINVAL;
}

static int import_ec(struct json_object *jwk, EVP_PKEY **out)
{
	_cleanup_free_ uint8_t *x = NULL, *y = NULL;
	_cleanup_pkey_ctx_ EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	uint8_t pub[65];
	size_t xl, yl;
	OSSL_PARAM params[3];
	const char *crv = bw_json_str(jwk, "crv");

	if (!crv || strcmp(crv, "P-256"))
		return -EPROTONOSUPPORT;
	if (get_b64(jwk, "x", &x, &xl) < 0 || get_b64(jwk, "y", &y, &yl) < 0 || xl != 32 || yl != 32)
		return -EINVAL;
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		return -EINVAL;
	/*
	 * An off-curve point would leak private key bits through ECDH (invalid-curve attack). P-256
	 * has cofactor 1, so on-curve and not infinity (the quick check) is the full check.
	 */
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
	if (!chk || EVP_PKEY_public_check_quick(chk) <= 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

/*
 * A hostile tee-pubkey must not turn RSA-OAEP into something weaker: e = 1 makes encryption the
 * identity (the served key readable from the JWE), an even e or n gives undecryptable or
 * failing encryptions. OpenSSL's SP 800-56B public key check (odd n without small factors,
 * odd 2^16 < e < 2^256) covers the class; e is further pinned to 65537, the only exponent
 * key generators use, so a value the check lets through for odd reasons is still refused.
 */
static bool rsa_public_ok(EVP_PKEY *k, const BIGNUM *e)
{
	_cleanup_pkey_ctx_ EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);

	return BN_is_word(e, RSA_F4) && chk && EVP_PKEY_public_check(chk) == 1;
}

static int import_rsa(struct json_object *jwk, EVP_PKEY **out)
{
	_cleanup_free_ uint8_t *n = NULL, *e = NULL;
	_cleanup_pkey_ctx_ EVP_PKEY_CTX *ctx = NULL;
	_cleanup_bn_ BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	size_t nl, el;
	int r = -EINVAL;

	if (get_b64(jwk, "n", &n, &nl) < 0 || get_b64(jwk, "e", &e, &el) < 0)
		return -EINVAL;
	/* 2048..8192 bits, minimal encodings (RFC 7518 §6.3.1: no leading zero octets). */
	if (nl < 256 || nl > 1024 || el == 0 || el > 8 || n[0] == 0 || e[0] == 0)
		return -EINVAL;
	bn = BN_bin2bn(n, (int)nl, NULL);
	be = BN_bin2bn(e, (int)el, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) && (params = OSSL_PARAM_BLD_to_param(bld))) {
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		if (ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
		    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) > 0 && EVP_PKEY_get_bits(*out) >= 2048 &&
		    rsa_public_ok(*out, be))
			r = 0;
		else if (*out) {
			EVP_PKEY_free(*out);
			*out = NULL;
		}
	}
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int bw_jwk_import(struct json_object *jwk, EVP_PKEY **out, const char **alg)
{
	const char *kty = bw_json_str(jwk, "kty"), *a = bw_json_str(jwk, "alg");

	*out = NULL;
	if (!kty)
		return -EINVAL;
	if (!strcmp(kty, "EC")) {
		if (a && strcmp(a, ALG_ECDH))
			return -EPROTONOSUPPORT;
		*alg = ALG_ECDH;
		return import_ec(jwk, out);
	}
	if (!strcmp(kty, "RSA")) {
		if (!a || strcmp(a, ALG_RSA)) /* RSA1_5 is deliberately not offered */
			return -EPROTONOSUPPORT;
		*alg = ALG_RSA;
		return import_rsa(jwk, out);
	}
	return -EPROTONOSUPPORT;
}

/* ---- key agreement / wrapping ---- */

/* peer was validated when imported (bw_jwk_import: on the curve, not infinity); OpenSSL's own
 * peer validation would repeat it as a full check with a scalar multiplication. */
static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t z[32])
{
	_cleanup_pkey_ctx_ EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t len = 32;

	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) <= 0 ||
	    EVP_PKEY_derive(ctx, z, &len) <= 0 || len != 32)
		return -EINVAL;
	return 0;
}

/* RFC 7518 §4.6.2 Concat KDF: AlgorithmID, empty PartyUInfo/PartyVInfo, SuppPubInfo=256. */
static int concat_kdf(const uint8_t z[32], uint8_t kek[32])
{
	static const char alg[] = ALG_ECDH;
	uint8_t info[4 + sizeof(alg) - 1 + 4 + 4 + 4] = { 0 }, *p = info;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[4];
	int r;

	algs_init();
	ctx = algs.sskdf ? EVP_KDF_CTX_new(algs.sskdf) : NULL;
	p[3] = sizeof(alg) - 1;
	memcpy(p + 4, alg, sizeof(alg) - 1);
	p += 4 + sizeof(alg) - 1 + 8; /* apu and apv: zero lengths */
	p[2] = 0x01;                  /* 256 bits, big endian */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, 32);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info));
	params[3] = OSSL_PARAM_construct_end();
	r = ctx && EVP_KDF_derive(ctx, kek, 32, params) > 0 ? 0 : -EINVAL;
	EVP_KDF_CTX_free(ctx);
	return r;
}

static int aes_kw(bool wrap, const uint8_t kek[32], const uint8_t *in, size_t inlen, uint8_t *out,
		  size_t *outlen)
{
	_cleanup_cipher_ctx_ EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, r = -EINVAL;

	algs_init();
	if (ctx && algs.wrap && EVP_CipherInit_ex2(ctx, algs.wrap, kek, NULL, wrap, NULL) > 0 &&
	    EVP_CipherUpdate(ctx, out, &n, in, (int)inlen) > 0 && EVP_CipherFinal_ex(ctx, out + n, &f) > 0) {
		*outlen = (size_t)(n + f);
		r = 0;
	}
	return r;
}

static int rsa_oaep(bool enc, EVP_PKEY *key, const uint8_t *in, size_t inlen, uint8_t *out,
		    size_t *outlen)
{
	_cleanup_pkey_ctx_ EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

	if (!ctx || (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0)
		return -EINVAL;
	if ((enc ? EVP_PKEY_encrypt(ctx, out, outlen, in, inlen)
		 : EVP_PKEY_decrypt(ctx, out, outlen, in, inlen)) <= 0)
		return -EBADMSG;
	return 0;
}

static int gcm(bool enc, const uint8_t cek[32], const uint8_t iv[IV_LEN], const char *aad,
	       const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[TAG_LEN])
{
	_cleanup_cipher_ctx_ EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0;

	algs_init();
	if (!ctx || len > INT32_MAX || EVP_CipherInit_ex2(ctx, algs.gcm, cek, iv, enc, NULL) <= 0 ||
	    EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) <= 0 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) <= 0)
		return -EINVAL;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) <= 0)
		return -EINVAL;
	if (EVP_CipherFinal_ex(ctx, out + n, &f) <= 0)
		return -EBADMSG; /* tag mismatch */
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) <= 0)
		return -EINVAL;
	return 0;
}

/* ---- JWE encrypt (service side) ---- */

/* Wrap cek for the recipient; fills the protected header and encrypted_key. */
static int wrap_cek(EVP_PKEY *peer, const char *alg, const uint8_t cek[32], struct json_object *hdr,
		    uint8_t *ek, size_t *eklen)
{
	_cleanup_pkey_ EVP_PKEY *eph = NULL;
	struct json_object *epk = NULL;
	uint8_t z[32], kek[32];
	int r;

	json_object_object_add(hdr, "alg", json_object_new_string(alg));
	json_object_object_add(hdr, "enc", json_object_new_string("A256GCM"));
	if (!strcmp(alg, ALG_RSA))
		return rsa_oaep(true, peer, cek, 32, ek, eklen);
	eph = bw_jwk_new(BW_JWK_EC_P256);
	if (!eph || bw_jwk_public(eph, &epk) < 0)
		return -ENOMEM;
	json_object_object_del(epk, "alg");
	json_object_object_add(hdr, "epk", epk);
	r = ecdh(eph, peer, z);
	if (r == 0)
		r = concat_kdf(z, kek);
	if (r == 0)
		r = aes_kw(true, kek, cek, 32, ek, eklen);
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(kek, sizeof(kek));
	return r;
}

int bw_jwe_encrypt(struct json_object *jwk, const uint8_t *pt, size_t len, char **out)
{
	_cleanup_pkey_ EVP_PKEY *peer = NULL;
	const char *alg;
	int r = bw_jwk_import(jwk, &peer, &alg);

	return r < 0 ? r : bw_jwe_encrypt_to(peer, alg, pt, len, out);
}

int bw_jwe_encrypt_to(EVP_PKEY *peer, const char *alg, const uint8_t *pt, size_t len, char **out)
{
	_cleanup_json_ struct json_object *hdr = json_object_new_object(), *jwe = json_object_new_object();
	_cleanup_free_ char *prot = NULL;
	_cleanup_free_ uint8_t *ct = malloc(len + 1);
	/* The content key and the IV from one RAND_bytes call: each call costs a getpid(2) (OpenSSL's
	 * fork check), a noticeable part of a fetch on a paravirtualised host. */
	uint8_t rnd[CEK_LEN + IV_LEN], *cek = rnd, *iv = rnd + CEK_LEN, tag[TAG_LEN], ek[1024];
	size_t eklen = sizeof(ek);
	const char *h;
	int r;

	if (!hdr || !jwe || !ct)
		return -ENOMEM;
	if (RAND_bytes(rnd, sizeof(rnd)) <= 0)
		return -EIO;
	r = wrap_cek(peer, alg, cek, hdr, ek, &eklen);
	h = json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (r == 0)
		r = bw_base64_encode_alloc((const uint8_t *)h, strlen(h), BW_B64_JOSE, &prot);
	/* RFC 7516 §5.1: the AAD is the ASCII of the encoded protected header. */
	if (r == 0)
		r = gcm(true, cek, iv, prot, pt, len, ct, tag);
	OPENSSL_cleanse(cek, CEK_LEN);
	if (r < 0)
		return r;
	json_object_object_add(jwe, "protected", json_object_new_string(prot));
	add_b64(jwe, "encrypted_key", ek, eklen);
	add_b64(jwe, "iv", iv, IV_LEN);
	add_b64(jwe, "ciphertext", ct, len);
	add_b64(jwe, "tag", tag, sizeof(tag));
	*out = strdup(json_object_to_json_string_ext(jwe, JSON_C_TO_STRING_PLAIN));
	return *out ? 0 : -ENOMEM;
}

/* ---- JWE decrypt (client side) ---- */

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); return (code); } while (0)

static int unwrap_cek(EVP_PKEY *key, struct json_object *hdr, const uint8_t *ek, size_t eklen,
		      uint8_t cek[32], char *err, size_t errlen)
{
	const char *alg = bw_json_str(hdr, "alg");
	size_t n = 0;
	int r;

	if (!alg)
		FAIL(-EBADMSG, "JWE header without alg");
	if (!strcmp(alg, ALG_RSA)) {
		uint8_t buf[1024];
		n = sizeof(buf);
		if (is_ec(key) || rsa_oaep(false, key, ek, eklen, buf, &n) < 0 || n != 32) {
			OPENSSL_cleanse(buf, sizeof(buf));
			FAIL(-EBADMSG, "JWE: RSA-OAEP-256 key unwrap failed");
		}
		memcpy(cek, buf, 32);
		OPENSSL_cleanse(buf, sizeof(buf));
		return 0;
	}
	if (strcmp(alg, ALG_ECDH))
		FAIL(-EPROTONOSUPPORT, "JWE alg '%.32s' not supported", alg);
	struct json_object *epk;
	_cleanup_pkey_ EVP_PKEY *peer = NULL;
	const char *dummy;
	uint8_t z[32], kek[32];

	if (!is_ec(key) || !json_object_object_get_ex(hdr, "epk", &epk) ||
	    !json_object_is_type(epk, json_type_object) || bw_json_str(epk, "alg") ||
	    strcmp(bw_json_str(epk, "kty") ?: "", "EC") || bw_jwk_import(epk, &peer, &dummy) < 0)
		FAIL(-EBADMSG, "JWE: bad or missing epk");
	if (eklen != 40)
		FAIL(-EBADMSG, "JWE: encrypted_key must be 40 bytes");
	r = ecdh(key, peer, z);
	if (r == 0)
		r = concat_kdf(z, kek);
	if (r == 0)
		r = aes_kw(false, kek, ek, eklen, cek, &n);
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(kek, sizeof(kek));
	if (r < 0 || n != 32)
		FAIL(-EBADMSG, "JWE: ECDH-ES+A256KW key unwrap failed");
	return 0;
}

struct jwe_parts {
	struct json_object *top, *hdr;
	uint8_t *ek, *iv, *ct, *tag;
	size_t eklen, ivlen, ctlen, taglen;
	char *aad;
};

static void parts_free(struct jwe_parts *p)
{
	json_object_put(p->top);
	json_object_put(p->hdr);
	free(p->ek);
	free(p->iv);
	free(p->ct);
	free(p->tag);
	free(p->aad);
}

/*
 * RFC 7516 §7.2.1: the JOSE header is the union of the protected, shared unprotected and
 * per-recipient headers, with no parameter in two of them (jwcrypto puts epk per recipient).
 */
static int merge_header(struct json_object *hdr, struct json_object *top, const char *member)
{
	struct json_object *u;

	if (!json_object_object_get_ex(top, member, &u))
		return 0;
	if (!json_object_is_type(u, json_type_object))
		return -EBADMSG;
	json_object_object_foreach(u, k, v) {
		if (json_object_object_get_ex(hdr, k, NULL))
			return -EBADMSG;
		json_object_object_add(hdr, k, json_object_get(v));
	}
	return 0;
}

static int parse_parts(const char *jwe, size_t len, struct jwe_parts *p, char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *h = NULL;
	size_t hl;
	const char *prot, *aad, *enc;

	if (bw_kbs_parse_object(jwe, len, &p->top) < 0)
		FAIL(-EBADMSG, "JWE is not a JSON object");
	prot = bw_json_str(p->top, "protected");
	if (!prot || bw_base64_decode_alloc(prot, BW_B64_JOSE, &h, &hl) < 0 || bw_kbs_parse_object((char *)h, hl, &p->hdr) < 0)
		FAIL(-EBADMSG, "JWE protected header is not base64url JSON");
	if (merge_header(p->hdr, p->top, "unprotected") < 0 || merge_header(p->hdr, p->top, "header") < 0)
		FAIL(-EBADMSG, "JWE unprotected header invalid or repeats a protected parameter");
	/*
	 * RFC 7516 §4.1.3 zip: we never decompress, so a compressed plaintext would be taken as the
	 * key itself. RFC 7515 §4.1.11 crit: extensions listed there MUST be understood, and we
	 * understand none; a crit that is empty or not in the protected header is malformed anyway.
	 */
	if (json_object_object_get_ex(p->hdr, "zip", NULL))
		FAIL(-EPROTONOSUPPORT, "JWE zip (compression) is not supported");
	if (json_object_object_get_ex(p->hdr, "crit", NULL))
		FAIL(-EPROTONOSUPPORT, "JWE crit names extensions this client does not understand");
	enc = bw_json_str(p->hdr, "enc");
	if (!enc || strcmp(enc, "A256GCM"))
		FAIL(-EPROTONOSUPPORT, "JWE enc must be A256GCM");
	if (get_b64(p->top, "encrypted_key", &p->ek, &p->eklen) < 0 || get_b64(p->top, "iv", &p->iv, &p->ivlen) < 0 ||
	    get_b64(p->top, "ciphertext", &p->ct, &p->ctlen) < 0 || get_b64(p->top, "tag", &p->tag, &p->taglen) < 0)
		FAIL(-EBADMSG, "JWE member missing or not base64url");
	if (p->ivlen != IV_LEN || p->taglen != TAG_LEN)
		FAIL(-EBADMSG, "JWE iv must be 12 bytes and tag 16 bytes");
	aad = bw_json_str(p->top, "aad");
	if (json_object_object_get_ex(p->top, "aad", NULL) && !aad)
		FAIL(-EBADMSG, "JWE aad is not a string");
	/* RFC 7516 §5.2 step 14: AAD = protected || '.' || aad when aad is present. */
	if (asprintf(&p->aad, "%s%s%s", prot, aad ? "." : "", aad ?: "") < 0) {
		p->aad = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Unwrap the content key and decrypt p's ciphertext into out (p->ctlen bytes). */
static int decrypt_parts(EVP_PKEY *key, struct jwe_parts *p, uint8_t *out, char *err, size_t errlen)
{
	uint8_t cek[CEK_LEN];
	int r = unwrap_cek(key, p->hdr, p->ek, p->eklen, cek, err, errlen);

	if (r < 0)
		return r;
	r = gcm(false, cek, p->iv, p->aad, p->ct, p->ctlen, out, p->tag);
	OPENSSL_cleanse(cek, sizeof(cek));
	if (r < 0) {
		OPENSSL_cleanse(out, p->ctlen); /* GCM wrote plaintext before the tag check failed */
		snprintf(err, errlen, "JWE: authentication tag mismatch");
		return -EBADMSG;
	}
	return 0;
}

int bw_jwe_decrypt(EVP_PKEY *key, const char *jwe, size_t len, struct bw_secret *out, char *err,
		   size_t errlen)
{
	struct jwe_parts p = { 0 };
	_cleanup_secret_ struct bw_secret pt = { 0 };
	int r = parse_parts(jwe, len, &p, err, errlen);

	if (r == 0)
		r = bw_secret_new(&pt, p.ctlen);
	if (r == 0)
		r = decrypt_parts(key, &p, pt.data, err, errlen);
	parts_free(&p);
	if (r < 0)
		return r;
	*out = TAKE_SECRET(pt);
	return 0;
}

int bw_jwe_decrypt_into(EVP_PKEY *key, const char *jwe, size_t len, uint8_t *out, size_t cap,
			size_t *outlen, char *err, size_t errlen)
{
	struct jwe_parts p = { 0 };
	int r = parse_parts(jwe, len, &p, err, errlen);

	if (r == 0 && p.ctlen > cap) {
		snprintf(err, errlen, "JWE: plaintext of %zu bytes does not fit %zu", p.ctlen, cap);
		r = -EMSGSIZE;
	}
	if (r == 0)
		r = decrypt_parts(key, &p, out, err, errlen);
	if (r == 0)
		*outlen = p.ctlen;
	parts_free(&p);
	return r;
}
