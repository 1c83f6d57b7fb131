// SPDX-License-Identifier: GPL-2.0-only
/*
 * Verification of TPM quote evidence. Needs no TPM: json-c for the envelope, libtss2-mu for the
 * TPM structures, OpenSSL 3 for the AK's signature. Everything the evidence carries is
 * attacker-controlled until the signature verifies, so every size is bounded before decoding.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>
#include "common/common.h"
#include "tpm/internal.h"
#include "tpm/tpm.h"

/* Generous upper bounds: an RSA-4096 quote is ~150 B of message and 518 B of signature. */
#define MAX_MESSAGE 1024
#define MAX_SIGNATURE 1024
#define MAX_SPKI 2048

struct evidence {
	uint8_t message[MAX_MESSAGE];
	size_t message_len;
	uint8_t signature[MAX_SIGNATURE];
	size_t signature_len;
	uint8_t spki[MAX_SPKI];
	size_t spki_len;
	uint8_t pcrs[BW_TPM_PCRS][32];
};

/* Only the keys we know, each exactly once (json-c keeps the last of duplicates). */
static int only_keys(struct json_object *o, const char *const *keys, size_t n, const char **bad)
{
	json_object_object_foreach(o, k, v) {
		size_t i;

		(void)v;
		for (i = 0; i < n && strcmp(k, keys[i]); i++)
			;
		if (i == n) {
			*bad = k;
			return -EINVAL;
		}
	}
	return json_object_object_length(o) == (int)n ? 0 : -EINVAL;
}

static int get_b64(struct json_object *o, const char *key, uint8_t *out, size_t max,
		   size_t *len, char *err, size_t errlen)
{
	struct json_object *v;
	int r;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return bw_errf(err, errlen, -EINVAL, "%s: missing or not a string", key);
	r = bw_base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), 0, out, max, len);
	if (r == -EMSGSIZE)
		return bw_errf(err, errlen, -EINVAL, "%s: longer than %zu bytes", key, max);
	if (r < 0 || *len == 0)
		return bw_errf(err, errlen, -EINVAL, "%s: not base64", key);
	return 0;
}

static int get_pcrs(struct json_object *q, uint8_t pcrs[][32], char *err, size_t errlen)
{
	struct json_object *a;
	size_t i;

	if (!json_object_object_get_ex(q, "pcrs", &a) || !json_object_is_type(a, json_type_array))
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.pcrs: missing or not an array");
	if (json_object_array_length(a) != BW_TPM_PCRS)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.pcrs: %zu values, expected %d",
			    json_object_array_length(a), BW_TPM_PCRS);
	for (i = 0; i < BW_TPM_PCRS; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_string) ||
		    bw_hex_decode(json_object_get_string(v), pcrs[i], 32) < 0)
			return bw_errf(err, errlen, -EINVAL,
				    "tpm_quote.pcrs[%zu]: not 64 hex digits", i);
	}
	return 0;
}

static int parse(struct json_object *ev, struct evidence *e, char *err, size_t errlen)
{
	static const char *const top[] = { "tpm_quote", "ak_public" };
	static const char *const quote[] = { "signature", "message", "pcrs" };
	const char *bad = NULL;
	struct json_object *q;
	int r;

	if (!ev || !json_object_is_type(ev, json_type_object))
		return bw_errf(err, errlen, -EINVAL, "evidence: not a JSON object");
	if (only_keys(ev, top, 2, &bad) < 0)
		return bw_errf(err, errlen, -EINVAL, "evidence: %s%s", bad ? "unknown key " : "",
			    bad ? bad : "needs exactly tpm_quote and ak_public");
	json_object_object_get_ex(ev, "tpm_quote", &q);
	if (!json_object_is_type(q, json_type_object))
		return bw_errf(err, errlen, -EINVAL, "tpm_quote: not an object");
	if (only_keys(q, quote, 3, &bad) < 0)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote: %s%s", bad ? "unknown key " : "",
			    bad ? bad : "needs exactly signature, message and pcrs");
	r = get_b64(ev, "ak_public", e->spki, sizeof(e->spki), &e->spki_len, err, errlen);
	if (r == 0)
		r = get_b64(q, "message", e->message, sizeof(e->message), &e->message_len, err,
			    errlen);
	if (r == 0)
		r = get_b64(q, "signature", e->signature, sizeof(e->signature), &e->signature_len,
			    err, errlen);
	return r ? r : get_pcrs(q, e->pcrs, err, errlen);
}

/* The AK: RSA of at least 2048 bits, or EC on P-256 / P-384. The whole buffer must be the key. */
static int load_ak(const struct evidence *e, EVP_PKEY **out, char *err, size_t errlen)
{
	const unsigned char *p = e->spki;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)e->spki_len);
	char group[32] = "";

	if (!k || p != e->spki + e->spki_len) {
		EVP_PKEY_free(k);
		return bw_errf(err, errlen, -EINVAL, "ak_public: not a DER SubjectPublicKeyInfo");
	}
	if (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) >= 2048 &&
	    EVP_PKEY_get_bits(k) <= 8192)
		goto ok;
	if (EVP_PKEY_is_a(k, "EC") &&
	    EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), NULL) &&
	    (!strcmp(group, "prime256v1") || !strcmp(group, "secp384r1")))
		goto ok;
	EVP_PKEY_free(k);
	return bw_errf(err, errlen, -EINVAL, "ak_public: unsupported key (RSA >= 2048 or EC P-256/P-384)");
ok:
	*out = k;
	return 0;
}

static int unmarshal(const struct evidence *e, TPMS_ATTEST *a, TPMT_SIGNATURE *s, char *err,
		     size_t errlen)
{
	size_t off = 0;

	if (Tss2_MU_TPMS_ATTEST_Unmarshal(e->message, e->message_len, &off, a) ||
	    off != e->message_len)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.message: not a TPMS_ATTEST");
	off = 0;
	if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(e->signature, e->signature_len, &off, s) ||
	    off != e->signature_len)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.signature: not a TPMT_SIGNATURE");
	if (a->magic != TPM2_GENERATED_VALUE)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.message: magic 0x%08x is not TPM_GENERATED",
			    a->magic);
	if (a->type != TPM2_ST_ATTEST_QUOTE)
		return bw_errf(err, errlen, -EINVAL, "tpm_quote.message: type 0x%04x is not a quote",
			    a->type);
	return 0;
}

/* The quote must select exactly SHA-256 PCRs 0-23 (bytes past the third must be zero). */
static int check_selection(const TPML_PCR_SELECTION *sel, char *err, size_t errlen)
{
	const TPMS_PCR_SELECTION *s = &sel->pcrSelections[0];
	unsigned int i;

	if (sel->count != 1 || s->hash != TPM2_ALG_SHA256 || s->sizeofSelect < 3)
		goto bad;
	for (i = 0; i < s->sizeofSelect; i++)
		if (s->pcrSelect[i] != (i < 3 ? 0xff : 0))
			goto bad;
	return 0;
bad:
	return bw_errf(err, errlen, -EINVAL, "tpm_quote.message: PCR selection is not SHA-256 0-23");
}

/* TPM ECDSA signatures carry raw r and s; OpenSSL verifies the DER ECDSA-Sig-Value. */
static int ecdsa_der(const TPMS_SIGNATURE_ECC *ecc, unsigned char **der, int *len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(ecc->signatureR.buffer, ecc->signatureR.size, NULL);
	BIGNUM *s = BN_bin2bn(ecc->signatureS.buffer, ecc->signatureS.size, NULL);
	int ret = -ENOMEM;

	if (sig && r && s && ECDSA_SIG_set0(sig, r, s)) {
		r = s = NULL;
		*der = NULL;
		*len = i2d_ECDSA_SIG(sig, der);
		ret = *len > 0 ? 0 : -ENOMEM;
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return ret;
}

static int check_signature(const struct evidence *e, const TPMT_SIGNATURE *s, EVP_PKEY *ak,
			   char *err, size_t errlen)
{
	const unsigned char *sig;
	unsigned char *der = NULL;
	size_t sig_len;
	EVP_MD_CTX *md;
	int ok, len;

	if (s->sigAlg == TPM2_ALG_RSASSA && s->signature.rsassa.hash == TPM2_ALG_SHA256 &&
	    EVP_PKEY_is_a(ak, "RSA")) {
		sig = s->signature.rsassa.sig.buffer;
		sig_len = s->signature.rsassa.sig.size;
	} else if (s->sigAlg == TPM2_ALG_ECDSA && s->signature.ecdsa.hash == TPM2_ALG_SHA256 &&
		   EVP_PKEY_is_a(ak, "EC")) {
		if (ecdsa_der(&s->signature.ecdsa, &der, &len) < 0)
			return bw_errf(err, errlen, -ENOMEM, "out of memory");
		sig = der;
		sig_len = (size_t)len;
	} else {
		return bw_errf(err, errlen, -EINVAL,
			    "tpm_quote.signature: scheme 0x%04x does not fit the AK (RSASSA or ECDSA with SHA-256)",
			    s->sigAlg);
	}
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, ak) == 1 &&
	     EVP_DigestVerify(md, sig, sig_len, e->message, e->message_len) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	if (!ok)
		return bw_errf(err, errlen, -EBADMSG,
			    "tpm_quote.signature: does not verify with ak_public");
	return 0;
}

static int check_contents(const struct evidence *e, const TPMS_ATTEST *a,
			  const uint8_t *report_data, size_t len, char *err, size_t errlen)
{
	uint8_t nonce[BW_TPM_NONCE_LEN], digest[32];
	const TPM2B_DIGEST *qd = &a->attested.quote.pcrDigest;

	bw_tpm_nonce(report_data, len, nonce);
	if (a->extraData.size != sizeof(nonce) ||
	    CRYPTO_memcmp(a->extraData.buffer, nonce, sizeof(nonce)))
		return bw_errf(err, errlen, -EBADMSG,
			    "tpm_quote.message: nonce (extraData) differs from the report data");
	if (bw_tpm_pcr_digest(e->pcrs, digest) < 0)
		return bw_errf(err, errlen, -EIO, "SHA-256 failed");
	if (qd->size != sizeof(digest) || memcmp(qd->buffer, digest, sizeof(digest)))
		return bw_errf(err, errlen, -EBADMSG,
			    "tpm_quote.pcrs: PCR digest differs from the quoted pcrDigest");
	return 0;
}

static int fill_claims(const struct evidence *e, struct bw_tpm_claims *c)
{
	uint8_t id[32];
	unsigned int n = 0;

	if (!EVP_Digest(e->spki, e->spki_len, id, &n, EVP_sha256(), NULL))
		return -EIO;
	bw_hex_encode(id, sizeof(id), c->ak_id);
	memcpy(c->pcrs, e->pcrs, sizeof(c->pcrs));
	return 0;
}

int bw_tpm_verify(struct json_object *evidence, const uint8_t *report_data, size_t len,
		  struct bw_tpm_claims *claims, char *err, size_t errlen)
{
	struct evidence *e;
	TPMS_ATTEST attest;
	TPMT_SIGNATURE sig;
	EVP_PKEY *ak = NULL;
	int r;

	if (claims)
		memset(claims, 0, sizeof(*claims));
	if (!claims || (len && !report_data))
		return bw_errf(err, errlen, -EINVAL, "invalid arguments");
	e = calloc(1, sizeof(*e));
	if (!e)
		return bw_errf(err, errlen, -ENOMEM, "out of memory");
	r = parse(evidence, e, err, errlen);
	if (r == 0)
		r = load_ak(e, &ak, err, errlen);
	if (r == 0)
		r = unmarshal(e, &attest, &sig, err, errlen);
	if (r == 0)
		r = check_selection(&attest.attested.quote.pcrSelect, err, errlen);
	/* Signature first: until it verifies, the message's contents mean nothing. */
	if (r == 0)
		r = check_signature(e, &sig, ak, err, errlen);
	if (r == 0)
		r = check_contents(e, &attest, report_data, len, err, errlen);
	if (r == 0 && fill_claims(e, claims) < 0)
		r = bw_errf(err, errlen, -EIO, "SHA-256 failed");
	EVP_PKEY_free(ak);
	free(e);
	if (r < 0)
		memset(claims, 0, sizeof(*claims));
	return r;
}
