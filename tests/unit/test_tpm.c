// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tpm component against a real software TPM: swtpm in socket mode with AKs created by
 * tpm2-tools (tests/lib-tpm.sh). Evidence from bw_tpm_evidence must verify with bw_tpm_verify;
 * every tampering must fail with its specific error; claims must expose AK and PCR changes.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>
#include "common/common.h"
#include "tpm/internal.h"
#include "tpm/tpm.h"

#define AK_RSA 0x81010002u
#define AK_ECC 0x81010003u
#define AK_RSA2 0x81010004u

static struct {
	char top[1024];
	char dir[64];
	char tcti[128];
} g;

static uint8_t rd[48];

/* Run a shell snippet with tests/lib-tpm.sh loaded and the test's TPM selected. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096], snippet[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(snippet, sizeof(snippet), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd),
		 "bash -c '. \"%s/tests/lib-tpm.sh\"; TPM_DIR=%s; export TPM2TOOLS_TCTI=\"%s\"; %s'",
		 g.top, g.dir, g.tcti, snippet);
	return system(cmd);
}

static void pcr_from_tools(int pcr, uint8_t out[32])
{
	char cmd[2048], line[128] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "bash -c '. \"%s/tests/lib-tpm.sh\"; export TPM2TOOLS_TCTI=\"%s\"; tpm_pcr_hex %d'",
		 g.top, g.tcti, pcr);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	pclose(f);
	line[strcspn(line, "\n")] = '\0';
	assert_int_equal(bw_hex_decode(line, out, 32), 0);
}

/* SHA-256 of the AK's DER as tpm2_readpublic wrote it (tpm_create_ak). */
static void ak_id_from_tools(uint32_t handle, char id[65])
{
	char path[PATH_MAX];
	_cleanup_free_ char *der = NULL;
	size_t len;
	uint8_t d[32];
	unsigned int n;

	snprintf(path, sizeof(path), "%s/ak-0x%08x.der", g.dir, handle);
	assert_int_equal(bw_read_file(path, 4096, &der, &len), 0);
	assert_true(EVP_Digest(der, len, d, &n, EVP_sha256(), NULL));
	bw_hex_encode(d, 32, id);
}

static struct json_object *evidence(uint32_t handle, const uint8_t *data, size_t len)
{
	struct bw_tpm_opts o = { .tcti = g.tcti, .ak_handle = handle };
	struct json_object *ev = NULL;

	assert_int_equal(bw_tpm_evidence(&o, data, len, &ev, NULL, 0), 0);
	assert_non_null(ev);
	return ev;
}

static void expect_fail(struct json_object *ev, const uint8_t *data, size_t len, int code,
			const char *what)
{
	struct bw_tpm_claims c;
	char err[BW_ERR_LEN] = "";

	memset(&c, 0xaa, sizeof(c));
	assert_int_equal(bw_tpm_verify(ev, data, len, &c, err, sizeof(err)), code);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not name \"%s\"", err, what);
	/* Nothing of a rejected quote may look like a claim. */
	assert_int_equal(c.ak_id[0], 0);
	assert_int_equal(c.pcrs[0][0], 0);
}

static void expect_ok(struct json_object *ev, const uint8_t *data, size_t len,
		      struct bw_tpm_claims *c)
{
	char err[BW_ERR_LEN] = "";

	if (bw_tpm_verify(ev, data, len, c, err, sizeof(err)) != 0)
		fail_msg("verify failed: %s", err);
}

static struct json_object *quote_of(struct json_object *ev)
{
	return json_object_object_get(ev, "tpm_quote");
}

static struct json_object *copy(struct json_object *ev)
{
	struct json_object *c = NULL;

	assert_int_equal(json_object_deep_copy(ev, &c, NULL), 0);
	return c;
}

/* Decode a base64 field, let edit() change the bytes, encode it back. */
static void edit_b64(struct json_object *parent, const char *key,
		     size_t (*edit)(uint8_t *buf, size_t len))
{
	uint8_t buf[4096];
	const char *in = json_object_get_string(json_object_object_get(parent, key));
	size_t n = 0;
	_cleanup_free_ char *s = NULL;

	assert_int_equal(bw_base64_decode(in, strlen(in), 0, buf, sizeof(buf) - 16, &n), 0);
	assert_true(n > 0);
	assert_int_equal(bw_base64_encode_alloc(buf, edit(buf, n), 0, &s), 0);
	json_object_object_add(parent, key, json_object_new_string(s));
}

static size_t flip_middle(uint8_t *b, size_t n) { b[n / 2] ^= 0x01; return n; }
static size_t flip_last(uint8_t *b, size_t n) { b[n - 1] ^= 0x80; return n; }
static size_t add_byte(uint8_t *b, size_t n) { b[n] = 0; return n + 1; }
static size_t drop_byte(uint8_t *b, size_t n) { (void)b; return n - 1; }

/* Re-marshal the TPMS_ATTEST after fix() changed a field (signature then no longer matters). */
static void (*attest_fix)(TPMS_ATTEST *a);
static size_t remarshal(uint8_t *b, size_t n)
{
	TPMS_ATTEST a;
	size_t off = 0;

	assert_int_equal(Tss2_MU_TPMS_ATTEST_Unmarshal(b, n, &off, &a), 0);
	attest_fix(&a);
	off = 0;
	assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, b, 4096 - 16, &off), 0);
	return off;
}
static void bad_magic(TPMS_ATTEST *a) { a->magic = 0x12345678; }
static void bad_type(TPMS_ATTEST *a) { a->type = TPM2_ST_ATTEST_CERTIFY; }

/* ---- tests ---- */

static void rsa_evidence_verifies(void **state)
{
	struct json_object *ev = evidence(AK_RSA, rd, sizeof(rd));
	struct bw_tpm_claims c;
	char id[65];
	uint8_t p16[32], p23[32];
	(void)state;

	expect_ok(ev, rd, sizeof(rd), &c);
	ak_id_from_tools(AK_RSA, id);
	assert_string_equal(c.ak_id, id);
	/* PCR 16 and 23 were extended in setup; 23 comes from the third PCR_Read call. */
	pcr_from_tools(16, p16);
	pcr_from_tools(23, p23);
	assert_memory_equal(c.pcrs[16], p16, 32);
	assert_memory_equal(c.pcrs[23], p23, 32);
	assert_memory_not_equal(c.pcrs[23], c.pcrs[0], 32);
	json_object_put(ev);
}

static void ecc_evidence_verifies(void **state)
{
	struct json_object *ev = evidence(AK_ECC, rd, sizeof(rd));
	struct bw_tpm_claims c;
	char id[65];
	uint8_t sig[1024];
	size_t off = 0;
	TPMT_SIGNATURE s;
	size_t n = 0;
	const char *b64;
	(void)state;

	expect_ok(ev, rd, sizeof(rd), &c);
	ak_id_from_tools(AK_ECC, id);
	assert_string_equal(c.ak_id, id);
	b64 = json_object_get_string(json_object_object_get(quote_of(ev), "signature"));
	assert_int_equal(bw_base64_decode(b64, strlen(b64), 0, sig, sizeof(sig), &n), 0);
	assert_true(n > 0);
	assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, n, &off, &s), 0);
	assert_int_equal(s.sigAlg, TPM2_ALG_ECDSA);
	json_object_put(ev);
}

static void default_handle_is_0x81010002(void **state)
{
	struct json_object *ev = evidence(0, rd, 32);
	struct bw_tpm_claims c;
	char id[65];
	(void)state;

	expect_ok(ev, rd, 32, &c);
	ak_id_from_tools(AK_RSA, id);
	assert_string_equal(c.ak_id, id);
	json_object_put(ev);
}

static void report_data_truncated_and_padded(void **state)
{
	uint8_t long_rd[48], short_rd[32] = { 0 }, zero[32] = { 0 };
	struct json_object *ev = evidence(AK_RSA, rd, sizeof(rd));
	struct bw_tpm_claims c;
	(void)state;

	/* 48 bytes: only the first 32 are quoted. */
	expect_ok(ev, rd, 32, &c);
	memcpy(long_rd, rd, sizeof(long_rd));
	long_rd[40] ^= 1;
	expect_ok(ev, long_rd, sizeof(long_rd), &c);
	long_rd[0] ^= 1;
	expect_fail(ev, long_rd, sizeof(long_rd), -EBADMSG, "nonce");
	json_object_put(ev);

	/* 10 bytes: zero-padded to 32. */
	ev = evidence(AK_RSA, rd, 10);
	expect_ok(ev, rd, 10, &c);
	memcpy(short_rd, rd, 10);
	expect_ok(ev, short_rd, 32, &c);
	short_rd[10] = 1;
	expect_fail(ev, short_rd, 11, -EBADMSG, "nonce");
	json_object_put(ev);

	/* None: all zero. */
	ev = evidence(AK_RSA, NULL, 0);
	expect_ok(ev, zero, 32, &c);
	expect_fail(ev, rd, 32, -EBADMSG, "nonce");
	json_object_put(ev);
}

static void tampered_message(void **state)
{
	struct json_object *ev = evidence(AK_RSA, rd, 32), *t = copy(ev);
	(void)state;

	edit_b64(quote_of(t), "message", flip_middle);
	expect_fail(t, rd, 32, -EBADMSG, "signature");
	json_object_put(t);
	/* A message with another magic or type is not a quote, signature or not. */
	t = copy(ev);
	attest_fix = bad_magic;
	edit_b64(quote_of(t), "message", remarshal);
	expect_fail(t, rd, 32, -EINVAL, "magic");
	json_object_put(t);
	t = copy(ev);
	attest_fix = bad_type;
	edit_b64(quote_of(t), "message", remarshal);
	expect_fail(t, rd, 32, -EINVAL, "not a quote");
	json_object_put(t);
	json_object_put(ev);
}

static void tampered_signature(void **state)
{
	uint32_t aks[] = { AK_RSA, AK_ECC };
	size_t i;
	(void)state;

	for (i = 0; i < ARRAY_SIZE(aks); i++) {
		struct json_object *ev = evidence(aks[i], rd, 32);

		edit_b64(quote_of(ev), "signature", flip_last);
		expect_fail(ev, rd, 32, -EBADMSG, "signature");
		json_object_put(ev);
	}
}

static void tampered_pcr_value(void **state)
{
	struct json_object *ev = evidence(AK_RSA, rd, 32);
	struct json_object *pcrs = json_object_object_get(quote_of(ev), "pcrs");
	char hex[65];
	(void)state;

	snprintf(hex, sizeof(hex), "%s", json_object_get_string(json_object_array_get_idx(pcrs, 5)));
	hex[0] = hex[0] == '0' ? '1' : '0';
	json_object_array_put_idx(pcrs, 5, json_object_new_string(hex));
	expect_fail(ev, rd, 32, -EBADMSG, "PCR digest");
	json_object_put(ev);
}

static void wrong_nonce(void **state)
{
	struct json_object *ev = evidence(AK_RSA, rd, 32);
	uint8_t other[32];
	(void)state;

	memcpy(other, rd, 32);
	other[31] ^= 0xff;
	expect_fail(ev, other, 32, -EBADMSG, "nonce");
	json_object_put(ev);
}

static void set_ak_public_from(struct json_object *ev, uint32_t handle)
{
	struct json_object *other = evidence(handle, rd, 32);

	json_object_object_add(ev, "ak_public",
			       json_object_get(json_object_object_get(other, "ak_public")));
	json_object_put(other);
}

static void other_ak_key(void **state)
{
	struct json_object *ev = evidence(AK_RSA, rd, 32), *t = copy(ev), *ev2;
	struct bw_tpm_claims c1, c2;
	(void)state;

	/* Someone else's RSA key in place of the signer's: the signature does not verify. */
	set_ak_public_from(t, AK_RSA2);
	expect_fail(t, rd, 32, -EBADMSG, "signature");
	json_object_put(t);
	/* An ECC key under an RSASSA signature does not even fit. */
	t = copy(ev);
	set_ak_public_from(t, AK_ECC);
	expect_fail(t, rd, 32, -EINVAL, "does not fit");
	json_object_put(t);
	/* A genuine quote by another AK verifies, but its ak_id tells it apart. */
	ev2 = evidence(AK_RSA2, rd, 32);
	expect_ok(ev, rd, 32, &c1);
	expect_ok(ev2, rd, 32, &c2);
	assert_string_not_equal(c1.ak_id, c2.ak_id);
	assert_memory_equal(c1.pcrs, c2.pcrs, sizeof(c1.pcrs));
	json_object_put(ev2);
	json_object_put(ev);
}

static void pcr_extended_after_reference(void **state)
{
	struct json_object *ref_ev = evidence(AK_RSA, rd, 32), *ev;
	struct bw_tpm_claims ref, now;
	int i;
	(void)state;

	expect_ok(ref_ev, rd, 32, &ref);
	assert_int_equal(sh("tpm_pcr_extend 12 after-reference >/dev/null"), 0);
	ev = evidence(AK_RSA, rd, 32);
	expect_ok(ev, rd, 32, &now);
	for (i = 0; i < BW_TPM_PCRS; i++) {
		if (i == 12)
			assert_memory_not_equal(now.pcrs[i], ref.pcrs[i], 32);
		else
			assert_memory_equal(now.pcrs[i], ref.pcrs[i], 32);
	}
	assert_string_equal(now.ak_id, ref.ak_id);
	json_object_put(ev);
	json_object_put(ref_ev);
}

/* ---- malformed evidence: each edit must give -EINVAL naming the field ---- */

struct malformed {
	const char *name;
	void (*edit)(struct json_object *ev);
	const char *what;
};

static void set_q(struct json_object *ev, const char *k, struct json_object *v)
{
	json_object_object_add(quote_of(ev), k, v);
}
static void m_no_ak(struct json_object *ev) { json_object_object_del(ev, "ak_public"); }
static void m_extra_top(struct json_object *ev)
{
	json_object_object_add(ev, "eventlog", json_object_new_string(""));
}
static void m_extra_quote(struct json_object *ev) { set_q(ev, "x", json_object_new_int(1)); }
static void m_quote_array(struct json_object *ev)
{
	json_object_object_add(ev, "tpm_quote", json_object_new_array());
}
static void m_msg_number(struct json_object *ev) { set_q(ev, "message", json_object_new_int(7)); }
static void m_msg_not_b64(struct json_object *ev)
{
	set_q(ev, "message", json_object_new_string("/1RDR4AY!!!!"));
}
static void m_msg_unpadded(struct json_object *ev)
{
	set_q(ev, "message", json_object_new_string("/1RDR4A"));
}
static void m_msg_empty(struct json_object *ev) { set_q(ev, "message", json_object_new_string("")); }
static void m_msg_huge(struct json_object *ev)
{
	uint8_t big[1500] = { 0 };
	_cleanup_free_ char *s = NULL;

	assert_int_equal(bw_base64_encode_alloc(big, sizeof(big), 0, &s), 0);

	set_q(ev, "message", json_object_new_string(s));
}
static void m_msg_trailing(struct json_object *ev) { edit_b64(quote_of(ev), "message", add_byte); }
static void m_msg_short(struct json_object *ev) { edit_b64(quote_of(ev), "message", drop_byte); }
static void m_sig_trailing(struct json_object *ev)
{
	edit_b64(quote_of(ev), "signature", add_byte);
}
static void m_ak_garbage(struct json_object *ev)
{
	json_object_object_add(ev, "ak_public", json_object_new_string("AAAAAAAA"));
}
static void m_ak_trailing(struct json_object *ev) { edit_b64(ev, "ak_public", add_byte); }
static void m_pcrs_23(struct json_object *ev)
{
	struct json_object *a = json_object_object_get(quote_of(ev), "pcrs");

	json_object_array_del_idx(a, 23, 1);
}
static void m_pcrs_25(struct json_object *ev)
{
	struct json_object *a = json_object_object_get(quote_of(ev), "pcrs");

	json_object_array_add(a, json_object_get(json_object_array_get_idx(a, 0)));
}
static void m_pcr_short(struct json_object *ev)
{
	struct json_object *a = json_object_object_get(quote_of(ev), "pcrs");

	json_object_array_put_idx(a, 7, json_object_new_string("00"));
}
static void m_pcr_not_hex(struct json_object *ev)
{
	struct json_object *a = json_object_object_get(quote_of(ev), "pcrs");
	char s[65];

	memset(s, 'g', 64);
	s[64] = '\0';
	json_object_array_put_idx(a, 7, json_object_new_string(s));
}
static void m_pcr_number(struct json_object *ev)
{
	json_object_array_put_idx(json_object_object_get(quote_of(ev), "pcrs"), 3,
				  json_object_new_int(0));
}
static void m_pcrs_object(struct json_object *ev) { set_q(ev, "pcrs", json_object_new_object()); }

static void malformed_evidence(void **state)
{
	static const struct malformed cases[] = {
		{ "no ak_public", m_no_ak, "exactly tpm_quote and ak_public" },
		{ "unknown top key", m_extra_top, "unknown key eventlog" },
		{ "unknown quote key", m_extra_quote, "unknown key x" },
		{ "tpm_quote array", m_quote_array, "tpm_quote: not an object" },
		{ "message number", m_msg_number, "message: missing or not a string" },
		{ "message not base64", m_msg_not_b64, "message: not base64" },
		{ "message unpadded", m_msg_unpadded, "message: not base64" },
		{ "message empty", m_msg_empty, "message: not base64" },
		{ "message oversized", m_msg_huge, "message: longer than 1024" },
		{ "message trailing byte", m_msg_trailing, "not a TPMS_ATTEST" },
		{ "message truncated", m_msg_short, "not a TPMS_ATTEST" },
		{ "signature trailing byte", m_sig_trailing, "not a TPMT_SIGNATURE" },
		{ "ak_public garbage", m_ak_garbage, "not a DER SubjectPublicKeyInfo" },
		{ "ak_public trailing byte", m_ak_trailing, "not a DER SubjectPublicKeyInfo" },
		{ "23 PCRs", m_pcrs_23, "23 values, expected 24" },
		{ "25 PCRs", m_pcrs_25, "25 values, expected 24" },
		{ "short PCR", m_pcr_short, "pcrs[7]: not 64 hex digits" },
		{ "non-hex PCR", m_pcr_not_hex, "pcrs[7]: not 64 hex digits" },
		{ "numeric PCR", m_pcr_number, "pcrs[3]: not 64 hex digits" },
		{ "pcrs object", m_pcrs_object, "pcrs: missing or not an array" },
	};
	struct json_object *ev = evidence(AK_RSA, rd, 32), *arr = json_object_new_array();
	struct bw_tpm_claims c;
	size_t i;
	(void)state;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct json_object *t = copy(ev);

		print_message("malformed: %s\n", cases[i].name);
		cases[i].edit(t);
		expect_fail(t, rd, 32, -EINVAL, cases[i].what);
		json_object_put(t);
	}
	expect_fail(NULL, rd, 32, -EINVAL, "not a JSON object");
	expect_fail(arr, rd, 32, -EINVAL, "not a JSON object");
	assert_int_equal(bw_tpm_verify(ev, rd, 32, NULL, NULL, 0), -EINVAL);
	/* The untouched original still verifies: the edits above were the cause. */
	expect_ok(ev, rd, 32, &c);
	json_object_put(arr);
	json_object_put(ev);
}

/* ---- setup: one swtpm for the whole group ---- */

static int group_setup(void **state)
{
	char path[PATH_MAX + 8];
	_cleanup_free_ char *env = NULL;
	char *p;
	(void)state;

	snprintf(g.dir, sizeof(g.dir), "/tmp/bw-tpm.XXXXXX");
	if (!mkdtemp(g.dir))
		return -1;
	/* cmocka skips the group teardown when setup fails: stop swtpm here then. */
	if (sh("TPM_KEEP=1 tpm_start %s && tpm_create_ak 0x%08x rsa && tpm_create_ak 0x%08x ecc &&"
	       " tpm_create_ak 0x%08x rsa && tpm_pcr_extend 16 a && tpm_pcr_extend 23 b"
	       " || { tpm_stop; false; }", g.dir, AK_RSA, AK_ECC, AK_RSA2))
		return -1;
	snprintf(path, sizeof(path), "%s/env", g.dir);
	if (bw_read_file(path, 4096, &env, NULL) < 0 || !(p = strstr(env, "TPM_TCTI="))) {
		sh("tpm_stop");
		return -1;
	}
	snprintf(g.tcti, sizeof(g.tcti), "%.*s", (int)strcspn(p + 9, "\n"), p + 9);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return sh("tpm_stop") ? -1 : 0;
}

static void find_top(void)
{
	const char *top = getenv("BULWARK_TOP");
	char self[900];
	ssize_t n;

	if (top) {
		snprintf(g.top, sizeof(g.top), "%.1000s", top);
		return;
	}
	/* build/tests/unit/test_tpm -> the checkout three directories up */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	snprintf(g.top, sizeof(g.top), "%s/../../..", dirname(self));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rsa_evidence_verifies),
		cmocka_unit_test(ecc_evidence_verifies),
		cmocka_unit_test(default_handle_is_0x81010002),
		cmocka_unit_test(report_data_truncated_and_padded),
		cmocka_unit_test(tampered_message),
		cmocka_unit_test(tampered_signature),
		cmocka_unit_test(tampered_pcr_value),
		cmocka_unit_test(wrong_nonce),
		cmocka_unit_test(other_ak_key),
		cmocka_unit_test(pcr_extended_after_reference),
		cmocka_unit_test(malformed_evidence),
	};
	char cmd[2048];
	size_t i;

	find_top();
	for (i = 0; i < sizeof(rd); i++)
		rd[i] = (uint8_t)(0xa0 + i);
	/* swtpm and tpm2-tools are test prerequisites: skip without them (tests/run fails a skip in CI). */
	snprintf(cmd, sizeof(cmd), "bash -c '. \"%s/tests/lib-tpm.sh\" && ! tpm_tools_missing'",
		 g.top);
	if (system(cmd) != 0) {
		printf("SKIP: swtpm/tpm2-tools missing (scripts/install-deps.sh)\n");
		return 77;
	}
	bw_log_set_level(BW_LOG_ERROR);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
