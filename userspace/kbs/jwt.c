// SPDX-License-Identifier: GPL-2.0-only
/* ES256 JSON Web Tokens (RFC 7519/7518 §3.4): the key service's attestation tokens. */
#include <errno.h>
#include <string.h>
#include <openssl/ecdsa.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

#define HEADER "{\"alg\":\"ES256\",\"typ\":\"JWT\"}"
#define MAX_JWT 16384

static int der_to_raw(const uint8_t *der, size_t len, uint8_t raw[64])
{
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ok;

	if (!sig)
		return -EINVAL;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -EINVAL;
}

static int raw_to_der(const uint8_t raw[64], uint8_t **der, int *len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);

	if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return -ENOMEM;
	}
	*der = NULL;
	*len = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	return *len > 0 ? 0 : -ENOMEM;
}

int bw_jwt_sign(EVP_PKEY *key, struct json_object *claims, char **out)
{
	_cleanup_free_ char *h = NULL, *c = NULL, *s = NULL, *input = NULL;
	const char *cj = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[80], raw[64];
	size_t dl = sizeof(der);
	int r = -EINVAL;

	if (!md || bw_base64_encode_alloc((const uint8_t *)HEADER, strlen(HEADER), BW_B64_JOSE, &h) < 0 ||
	    bw_base64_encode_alloc((const uint8_t *)cj, strlen(cj), BW_B64_JOSE, &c) < 0 || asprintf(&input, "%s.%s", h, c) < 0) {
		input = NULL;
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) > 0 &&
	    EVP_DigestSign(md, der, &dl, (const uint8_t *)input, strlen(input)) > 0 &&
	    der_to_raw(der, dl, raw) == 0 && bw_base64_encode_alloc(raw, 64, BW_B64_JOSE, &s) == 0)
		r = asprintf(out, "%s.%s", input, s) < 0 ? -ENOMEM : 0;
	EVP_MD_CTX_free(md);
	return r;
}

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); return (code); } while (0)

static int check_sig(EVP_PKEY *pub, const char *input, size_t inlen, const char *sig64)
{
	_cleanup_free_ uint8_t *raw = NULL, *der = NULL;
	size_t rl;
	int dl, ok;
	EVP_MD_CTX *md;

	if (bw_base64_decode_alloc(sig64, BW_B64_JOSE, &raw, &rl) < 0 || rl != 64 || raw_to_der(raw, &der, &dl) < 0)
		return -EBADMSG;
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) > 0 &&
	     EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)input, inlen) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -EKEYREJECTED;
}

static int decode_json(const char *b64, size_t len, struct json_object **out)
{
	_cleanup_free_ char *s = strndup(b64, len);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n;

	if (!s || bw_base64_decode_alloc(s, BW_B64_JOSE, &buf, &n) < 0)
		return -EBADMSG;
	return bw_kbs_parse_object((char *)buf, n, out);
}

/* An integer claim: 0 and *v when present, 1 when absent, -EBADMSG when of another type. */
static int claim_int(struct json_object *c, const char *k, int64_t *v)
{
	struct json_object *o;

	if (!json_object_object_get_ex(c, k, &o))
		return 1;
	if (!json_object_is_type(o, json_type_int))
		return -EBADMSG;
	*v = json_object_get_int64(o);
	return 0;
}

/*
 * Registered claims (RFC 7519 §4.1): iss must be the expected issuer; exp is required and in the
 * future; iat and nbf, when present, integers no later than now + BW_JWT_SKEW (clock skew
 * between replicas sharing a signing key).
 */
static int check_claims(struct json_object *c, const char *iss, time_t now, char *err, size_t errlen)
{
	const char *got = bw_json_str(c, "iss");
	int64_t exp = 0, iat = 0, nbf = 0;
	int re = claim_int(c, "exp", &exp), ri = claim_int(c, "iat", &iat), rn = claim_int(c, "nbf", &nbf);

	if (iss && (!got || strcmp(got, iss)))
		FAIL(-EKEYREJECTED, "token issuer is not %s", iss);
	if (re != 0 || ri < 0 || rn < 0)
		FAIL(-EBADMSG, "token exp missing or exp/iat/nbf not integers");
	if (exp <= (int64_t)now)
		FAIL(-EKEYEXPIRED, "token expired");
	if ((ri == 0 && iat > (int64_t)now + BW_JWT_SKEW) || (rn == 0 && nbf > (int64_t)now + BW_JWT_SKEW))
		FAIL(-EKEYEXPIRED, "token not yet valid (iat/nbf in the future)");
	return 0;
}

int bw_jwt_verify(EVP_PKEY *pub, const char *iss, const char *jwt, time_t now, struct json_object **claims,
		  char *err, size_t errlen)
{
	const char *d1, *d2;
	struct json_object *hdr = NULL, *c = NULL;
	const char *alg;
	int r;

	if (strlen(jwt) > MAX_JWT || !(d1 = strchr(jwt, '.')) || !(d2 = strchr(d1 + 1, '.')) || strchr(d2 + 1, '.'))
		FAIL(-EBADMSG, "token is not a compact JWS");
	if (decode_json(jwt, (size_t)(d1 - jwt), &hdr) < 0)
		FAIL(-EBADMSG, "token header is not base64url JSON");
	alg = bw_json_str(hdr, "alg");
	r = alg && !strcmp(alg, "ES256") && !json_object_object_get_ex(hdr, "crit", NULL) ? 0 : -EBADMSG;
	json_object_put(hdr);
	if (r < 0)
		FAIL(r, "token alg must be ES256 (and no crit)");
	if (check_sig(pub, jwt, (size_t)(d2 - jwt), d2 + 1) < 0)
		FAIL(-EKEYREJECTED, "token signature invalid (not signed by this service's key)");
	if (decode_json(d1 + 1, (size_t)(d2 - d1 - 1), &c) < 0)
		FAIL(-EBADMSG, "token claims are not base64url JSON");
	r = check_claims(c, iss, now, err, errlen);
	if (r < 0) {
		json_object_put(c);
		return r;
	}
	*claims = c;
	return 0;
}
