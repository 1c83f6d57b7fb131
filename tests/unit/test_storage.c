// SPDX-License-Identifier: GPL-2.0-only
/* storage without a kernel: the header allow-list on LUKS2 metadata, names, error codes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "bulwark/storage.h"

/* LUKS2 metadata as cryptsetup 2.6 writes it for a bulwark volume (trimmed to what is checked). */
#define SEG(enc, sector, integ) \
	"\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"16777216\",\"size\":\"dynamic\"," \
	"\"iv_tweak\":\"0\",\"encryption\":\"" enc "\",\"sector_size\":" sector integ "}}"
#define INTEG ",\"integrity\":{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}"
#define SLOT(id, enc) \
	"\"" id "\":{\"type\":\"luks2\",\"key_size\":64,\"area\":{\"type\":\"raw\",\"offset\":\"32768\"," \
	"\"size\":\"258048\",\"encryption\":\"" enc "\",\"key_size\":64},\"kdf\":{\"type\":\"pbkdf2\"," \
	"\"hash\":\"sha256\",\"iterations\":1000}}"
#define TOKEN(id) "\"0\":{\"type\":\"bulwark\",\"keyslots\":[],\"volume_id\":\"" id "\",\"state\":\"ready\"}"
#define HDR(seg, slots, tokens) \
	"{\"keyslots\":{" slots "},\"tokens\":{" tokens "}," seg ",\"digests\":{},\"config\":{\"json_size\":\"12288\"}}"

static const char *good = HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1"));
static const char *good_integrity = HDR(SEG("aes-xts-plain64", "4096", INTEG), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1"));

static void expect_refused(const char *json, const char *field)
{
	char err[256] = "";
	int r = bw_vol_check_luks2_json(json, "pvc-1", err, sizeof(err));

	if (r >= 0 || !strstr(err, field))
		fail_msg("expected a refusal naming '%s', got %d '%s'", field, r, err);
}

static void accepts_bulwark_headers(void **state)
{
	char err[256] = "";
	(void)state;
	assert_int_equal(bw_vol_check_luks2_json(good, "pvc-1", err, sizeof(err)), 0);
	assert_int_equal(bw_vol_check_luks2_json(good_integrity, "pvc-1", err, sizeof(err)), 0);
}

static void refuses_each_tampered_field(void **state)
{
	(void)state;
	expect_refused(HDR(SEG("cipher_null-ecb", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "cipher_null");
	expect_refused(HDR(SEG("aes-cbc-essiv:sha256", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.encryption is 'aes-cbc-essiv:sha256'");
	expect_refused(HDR(SEG("aes-xts-plain64", "512", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.sector_size is 512");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64") "," SLOT("1", "serpent-xts-plain64"),
			   TOKEN("pvc-1")), "keyslots.1.area.encryption is 'serpent-xts-plain64'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), ""), "no 'bulwark' token");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-2")),
		       "names volume 'pvc-2', not 'pvc-1'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096",
			       ",\"integrity\":{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"aes\",\"journal_integrity\":\"none\"}"),
			   SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "journal_encryption");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ",\"integrity\":{\"type\":\"crc32c\"}"),
			   SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "integrity.type is 'crc32c'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), "", TOKEN("pvc-1")), "keyslots: none");
	expect_refused("[1,2]", "not a JSON object");
	expect_refused("{\"segments\":{\"0\":{},\"1\":{}}}", "exactly one crypt segment");
}

static void names_are_safe_and_stable(void **state)
{
	char a[64], b[64];
	(void)state;
	assert_int_equal(bw_vol_name("pvc-7f3a", a, sizeof(a)), 0);
	assert_int_equal(bw_vol_name("pvc-7f3a", b, sizeof(b)), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 35);
	assert_memory_equal(a, "bw-", 3);
	assert_int_equal(bw_vol_name("pvc-7f3b", b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(bw_vol_name("", a, sizeof(a)), -EINVAL);
	assert_int_equal(bw_vol_name("a b", a, sizeof(a)), -EINVAL);
	assert_int_equal(bw_vol_name("../../etc", a, sizeof(a)), 0); /* hashed: cannot escape */
	assert_null(strchr(a, '/'));
}

static void error_codes_map_to_csi(void **state)
{
	(void)state;
	assert_int_equal(bw_vol_code(-EINVAL), BW_VOL_INVALID_ARGUMENT);
	assert_int_equal(bw_vol_code(-ENOENT), BW_VOL_NOT_FOUND);
	assert_int_equal(bw_vol_code(-EBUSY), BW_VOL_ABORTED);
	assert_int_equal(bw_vol_code(-ENOTEMPTY), BW_VOL_FAILED_PRECONDITION);
	assert_int_equal(bw_vol_code(-EKEYREJECTED), BW_VOL_FAILED_PRECONDITION);
	assert_int_equal(bw_vol_code(-EIO), BW_VOL_INTERNAL);
	assert_string_equal(bw_vol_code_name(BW_VOL_ABORTED), "ABORTED");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_bulwark_headers),
		cmocka_unit_test(refuses_each_tampered_field),
		cmocka_unit_test(names_are_safe_and_stable),
		cmocka_unit_test(error_codes_map_to_csi),
	};
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
