// SPDX-License-Identifier: GPL-2.0-only
/*
 * TPM quote evidence through tpm2-tss ESAPI: read the AK's public area, quote SHA-256 PCRs 0-23
 * with the report data as qualifying data, read the PCR values the quote covers, and package
 * everything as the Confidential Containers TPM attester does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>
#include "common/common.h"
#include "tpm/internal.h"
#include "tpm/tpm.h"

/*
 * tpm2-tss is loaded on first use: the `bulwark` CLI links none of it, so commands that never
 * quote (a volume opened with a key file) do not pay for it at start-up. Calls below go through
 * these tables under tpm2-tss's own names. (verify.c, used by the key service, links tss2-mu.)
 */
#define ESYS_FNS(X) X(Esys_Initialize) X(Esys_Finalize) X(Esys_Free) X(Esys_PCR_Read) X(Esys_Quote) \
	X(Esys_ReadPublic) X(Esys_TR_Close) X(Esys_TR_FromTPMPublic)
#define MU_FNS(X) X(Tss2_MU_TPMS_ATTEST_Unmarshal) X(Tss2_MU_TPMT_SIGNATURE_Marshal)
#define RC_FNS(X) X(Tss2_RC_Decode)
#define TCTILDR_FNS(X) X(Tss2_TctiLdr_Initialize) X(Tss2_TctiLdr_Finalize)
#define ALL_FNS(X) ESYS_FNS(X) MU_FNS(X) RC_FNS(X) TCTILDR_FNS(X)
static struct {
#define X(f) __typeof__(f) *f;
	ALL_FNS(X)
#undef X
} tss;
#define X(f) { #f, (void **)&tss.f },
static const struct bw_dl_sym esys_syms[] = { ESYS_FNS(X) { NULL, NULL } };
static const struct bw_dl_sym mu_syms[] = { MU_FNS(X) { NULL, NULL } };
static const struct bw_dl_sym rc_syms[] = { RC_FNS(X) { NULL, NULL } };
static const struct bw_dl_sym tctildr_syms[] = { TCTILDR_FNS(X) { NULL, NULL } };
#undef X
static struct bw_dl_lib tss_libs[] = {
	{ .soname = "libtss2-rc.so.0", .package = "libtss2-rc0", .syms = rc_syms },
	{ .soname = "libtss2-mu.so.0", .package = "libtss2-mu0", .syms = mu_syms },
	{ .soname = "libtss2-tctildr.so.0", .package = "libtss2-tctildr0", .syms = tctildr_syms },
	{ .soname = "libtss2-esys.so.0", .package = "libtss2-esys-3.0.2-0", .syms = esys_syms },
};
#define Esys_Initialize tss.Esys_Initialize
#define Esys_Finalize tss.Esys_Finalize
#define Esys_Free tss.Esys_Free
#define Esys_PCR_Read tss.Esys_PCR_Read
#define Esys_Quote tss.Esys_Quote
#define Esys_ReadPublic tss.Esys_ReadPublic
#define Esys_TR_Close tss.Esys_TR_Close
#define Esys_TR_FromTPMPublic tss.Esys_TR_FromTPMPublic
#define Tss2_MU_TPMS_ATTEST_Unmarshal tss.Tss2_MU_TPMS_ATTEST_Unmarshal
#define Tss2_MU_TPMT_SIGNATURE_Marshal tss.Tss2_MU_TPMT_SIGNATURE_Marshal
#define Tss2_RC_Decode tss.Tss2_RC_Decode
#define Tss2_TctiLdr_Initialize tss.Tss2_TctiLdr_Initialize
#define Tss2_TctiLdr_Finalize tss.Tss2_TctiLdr_Finalize

int bw_tpm_load(char *err, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(tss_libs); i++) {
		int r = bw_dl_load(&tss_libs[i], err, len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A PCR may be extended between our quote and our PCR_Read; then quote again. */
#define QUOTE_ATTEMPTS 3

struct tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	char *err; /* the caller's error buffer */
	size_t errlen;
};

static void tpm_close(struct tpm *t)
{
	if (t->esys)
		Esys_Finalize(&t->esys);
	if (t->tcti)
		Tss2_TctiLdr_Finalize(&t->tcti);
}

static void esys_freep(void *p) { Esys_Free(*(void **)p); }
#define _cleanup_esys_ __attribute__((cleanup(esys_freep)))

/* TPM and TCTI failures are reported with tss2-rc's decoding; callers see -EIO. */
static int tss_err(struct tpm *t, const char *what, TSS2_RC rc)
{
	bw_errf(t->err, t->errlen, -EIO, "tpm: %s: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
	return -EIO;
}

int bw_tpm_present(const char *tcti)
{
	if (!tcti)
		return access("/dev/tpmrm0", F_OK) == 0 || access("/dev/tpm0", F_OK) == 0 ? 0 : -ENODEV;
	if (!strcmp(tcti, "device"))
		return access("/dev/tpm0", F_OK) == 0 ? 0 : -ENODEV;
	if (!strncmp(tcti, "device:", 7))
		return access(tcti + 7, F_OK) == 0 ? 0 : -ENODEV;
	return 0;
}

static int tpm_open(struct tpm *t, const char *tcti)
{
	TSS2_RC rc;

	if (bw_tpm_present(tcti) < 0)
		return bw_errf(t->err, t->errlen, -ENODEV, "tpm: no TPM device (%s)", tcti ? tcti : "/dev/tpmrm0, /dev/tpm0");
	/* tpm2-tss logs every failure on stderr by itself, layer after layer; we report one line with
	 * the decoded code instead. TSS2_LOG set by the operator still wins. */
	setenv("TSS2_LOG", "all+NONE", 0);
	if (bw_tpm_load(t->err, t->errlen) < 0)
		return -ELIBACC;
	/* The kernel's resource manager when there is one, so we share the TPM with others. */
	if (!tcti)
		tcti = access("/dev/tpmrm0", F_OK) == 0 ? "device:/dev/tpmrm0" : "device:/dev/tpm0";
	rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
	if (rc)
		return tss_err(t, tcti, rc);
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc)
		return tss_err(t, "Esys_Initialize", rc);
	return 0;
}

/* TPM2_RC_HANDLE in any handle position: nothing persisted there. */
static bool rc_no_handle(TSS2_RC rc)
{
	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) &&
	       (rc & 0x3f) == (TPM2_RC_HANDLE & 0x3f);
}

static int rsa_pkey(const TPMT_PUBLIC *p, EVP_PKEY_CTX *ctx, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	uint32_t e = p->parameters.rsaDetail.exponent ? p->parameters.rsaDetail.exponent : 65537;
	BIGNUM *n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
	BIGNUM *bne = BN_new();
	OSSL_PARAM *params = NULL;
	int r = -ENOMEM;

	if (n && bne && BN_set_word(bne, e) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bne) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1)
		r = EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1 ? 0 : -EINVAL;
	OSSL_PARAM_free(params);
	BN_free(n);
	BN_free(bne);
	return r;
}

static int ec_pkey(const TPMT_PUBLIC *p, EVP_PKEY_CTX *ctx, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	const TPMS_ECC_POINT *pt = &p->unique.ecc;
	const char *group;
	size_t flen;
	uint8_t point[1 + 2 * 48] = { 0x04 };
	OSSL_PARAM *params = NULL;
	int r = -ENOMEM;

	switch (p->parameters.eccDetail.curveID) {
	case TPM2_ECC_NIST_P256: group = "prime256v1"; flen = 32; break;
	case TPM2_ECC_NIST_P384: group = "secp384r1"; flen = 48; break;
	default: return -ENOTSUP;
	}
	if (pt->x.size > flen || pt->y.size > flen)
		return -EINVAL;
	/* Uncompressed point; TPM coordinates may come without leading zeros. */
	memcpy(point + 1 + flen - pt->x.size, pt->x.buffer, pt->x.size);
	memcpy(point + 1 + 2 * flen - pt->y.size, pt->y.buffer, pt->y.size);
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * flen) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1)
		r = EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1 ? 0 : -EINVAL;
	OSSL_PARAM_free(params);
	return r;
}

/* The AK's public area as DER SubjectPublicKeyInfo (what the evidence carries). */
static int public_to_spki(const TPMT_PUBLIC *p, uint8_t **der, size_t *len)
{
	bool rsa = p->type == TPM2_ALG_RSA;
	EVP_PKEY_CTX *ctx;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	_cleanup_pkey_ EVP_PKEY *k = NULL;
	int r, n;

	if (!rsa && p->type != TPM2_ALG_ECC) {
		OSSL_PARAM_BLD_free(bld);
		return -ENOTSUP;
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL);
	r = ctx && bld ? (rsa ? rsa_pkey : ec_pkey)(p, ctx, bld, &k) : -ENOMEM;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_BLD_free(bld);
	if (r < 0)
		return r;
	*der = NULL;
	n = i2d_PUBKEY(k, der);
	if (n <= 0)
		return -ENOMEM;
	*len = (size_t)n;
	return 0;
}

static int read_ak(struct tpm *t, uint32_t handle, ESYS_TR *ak, TPMT_PUBLIC *pub)
{
	_cleanup_esys_ TPM2B_PUBLIC *out = NULL;
	TSS2_RC rc;

	rc = Esys_TR_FromTPMPublic(t->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ak);
	if (rc_no_handle(rc)) {
		return bw_errf(t->err, t->errlen, -ENOENT, "tpm: no key at handle 0x%08x", handle);
	}
	if (rc)
		return tss_err(t, "reading the AK handle", rc);
	rc = Esys_ReadPublic(t->esys, *ak, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &out, NULL,
			     NULL);
	if (rc)
		return tss_err(t, "Esys_ReadPublic", rc);
	*pub = out->publicArea;
	return 0;
}

/* PCR_Read returns at most 8 digests per call: ask again for whatever it left out. */
static int read_pcrs(struct tpm *t, uint8_t pcrs[][32])
{
	TPML_PCR_SELECTION want;
	int left = BW_TPM_PCRS;

	bw_tpm_pcr_selection(&want);
	while (left > 0) {
		_cleanup_esys_ TPML_PCR_SELECTION *got = NULL;
		_cleanup_esys_ TPML_DIGEST *d = NULL;
		uint32_t k = 0;
		int i;
		TSS2_RC rc;

		rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &want, NULL,
				   &got, &d);
		if (rc)
			return tss_err(t, "Esys_PCR_Read", rc);
		if (d->count == 0 || got->count != 1 || got->pcrSelections[0].hash != TPM2_ALG_SHA256)
			goto odd;
		for (i = 0; i < BW_TPM_PCRS; i++) {
			uint8_t bit = (uint8_t)(1u << (i % 8));

			if (!(got->pcrSelections[0].pcrSelect[i / 8] & bit))
				continue;
			if (k >= d->count || d->digests[k].size != 32 ||
			    !(want.pcrSelections[0].pcrSelect[i / 8] & bit))
				goto odd;
			memcpy(pcrs[i], d->digests[k++].buffer, 32);
			want.pcrSelections[0].pcrSelect[i / 8] &= (uint8_t)~bit;
			left--;
		}
		if (k != d->count)
			goto odd;
	}
	return 0;
odd:
	return bw_errf(t->err, t->errlen, -EIO, "tpm: PCR_Read returned an unexpected selection (is the SHA-256 bank active?)");
}

static int sig_scheme(const TPMT_PUBLIC *p, TPMT_SIG_SCHEME *s)
{
	memset(s, 0, sizeof(*s));
	if (p->type == TPM2_ALG_RSA)
		s->scheme = TPM2_ALG_RSASSA;
	else if (p->type == TPM2_ALG_ECC)
		s->scheme = TPM2_ALG_ECDSA;
	else
		return -ENOTSUP;
	s->details.any.hashAlg = TPM2_ALG_SHA256;
	return 0;
}

struct quote {
	uint8_t pcrs[BW_TPM_PCRS][32];
	TPM2B_ATTEST *msg;
	TPMT_SIGNATURE *sig;
};

static void quote_clear(struct quote *q)
{
	Esys_Free(q->msg);
	Esys_Free(q->sig);
	q->msg = NULL;
	q->sig = NULL;
}

/* Does the quote's pcrDigest cover the values we read? 1 yes, 0 no, negative on error. */
static int quote_matches(const struct quote *q)
{
	TPMS_ATTEST a;
	size_t off = 0;
	uint8_t d[32];

	if (Tss2_MU_TPMS_ATTEST_Unmarshal(q->msg->attestationData, q->msg->size, &off, &a) ||
	    bw_tpm_pcr_digest(q->pcrs, d) < 0)
		return -EIO;
	return a.attested.quote.pcrDigest.size == 32 &&
	       !memcmp(a.attested.quote.pcrDigest.buffer, d, 32);
}

static int do_quote(struct tpm *t, ESYS_TR ak, const TPMT_PUBLIC *pub, const uint8_t *rd,
		    size_t len, struct quote *q)
{
	TPM2B_DATA nonce = { .size = BW_TPM_NONCE_LEN };
	TPML_PCR_SELECTION sel;
	TPMT_SIG_SCHEME scheme;
	int attempt, r;

	bw_tpm_nonce(rd, len, nonce.buffer);
	bw_tpm_pcr_selection(&sel);
	r = sig_scheme(pub, &scheme);
	for (attempt = 0; r == 0 && attempt < QUOTE_ATTEMPTS; attempt++) {
		TSS2_RC rc;

		quote_clear(q);
		rc = Esys_Quote(t->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &nonce,
				&scheme, &sel, &q->msg, &q->sig);
		if (rc)
			return tss_err(t, "Esys_Quote", rc);
		r = read_pcrs(t, q->pcrs);
		if (r == 0)
			r = quote_matches(q);
		if (r == 1)
			return 0;
	}
	if (r == 0)
		r = bw_errf(t->err, t->errlen, -EAGAIN, "tpm: PCRs kept changing during %d quotes", QUOTE_ATTEMPTS);
	return r;
}

static int add_b64(struct json_object *o, const char *key, const uint8_t *data, size_t len)
{
	_cleanup_free_ char *s = NULL;
	struct json_object *v = bw_base64_encode_alloc(data, len, 0, &s) == 0 ? json_object_new_string(s) : NULL;

	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int build_json(const struct quote *q, const uint8_t *spki, size_t spki_len,
		      struct json_object **out)
{
	uint8_t sig[sizeof(TPMT_SIGNATURE)];
	size_t sig_len = 0;
	struct json_object *ev = json_object_new_object(), *tq = json_object_new_object();
	struct json_object *pcrs = json_object_new_array();
	int i, r = -ENOMEM;

	if (Tss2_MU_TPMT_SIGNATURE_Marshal(q->sig, sig, sizeof(sig), &sig_len)) {
		r = -EIO;
		goto out;
	}
	if (!ev || !tq || !pcrs)
		goto out;
	for (i = 0; i < BW_TPM_PCRS; i++) {
		struct json_object *v;
		char hex[65];

		bw_hex_encode(q->pcrs[i], 32, hex);
		v = json_object_new_string(hex);
		if (!v || json_object_array_add(pcrs, v)) {
			json_object_put(v);
			goto out;
		}
	}
	if (add_b64(tq, "signature", sig, sig_len) || add_b64(tq, "message",
	    q->msg->attestationData, q->msg->size))
		goto out;
	if (json_object_object_add(tq, "pcrs", pcrs))
		goto out;
	pcrs = NULL;
	if (json_object_object_add(ev, "tpm_quote", tq))
		goto out;
	tq = NULL;
	if (add_b64(ev, "ak_public", spki, spki_len))
		goto out;
	*out = TAKE_PTR(ev);
	r = 0;
out:
	json_object_put(pcrs);
	json_object_put(tq);
	json_object_put(ev);
	return r;
}

int bw_tpm_evidence(const struct bw_tpm_opts *o, const uint8_t *report_data, size_t len,
		    struct json_object **evidence, char *err, size_t errlen)
{
	struct tpm t = { .err = err, .errlen = errlen };
	struct quote q = { 0 };
	TPMT_PUBLIC pub;
	ESYS_TR ak = ESYS_TR_NONE;
	_cleanup_openssl_ uint8_t *spki = NULL;
	size_t spki_len = 0;
	int r;

	if (!o || !evidence || (len && !report_data))
		return -EINVAL;
	r = tpm_open(&t, o->tcti);
	if (r == 0)
		r = read_ak(&t, o->ak_handle ? o->ak_handle : BW_TPM_AK_HANDLE, &ak, &pub);
	if (r == 0) {
		r = public_to_spki(&pub, &spki, &spki_len);
		if (r == -ENOTSUP)
			bw_errf(err, errlen, r, "tpm: the AK is neither RSA nor ECC P-256/P-384");
	}
	if (r == 0)
		r = do_quote(&t, ak, &pub, report_data, len, &q);
	if (r == 0)
		r = build_json(&q, spki, spki_len, evidence);
	quote_clear(&q);
	if (ak != ESYS_TR_NONE)
		Esys_TR_Close(t.esys, &ak);
	tpm_close(&t);
	return r;
}
