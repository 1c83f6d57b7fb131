// SPDX-License-Identifier: GPL-2.0-only
/*
 * kbs + keyservice units: encodings, JCS, JWE round trips (both key types, tampering), JWT
 * (expiry, foreign key), policy parsing and matching, sessions, the tsm request, and the
 * protocol handlers end to end without the network. The JWE cross-check against
 * python3-jwcrypto (the client decrypts what jwcrypto encrypts) is here too.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/rsa.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"
#include "keyservice/keyservice.h"

static void b64_round_trip(void **state)
{
	const uint8_t in[] = { 0xfb, 0xff, 0x00, 0x3e, 0x3f };
	_cleanup_free_ char *s = NULL;
	_cleanup_free_ uint8_t *back = NULL;
	uint8_t *x = NULL;
	size_t len;
	(void)state;

	for (size_t n = 0; n <= sizeof(in); n++) {
		free(s);
		free(back);
		assert_int_equal(bw_base64_encode_alloc(in, n, BW_B64_JOSE, &s), 0);
		assert_null(strpbrk(s, "+/="));
		assert_int_equal(bw_base64_decode_alloc(s, BW_B64_JOSE, &back, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(back, in, n);
	}
	assert_string_equal(s, "-_8APj8");
	assert_int_equal(bw_base64_decode_alloc("+/8APj8=", BW_B64_NOPAD, &x, &len), 0);
	assert_int_equal(len, 5);
	free(x);
	assert_int_equal(bw_base64_decode_alloc("+/8APj8", BW_B64_JOSE, &x, &len), -EINVAL);
	assert_int_equal(bw_base64_decode_alloc("-_8APj8", BW_B64_NOPAD, &x, &len), -EINVAL);
	assert_int_equal(bw_base64_decode_alloc("a", BW_B64_JOSE, &x, &len), -EINVAL);
	assert_int_equal(bw_base64_decode_alloc("ab c", BW_B64_JOSE, &x, &len), -EINVAL);
}

static void jcs_canonical(void **state)
{
	struct json_object *o = json_tokener_parse(
		"{\"z\":1,\"a\":{\"y\":\"\\u0001\\n\\\"/é\",\"b\":[true,null,-5]},\"tee-pubkey\":\"x\"}");
	_cleanup_free_ char *s = NULL;
	struct json_object *d = json_tokener_parse("{\"a\":1.5}");
	char *t = NULL;
	(void)state;

	assert_int_equal(bw_jcs(o, &s, NULL), 0);
	assert_string_equal(s, "{\"a\":{\"b\":[true,null,-5],\"y\":\"\\u0001\\n\\\"/é\"},\"tee-pubkey\":\"x\",\"z\":1}");
	assert_int_equal(bw_jcs(d, &t, NULL), -ENOTSUP);
	json_object_put(o);
	json_object_put(d);
}

static void report_data_is_sha384_of_jcs(void **state)
{
	struct json_object *jwk = json_tokener_parse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"A\",\"y\":\"B\"}");
	const char *canon = "{\"additional-evidence\":\"\",\"nonce\":\"n0\",\"tee-pubkey\":"
			    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"A\",\"y\":\"B\"}}";
	uint8_t rd[48], want[48];
	(void)state;

	assert_int_equal(bw_kbs_report_data(jwk, "n0", rd), 0);
	EVP_Digest(canon, strlen(canon), want, NULL, EVP_sha384(), NULL);
	assert_memory_equal(rd, want, 48);
	json_object_put(jwk);
}

static void jwe_round_trip(enum bw_jwk_type type)
{
	EVP_PKEY *k = bw_jwk_new(type), *other = bw_jwk_new(type);
	struct json_object *jwk = NULL;
	_cleanup_free_ char *jwe = NULL;
	struct bw_secret out = { 0 };
	char err[BW_ERR_LEN];
	const uint8_t msg[32] = "0123456789abcdef0123456789abcde";

	assert_non_null(k);
	assert_int_equal(bw_jwk_public(k, &jwk), 0);
	assert_int_equal(bw_jwe_encrypt(jwk, msg, sizeof(msg), &jwe), 0);
	assert_int_equal(bw_jwe_decrypt(k, jwe, strlen(jwe), &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, sizeof(msg));
	assert_memory_equal(out.data, msg, sizeof(msg));
	bw_secret_free(&out);
	/* Into a caller's buffer: exact fit works, one byte short is refused. */
	uint8_t buf[32];
	size_t got = 0;
	assert_int_equal(bw_jwe_decrypt_into(k, jwe, strlen(jwe), buf, sizeof(buf), &got, err, sizeof(err)), 0);
	assert_int_equal(got, 32);
	assert_memory_equal(buf, msg, 32);
	assert_int_equal(bw_jwe_decrypt_into(k, jwe, strlen(jwe), buf, 31, &got, err, sizeof(err)), -EMSGSIZE);
	/* Another key cannot decrypt. */
	assert_true(bw_jwe_decrypt(other, jwe, strlen(jwe), &out, err, sizeof(err)) < 0);
	/* A flipped ciphertext character fails the tag. */
	char *ct = strstr(jwe, "\"ciphertext\":\"") + 14;
	*ct = *ct == 'A' ? 'B' : 'A';
	assert_int_equal(bw_jwe_decrypt(k, jwe, strlen(jwe), &out, err, sizeof(err)), -EBADMSG);
	assert_null(out.data);
	json_object_put(jwk);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void jwe_ec(void **state) { (void)state; jwe_round_trip(BW_JWK_EC_P256); }
static void jwe_rsa(void **state) { (void)state; jwe_round_trip(BW_JWK_RSA3072); }

static void jwk_rejects_off_curve_and_rsa1_5(void **state)
{
	struct json_object *bad = json_tokener_parse(
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		"\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
	struct json_object *rsa15 = json_tokener_parse("{\"kty\":\"RSA\",\"alg\":\"RSA1_5\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
	EVP_PKEY *k = NULL;
	const char *alg;
	(void)state;

	assert_true(bw_jwk_import(bad, &k, &alg) < 0);
	assert_null(k);
	assert_int_equal(bw_jwk_import(rsa15, &k, &alg), -EPROTONOSUPPORT);
	json_object_put(bad);
	json_object_put(rsa15);
}

static char *sign_claims(EVP_PKEY *k, const char *json)
{
	struct json_object *c = json_tokener_parse(json);
	char *tok = NULL;

	assert_non_null(c);
	assert_int_equal(bw_jwt_sign(k, c, &tok), 0);
	json_object_put(c);
	return tok;
}

static void jwt_verify(void **state)
{
	EVP_PKEY *k = bw_jwk_new(BW_JWK_EC_P256), *other = bw_jwk_new(BW_JWK_EC_P256);
	struct json_object *back = NULL;
	char *tok = sign_claims(k, "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000,\"exp\":2000,\"tee\":\"sample\"}");
	char err[BW_ERR_LEN];
	(void)state;

	assert_int_equal(bw_jwt_verify(k, BW_KS_ISSUER, tok, 1500, &back, err, sizeof(err)), 0);
	assert_string_equal(bw_json_str(back, "tee"), "sample");
	json_object_put(back);
	assert_int_equal(bw_jwt_verify(k, BW_KS_ISSUER, tok, 2000, &back, err, sizeof(err)), -EKEYEXPIRED);
	assert_int_equal(bw_jwt_verify(k, BW_KS_ISSUER, tok, 1000 - BW_JWT_SKEW - 1, &back, err, sizeof(err)), -EKEYEXPIRED);
	assert_int_equal(bw_jwt_verify(other, BW_KS_ISSUER, tok, 1500, &back, err, sizeof(err)), -EKEYREJECTED);
	/* Another issuer, signed with the right key: refused. */
	assert_int_equal(bw_jwt_verify(k, "someone-else", tok, 1500, &back, err, sizeof(err)), -EKEYREJECTED);
	tok[strlen(tok) - 2] ^= 1;
	assert_true(bw_jwt_verify(k, BW_KS_ISSUER, tok, 1500, &back, err, sizeof(err)) < 0);
	free(tok);
	/* Signed by the right key but: nbf in the future, no iss, no exp, a string exp. */
	const struct { const char *claims; int want; } bad[] = {
		{ "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000,\"nbf\":1800,\"exp\":2000}", -EKEYEXPIRED },
		{ "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000,\"nbf\":\"0\",\"exp\":2000}", -EBADMSG },
		{ "{\"iat\":1000,\"exp\":2000}", -EKEYREJECTED },
		{ "{\"iss\":\"" BW_KS_ISSUER "x\",\"iat\":1000,\"exp\":2000}", -EKEYREJECTED },
		{ "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000}", -EBADMSG },
		{ "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000,\"exp\":\"2000\"}", -EBADMSG },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		tok = sign_claims(k, bad[i].claims);
		back = NULL;
		if (bw_jwt_verify(k, BW_KS_ISSUER, tok, 1500, &back, err, sizeof(err)) != bad[i].want)
			fail_msg("%s: %s", bad[i].claims, err);
		assert_null(back);
		free(tok);
	}
	/* nbf in the past is fine. */
	tok = sign_claims(k, "{\"iss\":\"" BW_KS_ISSUER "\",\"iat\":1000,\"nbf\":1000,\"exp\":2000}");
	assert_int_equal(bw_jwt_verify(k, BW_KS_ISSUER, tok, 1500, &back, err, sizeof(err)), 0);
	json_object_put(back);
	free(tok);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

/* JCS integer range without UB: INT64_MIN and INT64_MAX are refused, +-2^53 kept. */
static void jcs_integer_range(void **state)
{
	const int64_t bad[] = { INT64_MIN, INT64_MIN + 1, INT64_MAX, (INT64_C(1) << 53) + 1, -(INT64_C(1) << 53) - 1 };
	const int64_t good[] = { INT64_C(1) << 53, -(INT64_C(1) << 53), 0, -1 };
	char *s = NULL;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct json_object *o = json_object_new_int64(bad[i]);
		assert_int_equal(bw_jcs(o, &s, NULL), -ERANGE);
		json_object_put(o);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct json_object *o = json_object_new_int64(good[i]);
		assert_int_equal(bw_jcs(o, &s, NULL), 0);
		assert_int_equal(strtoll(s, NULL, 10), good[i]);
		free(s);
		json_object_put(o);
	}
}

/* A JWK member replaced by base64url of the given bytes. */
static void set_b64(struct json_object *jwk, const char *name, const uint8_t *b, size_t n)
{
	char *s = NULL;

	assert_int_equal(bw_base64_encode_alloc(b, n, BW_B64_JOSE, &s), 0);
	json_object_object_add(jwk, name, json_object_new_string(s));
	free(s);
}

/* RSA tee-pubkeys that would make RSA-OAEP weak or broken are refused at import. */
static void rsa_tee_pubkey_validated(void **state)
{
	EVP_PKEY *k = EVP_RSA_gen(2048), *got = NULL;
	struct json_object *jwk = NULL, *t;
	uint8_t *n = NULL, big[257];
	size_t nl;
	const char *alg;
	const struct { const uint8_t e[4]; size_t len; } es[] = {
		{ { 1 }, 1 },                  /* identity */
		{ { 3 }, 1 },                  /* small */
		{ { 0x01, 0x00, 0x00 }, 3 },   /* even (65536) */
		{ { 0x00, 0x01, 0x00, 0x01 }, 4 }, /* 65537 with a leading zero octet */
		{ { 0x01, 0x00, 0x03 }, 3 },   /* odd, > 2^16, but not 65537 */
	};
	(void)state;

	assert_non_null(k);
	assert_int_equal(bw_jwk_public(k, &jwk), 0);
	assert_int_equal(bw_jwk_import(jwk, &got, &alg), 0);
	EVP_PKEY_free(got);
	for (size_t i = 0; i < ARRAY_SIZE(es); i++) {
		t = json_tokener_parse(json_object_to_json_string(jwk));
		set_b64(t, "e", es[i].e, es[i].len);
		got = NULL;
		assert_true(bw_jwk_import(t, &got, &alg) < 0);
		assert_null(got);
		json_object_put(t);
	}
	assert_int_equal(bw_base64_decode_alloc(bw_json_str(jwk, "n"), BW_B64_JOSE, &n, &nl), 0);
	assert_int_equal(nl, 256);
	/* Even modulus; a modulus with a small factor (3 * something); a zero-padded modulus. */
	n[nl - 1] &= 0xfe;
	t = json_tokener_parse(json_object_to_json_string(jwk));
	set_b64(t, "n", n, nl);
	assert_true(bw_jwk_import(t, &got, &alg) < 0);
	json_object_put(t);
	{
		BIGNUM *b = BN_new();
		BN_set_bit(b, 2047);
		BN_add_word(b, 1);
		while (BN_mod_word(b, 3) != 0)
			BN_add_word(b, 2); /* odd, divisible by 3 */
		BN_bn2binpad(b, n, 256);
		BN_free(b);
	}
	t = json_tokener_parse(json_object_to_json_string(jwk));
	set_b64(t, "n", n, nl);
	assert_true(bw_jwk_import(t, &got, &alg) < 0);
	json_object_put(t);
	free(n);
	n = NULL;
	assert_int_equal(bw_base64_decode_alloc(bw_json_str(jwk, "n"), BW_B64_JOSE, &n, &nl), 0);
	big[0] = 0;
	memcpy(big + 1, n, 256);
	t = json_tokener_parse(json_object_to_json_string(jwk));
	set_b64(t, "n", big, 257);
	assert_true(bw_jwk_import(t, &got, &alg) < 0);
	json_object_put(t);
	free(n);
	json_object_put(jwk);
	EVP_PKEY_free(k);
}

/* A JWE whose header carries crit or zip (protected or not) is refused before decryption. */
static void jwe_crit_and_zip_refused(void **state)
{
	EVP_PKEY *k = bw_jwk_new(BW_JWK_EC_P256);
	struct json_object *jwk = NULL;
	_cleanup_free_ char *jwe = NULL;
	struct bw_secret out = { 0 };
	const uint8_t msg[32] = { 1 };
	char err[BW_ERR_LEN];
	const char *hdrs[] = { "{\"crit\":[\"exp\"],\"exp\":1}", "{\"zip\":\"DEF\"}", "{\"crit\":[]}" };
	(void)state;

	assert_int_equal(bw_jwk_public(k, &jwk), 0);
	assert_int_equal(bw_jwe_encrypt(jwk, msg, sizeof(msg), &jwe), 0);
	for (size_t i = 0; i < ARRAY_SIZE(hdrs); i++) {
		struct json_object *top = json_tokener_parse(jwe);
		json_object_object_add(top, "unprotected", json_tokener_parse(hdrs[i]));
		const char *t = json_object_to_json_string(top);
		assert_int_equal(bw_jwe_decrypt(k, t, strlen(t), &out, err, sizeof(err)), -EPROTONOSUPPORT);
		assert_null(out.data);
		json_object_put(top);
	}
	json_object_put(jwk);
	EVP_PKEY_free(k);
}

/* Strict JSON: every leniency json-c 0.16 has (even in strict mode) is refused. */
static void json_strict(void **state)
{
	const char *bad[] = {
		"{\"a\":1,}", "{\"a\":[1,2,]}", "{/*c*/\"a\":1}", "{\"a\":1}//x", "{\"a\":1}#", "{'a':1}",
		"{\"a\":'x'}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}", "{\"a\":01}", "{\"a\":1.}",
		"{\"a\":.5}", "{\"a\":0x10}", "{\"a\":+1}", "{\"a\":True}", "{\"a\":nul}", "{\"a\":-}", "{\"a\":1e}",
		"{\"a\":\"\x01\"}", "{\"a\":\"\t\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
		"{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\\u0000x\"}", "{\"t\\u0000x\":1}", "{\"a\":\"\\x41\"}",
		"{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":1}}", "{\"a\":[{\"x\":1,\"x\":1}]}",
		"{\"a\":99999999999999999999}", "{\"a\":-9223372036854775809}", "{\"a\":1e400}",
		"\xef\xbb\xbf{}", "{\"a\":1} x", "{\"a\":1}{}", "{\"a\":1", "[1]", "\"s\"", "", "{\"a\":1}\f",
		"{\"a\":\"x}",
	};
	const char *good[] = {
		"{}", " {\"a\" : [1, -0, 0.5, 1e5, 1E-2, -1.5e+3, true, false, null, {}]}\n",
		"{\"a\":\"\\u00e9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
		"{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":{\"a\":1}}",
	};
	struct json_object *o = NULL;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (bw_kbs_parse_object(bad[i], strlen(bad[i]), &o) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (bw_kbs_parse_object(good[i], strlen(good[i]), &o) != 0)
			fail_msg("refused: %s", good[i]);
		json_object_put(o);
	}
	/* Bounded: one byte over the limit is -EFBIG. */
	char *big = malloc(BW_KBS_MAX_BODY + 2);
	memset(big, ' ', BW_KBS_MAX_BODY + 1);
	memcpy(big, "{}", 2);
	assert_int_equal(bw_kbs_parse_object(big, BW_KBS_MAX_BODY + 1, &o), -EFBIG);
	assert_int_equal(bw_kbs_parse_object(big, BW_KBS_MAX_BODY, &o), 0);
	json_object_put(o);
	free(big);
	/* Length-aware member access: an embedded NUL (built directly) is not its prefix. */
	o = json_object_new_object();
	json_object_object_add(o, "tee", json_object_new_string_len("sample\0x", 8));
	assert_null(bw_json_str(o, "tee"));
	json_object_put(o);
	/* The policy file uses the same parser. */
	struct bw_ks_policy p;
	char err[BW_ERR_LEN];
	const char *pol[] = { "{\"sample\":true,\"sample\":false}", "{\"rules\":[],}", "{'sample':true}",
			      "{\"rules\":[{\"name\":\"t\",\"tee\":\"sample\",\"resources\":[\"a/\"],\"name\":\"u\"}]}" };
	for (size_t i = 0; i < ARRAY_SIZE(pol); i++)
		assert_int_equal(bw_ks_policy_parse(pol[i], strlen(pol[i]), &p, err, sizeof(err)), -EBADMSG);
}

static void resource_paths(void **state)
{
	(void)state;
	assert_true(bw_kbs_resource_path_valid("bulwark/volume/pvc-1.a_b"));
	assert_false(bw_kbs_resource_path_valid("bulwark/volume"));
	assert_false(bw_kbs_resource_path_valid("bulwark/volume/a/b"));
	assert_false(bw_kbs_resource_path_valid("bulwark/../x"));
	assert_false(bw_kbs_resource_path_valid("bulwark//x"));
	assert_false(bw_kbs_resource_path_valid("bulwark/v/%2e"));
	char buf[64];
	assert_int_equal(bw_ks_info("bulwark/volume/abc", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "key-abc");
	assert_int_equal(bw_ks_info("bulwark/statedisk/n1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "bulwark/statedisk/n1");
}

#define AK "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define P0 "0000000000000000000000000000000000000000000000000000000000000000"
#define P7 "7777777777777777777777777777777777777777777777777777777777777777"

static void policy_parse_and_match(void **state)
{
	const char *text = "{\"sample\":true,\"rules\":["
			   "{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"bulwark/volume/\"]},"
			   "{\"name\":\"t\",\"tee\":\"tpm\",\"trusted_aks\":[\"" AK "\"],\"pcrs\":{\"7\":\"" P7 "\"},"
			   "\"resources\":[\"bulwark/statedisk/n1\"]}]}";
	struct bw_ks_policy p;
	char err[BW_ERR_LEN];
	struct json_object *claims, *names, *pcrs;
	(void)state;

	assert_int_equal(bw_ks_policy_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	claims = json_tokener_parse("{\"tee\":\"sample\"}");
	names = bw_ks_policy_match(&p, claims);
	assert_int_equal(json_object_array_length(names), 1);
	assert_true(bw_ks_policy_allows(&p, names, "sample", "bulwark/volume/x"));
	assert_false(bw_ks_policy_allows(&p, names, "sample", "bulwark/statedisk/n1"));
	assert_false(bw_ks_policy_allows(&p, names, "tpm", "bulwark/volume/x"));
	json_object_put(names);
	json_object_put(claims);

	claims = json_object_new_object();
	pcrs = json_object_new_array();
	for (int i = 0; i < 24; i++)
		json_object_array_add(pcrs, json_object_new_string(i == 7 ? P7 : P0));
	json_object_object_add(claims, "tee", json_object_new_string("tpm"));
	json_object_object_add(claims, "ak", json_object_new_string(AK));
	json_object_object_add(claims, "pcrs", pcrs);
	names = bw_ks_policy_match(&p, claims);
	assert_int_equal(json_object_array_length(names), 1);
	assert_true(bw_ks_policy_allows(&p, names, "tpm", "bulwark/statedisk/n1"));
	assert_false(bw_ks_policy_allows(&p, names, "tpm", "bulwark/statedisk/n2"));
	/* The same rule name with another reference value: tokens issued under the old rule lapse. */
	{
		struct bw_ks_policy p2;
		char *t2 = strdup(text), *at = strstr(t2, P7);
		at[0] = '8';
		assert_int_equal(bw_ks_policy_parse(t2, strlen(t2), &p2, err, sizeof(err)), 0);
		assert_false(bw_ks_policy_allows(&p2, names, "tpm", "bulwark/statedisk/n1"));
		bw_ks_policy_free(&p2);
		free(t2);
	}
	json_object_put(names);
	/* A PCR that differs from the reference value: no rule. */
	json_object_array_put_idx(pcrs, 7, json_object_new_string(P0));
	names = bw_ks_policy_match(&p, claims);
	assert_int_equal(json_object_array_length(names), 0);
	json_object_put(names);
	/* Unknown AK: no rule. */
	json_object_array_put_idx(pcrs, 7, json_object_new_string(P7));
	json_object_object_add(claims, "ak", json_object_new_string(P0));
	names = bw_ks_policy_match(&p, claims);
	assert_int_equal(json_object_array_length(names), 0);
	json_object_put(names);
	json_object_put(claims);
	bw_ks_policy_free(&p);

	const char *bad[] = {
		"{\"rules\":[{\"name\":\"t\",\"tee\":\"tpm\",\"resources\":[\"a/\"]}]}",      /* no AK */
		"{\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resource\":[\"a/\"]}]}",     /* typo */
		"{\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"../\"]}]}",  /* bad prefix */
		"{\"sampel\":true}",
		"[]",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_true(bw_ks_policy_parse(bad[i], strlen(bad[i]), &p, err, sizeof(err)) < 0);
}

static struct bw_ks_sessions *sessions_new(size_t max, size_t per_source, time_t unattested)
{
	return bw_ks_sessions_new(&(struct bw_ks_session_limits){ .max = max, .per_source = per_source, .lifetime = 300,
							   .unattested_lifetime = unattested });
}

static void sessions(void **state)
{
	struct bw_ks_sessions *s = sessions_new(2, 0, 0);
	struct bw_ks_session *a, *b, *c;
	(void)state;

	a = bw_ks_session_create(s, "sample", "10.0.0.1", 1000);
	b = bw_ks_session_create(s, "sample", "10.0.0.1", 1000);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a->nonce, b->nonce);
	assert_int_equal(strlen(a->nonce), 44);
	assert_int_equal(bw_ks_session_attested(s, a, strdup("token-a"), 1000), 0);
	/* Full: the oldest unattested session (b) makes room, the attested one (a) stays. */
	c = bw_ks_session_create(s, "sample", "10.0.0.2", 1100);
	assert_non_null(c);
	assert_int_equal(bw_ks_sessions_count(s), 2);
	assert_ptr_equal(bw_ks_session_find(s, a->id, 1100), a);
	assert_ptr_equal(bw_ks_session_find(s, c->id, 1100), c);
	assert_int_equal(bw_ks_sessions_evicted(s), 1);
	assert_ptr_equal(bw_ks_session_find(s, a->id, 1299), a);
	assert_null(bw_ks_session_find(s, a->id, 1300)); /* 5 minutes from the attestation */
	assert_non_null(bw_ks_session_create(s, "sample", "10.0.0.1", 1400)); /* purged the expired ones */
	assert_int_equal(bw_ks_sessions_count(s), 1);
	bw_ks_sessions_free(s);
}

/* An unauthenticated flood cannot keep an honest client from a session. */
static void sessions_flood(void **state)
{
	struct bw_ks_sessions *s = sessions_new(1000, 100, 30);
	struct bw_ks_session *honest, *x, *kept[10];
	char id[65];
	(void)state;

	/* Unattested sessions live 30 s, attested ones the full lifetime. */
	x = bw_ks_session_create(s, "sample", "10.0.0.9", 1000);
	strcpy(id, x->id);
	assert_non_null(bw_ks_session_find(s, id, 1029));
	assert_null(bw_ks_session_find(s, id, 1030));
	/* One source floods: it only ever holds its quota (100), evicting its own oldest. */
	for (int i = 0; i < 5000; i++)
		assert_non_null(bw_ks_session_create(s, "sample", "10.6.6.6", 1000));
	assert_int_equal(bw_ks_sessions_count(s), 101);
	honest = bw_ks_session_create(s, "sample", "10.0.0.1", 1000);
	strcpy(id, honest->id);
	for (int i = 0; i < 5000; i++)
		bw_ks_session_create(s, "sample", "10.6.6.6", 1000);
	assert_ptr_equal(bw_ks_session_find(s, id, 1001), honest);
	/* Many sources fill the table: the oldest unattested go first, attested ones stay. */
	for (int i = 0; i < 10; i++) {
		kept[i] = bw_ks_session_create(s, "sample", "10.0.1.1", 1002);
		assert_int_equal(bw_ks_session_attested(s, kept[i], strdup("t"), 1002), 0);
	}
	for (int i = 0; i < 20000; i++) {
		char src[32];
		snprintf(src, sizeof(src), "10.1.%d.%d", i / 250, i % 250);
		assert_non_null(bw_ks_session_create(s, "sample", src, 1003));
	}
	assert_true(bw_ks_sessions_count(s) <= 1000);
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(bw_ks_session_find(s, kept[i]->id, 1004), kept[i]);
	assert_int_equal(bw_ks_sessions_pending(s), 990);
	/* A failed attestation drops its session at once. */
	x = bw_ks_session_create(s, "sample", "10.0.0.1", 1005);
	strcpy(id, x->id);
	bw_ks_session_drop(s, x);
	assert_null(bw_ks_session_find(s, id, 1005));
	bw_ks_sessions_free(s);
}

static void tsm_request(void **state)
{
	uint8_t rd[48], blob[64], big[65];
	(void)state;

	memset(rd, 0xab, sizeof(rd));
	assert_int_equal(bw_tsm_inblob(rd, sizeof(rd), blob), 0);
	assert_memory_equal(blob, rd, 48);
	for (int i = 48; i < 64; i++)
		assert_int_equal(blob[i], 0);
	assert_int_equal(bw_tsm_inblob(big, sizeof(big), blob), -EINVAL);
	assert_string_equal(bw_tsm_tee("tdx_guest"), "tdx");
	assert_string_equal(bw_tsm_tee("sev_guest"), "snp");
	assert_null(bw_tsm_tee("arm_cca_guest"));
	assert_non_null(bw_attester_find("tsm"));
	assert_non_null(bw_attester_find("sample"));
	assert_null(bw_attester_find("nope"));
}

/* ---- handlers without the network ---- */

struct fixture {
	struct bw_ks_ctx c;
	EVP_PKEY *tee;
	struct json_object *jwk;
};

static void fixture_init(struct fixture *f, bool sample)
{
	const char *pol = sample ? "{\"sample\":true,\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"bulwark/volume/\"]}]}"
				 : "{\"rules\":[{\"name\":\"s\",\"tee\":\"sample\",\"resources\":[\"bulwark/volume/\"]}]}";
	char err[BW_ERR_LEN];

	memset(f, 0, sizeof(*f));
	assert_int_equal(bw_ks_policy_parse(pol, strlen(pol), &f->c.policy, err, sizeof(err)), 0);
	f->c.sessions = sessions_new(100, 0, 30);
	f->c.signing_key = bw_jwk_new(BW_JWK_EC_P256);
	f->c.token_lifetime = 60;
	assert_int_equal(bw_secret_new(&f->c.master, 32), 0);
	assert_int_equal(bw_secret_new(&f->c.salt, 32), 0);
	f->tee = bw_jwk_new(BW_JWK_EC_P256);
	assert_int_equal(bw_jwk_public(f->tee, &f->jwk), 0);
}

static void fixture_free(struct fixture *f)
{
	bw_ks_ctx_free_cache(&f->c);
	bw_ks_policy_free(&f->c.policy);
	bw_ks_sessions_free(f->c.sessions);
	EVP_PKEY_free(f->c.signing_key);
	bw_secret_free(&f->c.master);
	bw_secret_free(&f->c.salt);
	EVP_PKEY_free(f->tee);
	json_object_put(f->jwk);
}

static char *attestation(struct fixture *f, const char *nonce, const char *bind_nonce)
{
	uint8_t rd[48];
	struct json_object *ev, *m = json_object_new_object(), *rt = json_object_new_object(),
				*te = json_object_new_object();
	char *s;

	assert_int_equal(bw_kbs_report_data(f->jwk, bind_nonce, rd), 0);
	assert_int_equal(bw_sample_evidence(rd, sizeof(rd), &ev), 0);
	json_object_object_add(rt, "nonce", json_object_new_string(nonce));
	json_object_object_add(rt, "tee-pubkey", json_object_get(f->jwk));
	json_object_object_add(te, "primary_evidence", ev);
	json_object_object_add(te, "additional_evidence", json_object_new_string(""));
	json_object_object_add(m, "runtime-data", rt);
	json_object_object_add(m, "tee-evidence", te);
	s = strdup(json_object_to_json_string(m));
	json_object_put(m);
	return s;
}

static void handshake(struct fixture *f, char *cookie, char *nonce)
{
	const char *req = "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{}}";
	struct bw_ks_reply r = { 0 };
	struct json_object *o;

	bw_ks_handle_auth(&f->c, "10.0.0.1", req, strlen(req), 1000, &r);
	assert_int_equal(r.status, 200);
	strcpy(cookie, r.set_cookie);
	o = json_tokener_parse(r.body);
	strcpy(nonce, bw_json_str(o, "nonce"));
	json_object_put(o);
	free(r.body);
}

static void handlers_sample_flow_and_rejections(void **state)
{
	struct fixture f;
	char cookie[65], nonce[64], err[BW_ERR_LEN];
	_cleanup_free_ char *att = NULL, *wrong = NULL;
	struct bw_ks_reply r = { 0 };
	struct bw_secret key = { 0 };
	(void)state;

	fixture_init(&f, true);
	handshake(&f, cookie, nonce);
	att = attestation(&f, nonce, nonce);
	bw_ks_handle_attest(&f.c, cookie, att, strlen(att), 1001, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	r.body = NULL;
	/* Replay of the same attestation on the same session: nonce already used. */
	bw_ks_handle_attest(&f.c, cookie, att, strlen(att), 1002, &r);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "already used"));
	free(r.body);
	r.body = NULL;
	/* The cookie's session serves the resource, encrypted to the tee key. */
	bw_ks_handle_resource(&f.c, cookie, NULL, "bulwark/volume/v1", 1003, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(bw_jwe_decrypt(f.tee, r.body, strlen(r.body), &key, err, sizeof(err)), 0);
	assert_int_equal(key.len, 32);
	bw_secret_free(&key);
	free(r.body);
	r.body = NULL;
	bw_ks_handle_resource(&f.c, cookie, NULL, "bulwark/statedisk/n1", 1003, &r);
	assert_int_equal(r.status, 403);
	free(r.body);
	r.body = NULL;
	/* Evidence bound to another nonce, on a fresh session. */
	handshake(&f, cookie, nonce);
	wrong = attestation(&f, nonce, "another nonce");
	bw_ks_handle_attest(&f.c, cookie, wrong, strlen(wrong), 1004, &r);
	assert_int_equal(r.status, 401);
	free(r.body);
	fixture_free(&f);
}

/* A bearer token signed by the fixture's service key, told apart by n. */
static char *bearer_token(struct fixture *f, int n, time_t now)
{
	struct json_object *t = json_object_new_object(), *rules = json_object_new_array();
	char *tok = NULL;

	json_object_array_add(rules, json_object_new_string(f->c.policy.rules[0].ref));
	json_object_object_add(t, "iss", json_object_new_string(BW_KS_ISSUER));
	json_object_object_add(t, "iat", json_object_new_int64(now));
	json_object_object_add(t, "exp", json_object_new_int64(now + 60));
	json_object_object_add(t, "tee", json_object_new_string("sample"));
	json_object_object_add(t, "tee-pubkey", json_object_get(f->jwk));
	json_object_object_add(t, "rules", rules);
	json_object_object_add(t, "n", json_object_new_int(n));
	assert_int_equal(bw_jwt_sign(f->c.signing_key, t, &tok), 0);
	json_object_put(t);
	return tok;
}

static int bearer_fetch(struct fixture *f, const char *tok, time_t now)
{
	struct bw_ks_reply r = { 0 };

	bw_ks_handle_resource(&f->c, NULL, tok, "bulwark/volume/v1", now, &r);
	free(r.body);
	return r.status;
}

/* The verified-token cache: tokens whose hashes share a set all stay verified (direct-mapped
 * slots evicted each other on every fetch), the least recently used goes when the set is full,
 * and expiry still applies to a cached token. Cached = served after the service's signing key
 * changed (a token verified afresh would be refused). */
static void handlers_token_cache_sets(void **state)
{
	struct fixture f;
	char *tok[5] = { 0 }, *by_set[1024][5] = { { 0 } };
	int count[1024] = { 0 }, full = -1;
	EVP_PKEY *old;
	(void)state;

	fixture_init(&f, true);
	/* Five tokens of one set (1024 sets, by the first two bytes of SHA-256 of the token). */
	for (int n = 0; full < 0 && n < 50000; n++) {
		char *t = bearer_token(&f, n, 1000);
		uint8_t h[32];
		int set;

		EVP_Digest(t, strlen(t), h, NULL, EVP_sha256(), NULL);
		set = (h[0] | h[1] << 8) % 1024;
		by_set[set][count[set]++] = t;
		if (count[set] == 5)
			full = set;
	}
	assert_true(full >= 0);
	memcpy(tok, by_set[full], sizeof(tok));
	for (int i = 0; i < 4; i++)
		assert_int_equal(bearer_fetch(&f, tok[i], 1001), 200);
	old = f.c.signing_key;
	f.c.signing_key = bw_jwk_new(BW_JWK_EC_P256);
	/* All four of the set are still verified: served under the new key, in any order. */
	for (int round = 0; round < 2; round++)
		for (int i = 3; i >= 0; i--)
			assert_int_equal(bearer_fetch(&f, tok[i], 1002), 200);
	/* A fifth token of the set verifies under the new key and evicts the least recently used
	 * (tok[3]; tok[0] was used last). */
	EVP_PKEY_free(old);
	free(tok[4]);
	for (int n = 50000;; n++) {
		uint8_t h[32];

		tok[4] = bearer_token(&f, n, 1000);
		EVP_Digest(tok[4], strlen(tok[4]), h, NULL, EVP_sha256(), NULL);
		if ((h[0] | h[1] << 8) % 1024 == full)
			break;
		free(tok[4]);
	}
	assert_int_equal(bearer_fetch(&f, tok[4], 1003), 200);
	assert_int_equal(bearer_fetch(&f, tok[3], 1003), 401);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bearer_fetch(&f, tok[i], 1003), 200);
	/* Expired: refused though cached. */
	assert_int_equal(bearer_fetch(&f, tok[0], 1061), 401);
	for (int s = 0; s < 1024; s++)
		for (int i = 0; i < count[s]; i++)
			if (!(s == full && i == 4))
				free(by_set[s][i]);
	free(tok[4]);
	fixture_free(&f);
}

static void handlers_sample_disabled(void **state)
{
	struct fixture f;
	char cookie[65], nonce[64];
	_cleanup_free_ char *att = NULL;
	struct bw_ks_reply r = { 0 };
	(void)state;

	fixture_init(&f, false);
	handshake(&f, cookie, nonce);
	att = attestation(&f, nonce, nonce);
	bw_ks_handle_attest(&f.c, cookie, att, strlen(att), 1001, &r);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "disabled"));
	free(r.body);
	fixture_free(&f);
}

/* jwcrypto (python3-jwcrypto) encrypts to our public JWK; the client library decrypts. */
static void jwcrypto_encrypts_client_decrypts(enum bw_jwk_type type, const char *alg)
{
	EVP_PKEY *k = bw_jwk_new(type);
	struct json_object *jwk = NULL;
	char path[] = "/tmp/bw-jwk-XXXXXX", cmd[512], err[BW_ERR_LEN];
	_cleanup_free_ char *out = NULL;
	struct bw_secret pt = { 0 };
	size_t n = 0;
	FILE *f, *p;
	int fd;

	if (access("/usr/bin/python3", X_OK) || system("/usr/bin/python3 -c 'import jwcrypto' 2>/dev/null")) {
		skip(); /* a failure under CI=true: tests/run turns every skip into one */
	}
	assert_int_equal(bw_jwk_public(k, &jwk), 0);
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(json_object_to_json_string(jwk), f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import sys,json\n"
		 "from jwcrypto import jwk, jwe\n"
		 "k = jwk.JWK(**json.load(open(sys.argv[1])))\n"
		 "e = jwe.JWE(b\"secret from jwcrypto 0123456789\", json.dumps({\"alg\": sys.argv[2], \"enc\": \"A256GCM\"}))\n"
		 "e.add_recipient(k)\n"
		 "print(e.serialize())' %s %s",
		 path, alg);
	p = popen(cmd, "r");
	assert_non_null(p);
	out = calloc(1, 65536);
	n = fread(out, 1, 65535, p);
	assert_int_equal(pclose(p), 0);
	unlink(path);
	assert_true(n > 0);
	if (bw_jwe_decrypt(k, out, strlen(out), &pt, err, sizeof(err)) < 0)
		fail_msg("%s: %s", err, out);
	assert_int_equal(pt.len, 31);
	assert_memory_equal(pt.data, "secret from jwcrypto 0123456789", 31);
	bw_secret_free(&pt);
	json_object_put(jwk);
	EVP_PKEY_free(k);
}

static void jwcrypto_ec(void **state) { (void)state; jwcrypto_encrypts_client_decrypts(BW_JWK_EC_P256, "ECDH-ES+A256KW"); }
static void jwcrypto_rsa(void **state) { (void)state; jwcrypto_encrypts_client_decrypts(BW_JWK_RSA3072, "RSA-OAEP-256"); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64_round_trip),
		cmocka_unit_test(jcs_canonical),
		cmocka_unit_test(report_data_is_sha384_of_jcs),
		cmocka_unit_test(jwe_ec),
		cmocka_unit_test(jwe_rsa),
		cmocka_unit_test(jwk_rejects_off_curve_and_rsa1_5),
		cmocka_unit_test(jwt_verify),
		cmocka_unit_test(jcs_integer_range),
		cmocka_unit_test(json_strict),
		cmocka_unit_test(rsa_tee_pubkey_validated),
		cmocka_unit_test(jwe_crit_and_zip_refused),
		cmocka_unit_test(resource_paths),
		cmocka_unit_test(policy_parse_and_match),
		cmocka_unit_test(sessions),
		cmocka_unit_test(sessions_flood),
		cmocka_unit_test(tsm_request),
		cmocka_unit_test(handlers_sample_flow_and_rejections),
		cmocka_unit_test(handlers_sample_disabled),
		cmocka_unit_test(handlers_token_cache_sets),
		cmocka_unit_test(jwcrypto_ec),
		cmocka_unit_test(jwcrypto_rsa),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
