// SPDX-License-Identifier: GPL-2.0-only
/* storage without a kernel: the header allow-list on LUKS2 metadata, names, error codes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include "bulwark/storage.h"
#include "common/common.h"

/* LUKS2 metadata as cryptsetup 2.6 writes it for a bulwark volume (trimmed to what is checked). */
#define SEG(enc, sector, integ) \
	"\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"16777216\",\"size\":\"dynamic\"," \
	"\"iv_tweak\":\"0\",\"encryption\":\"" enc "\",\"sector_size\":" sector integ "}}"
#define INTEG ",\"integrity\":{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}"
#define SLOT(id, enc) SLOTK(id, enc, "64")
#define SLOTK(id, enc, ks) \
	"\"" id "\":{\"type\":\"luks2\",\"key_size\":" ks ",\"area\":{\"type\":\"raw\",\"offset\":\"32768\"," \
	"\"size\":\"258048\",\"encryption\":\"" enc "\",\"key_size\":64},\"kdf\":{\"type\":\"pbkdf2\"," \
	"\"hash\":\"sha256\",\"iterations\":1000},\"af\":{\"type\":\"luks1\",\"stripes\":4000,\"hash\":\"sha256\"}}"
#define TOKENI(id, state, integ) "\"0\":{\"type\":\"bulwark\",\"keyslots\":[],\"volume_id\":\"" id "\",\"state\":\"" \
	state "\",\"integrity\":" integ ",\"wipe_offset\":\"0\"}"
#define TOKEN(id) TOKENI(id, "ready", "false")
#define DIGEST(slots) "\"digests\":{\"0\":{\"type\":\"pbkdf2\",\"keyslots\":[" slots "],\"segments\":[\"0\"]," \
	"\"hash\":\"sha256\",\"iterations\":1000}}"
#define HDRD(seg, slots, tokens, digest) \
	"{\"keyslots\":{" slots "},\"tokens\":{" tokens "}," seg "," digest \
	",\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"16744448\"}}"
#define HDR(seg, slots, tokens) HDRD(seg, slots, tokens, DIGEST("\"0\""))
#define HDR2(seg, slots, tokens) HDRD(seg, slots, tokens, DIGEST("\"0\",\"1\""))

static const char *good = HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1"));
static const char *good_integrity = HDR(SEG("aes-xts-plain64", "4096", INTEG), SLOTK("0", "aes-xts-plain64", "96"),
					 TOKENI("pvc-1", "ready", "true"));

static void expect_refused(const char *json, const char *field)
{
	char err[BW_ERR_LEN] = "";
	int r = bw_vol_check_luks2_json(json, strlen(json), "pvc-1", NULL, err, sizeof(err));

	if (r >= 0 || !strstr(err, field))
		fail_msg("expected a refusal naming '%s', got %d '%s'", field, r, err);
}

static void accepts_bulwark_headers(void **state)
{
	char err[BW_ERR_LEN] = "";
	bool integrity = true;
	(void)state;
	assert_int_equal(bw_vol_check_luks2_json(good, strlen(good), "pvc-1", &integrity, err, sizeof(err)), 0);
	assert_false(integrity);
	assert_int_equal(bw_vol_check_luks2_json(good_integrity, strlen(good_integrity), "pvc-1", &integrity, err, sizeof(err)), 0);
	assert_true(integrity);
}

static void refuses_each_tampered_field(void **state)
{
	(void)state;
	expect_refused(HDR(SEG("cipher_null-ecb", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "cipher_null");
	expect_refused(HDR(SEG("aes-cbc-essiv:sha256", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.encryption is 'aes-cbc-essiv:sha256'");
	expect_refused(HDR(SEG("aes-xts-plain64", "512", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.sector_size is 512");
	expect_refused(HDR2(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64") "," SLOT("1", "serpent-xts-plain64"),
			    TOKEN("pvc-1")), "keyslots.1.area.encryption is 'serpent-xts-plain64'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), ""), "no 'bulwark' token");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-2")),
		       "names volume 'pvc-2', not 'pvc-1'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096",
			       ",\"integrity\":{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"aes\",\"journal_integrity\":\"none\"}"),
			   SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "journal_encryption");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ",\"integrity\":{\"type\":\"crc32c\"}"),
			   SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")), "integrity.type is 'crc32c'");
	expect_refused(HDRD(SEG("aes-xts-plain64", "4096", ""), "", TOKEN("pvc-1"), DIGEST("")),
		       "keyslots: none, but the token's state is 'ready'");
	expect_refused("[1,2]", "not a JSON object");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "cipher\\u005fnull-ecb"), TOKEN("pvc-1")), "cipher_null");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", INTEG), SLOT("0", "aes-xts-plain64"), TOKENI("pvc-1", "ready", "true")),
		       "keyslots.0.key_size is 64, expected 96");
	expect_refused(HDRD(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64") "," SLOT("1", "aes-xts-plain64"),
			    TOKEN("pvc-1"), DIGEST("\"0\"")), "digests.0.keyslots must list exactly the keyslots");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"),
			   TOKEN("pvc-1") ",\"1\":{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"]}"), "tokens.1.type is 'systemd-tpm2'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")) " {}",
		       "not one JSON value");
	expect_refused("{\"segments\":{\"0\":{},\"1\":{}}}", "exactly one crypt segment");
	/* what a forged header would change: data offset, fixed size, iv_tweak, KDF cost, extras */
	expect_refused(HDR("\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"0\",\"size\":\"dynamic\",\"iv_tweak\":\"0\","
			   "\"encryption\":\"aes-xts-plain64\",\"sector_size\":4096}}", SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.offset is 0, expected 16777216");
	expect_refused(HDR("\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"16777216\",\"size\":\"4096\",\"iv_tweak\":\"0\","
			   "\"encryption\":\"aes-xts-plain64\",\"sector_size\":4096}}", SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.size is '4096'");
	expect_refused(HDR("\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"16777216\",\"size\":\"dynamic\",\"iv_tweak\":\"7\","
			   "\"encryption\":\"aes-xts-plain64\",\"sector_size\":4096}}", SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "iv_tweak");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ",\"extra\":1"), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1")),
		       "segments.0.extra: unexpected member");
	expect_refused(HDRD(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKEN("pvc-1"),
			    "\"digests\":{\"0\":{\"type\":\"pbkdf2\",\"keyslots\":[\"0\"],\"segments\":[\"0\"],\"hash\":\"sha256\","
			    "\"iterations\":2147483648}}"), "digests.0.iterations is 2147483648");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), "\"0\":{\"type\":\"luks2\",\"key_size\":64,\"area\":{\"type\":\"raw\","
			   "\"offset\":\"32768\",\"size\":\"258048\",\"encryption\":\"aes-xts-plain64\",\"key_size\":64},"
			   "\"kdf\":{\"type\":\"argon2id\",\"time\":4,\"memory\":4194304,\"cpus\":4},"
			   "\"af\":{\"type\":\"luks1\",\"stripes\":4000,\"hash\":\"sha256\"}}", TOKEN("pvc-1")), "keyslots.0.kdf");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"),
			   "\"0\":{\"type\":\"bulwark\",\"keyslots\":[],\"volume_id\":\"pvc-1\",\"state\":\"wiping\","
			   "\"integrity\":false,\"wipe_offset\":\"-4096\"}"), "wipe_offset '-4096'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"),
			   "\"0\":{\"type\":\"bulwark\",\"keyslots\":[],\"volume_id\":\"pvc-1\",\"state\":\"wiping\","
			   "\"integrity\":false,\"wipe_offset\":\"4097\"}"), "wipe_offset '4097'");
	expect_refused(HDR(SEG("aes-xts-plain64", "4096", ""), SLOT("0", "aes-xts-plain64"), TOKENI("pvc-1", "done", "false")),
		       "state is 'done'");
}

/* Two binary headers (primary "LUKS", secondary "SKUL" at hdr_size), each with the JSON area. */
#define HS 16384
static void seal(uint8_t *p) /* sha256 over the header with the checksum field zeroed, at 448 */
{
	memset(p + 448, 0, 64);
	assert_non_null(SHA256(p, HS, p + 448));
}
static void put_hdr(uint8_t *p, const char *magic, uint64_t off, const char *json)
{
	memcpy(p, magic, 6);
	p[7] = 2;
	for (int i = 0; i < 8; i++) {
		p[8 + i] = (uint8_t)((uint64_t)HS >> (56 - 8 * i));
		p[256 + i] = (uint8_t)(off >> (56 - 8 * i));
	}
	p[23] = 7; /* seqid */
	memcpy(p + 72, "sha256", 6);
	memcpy(p + 168, "0b1e5ad1-7c35-4f3f-b2a4-5a5b6c7d8e9f", 36);
	memcpy(p + 4096, json, strlen(json));
	seal(p);
}

static void binary_headers_must_agree(void **state)
{
	static uint8_t buf[2 * HS];
	char err[BW_ERR_LEN] = "";
	(void)state;

	memset(buf, 0, sizeof(buf));
	put_hdr(buf, "LUKS\xba\xbe", 0, good);
	put_hdr(buf + HS, "SKUL\xba\xbe", HS, good);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), 0);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-2", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "names volume 'pvc-1', not 'pvc-2'"));
	/* libcryptsetup could load either copy: a secondary that says something else is refused */
	buf[HS + 4096 + 5] ^= 1;
	seal(buf + HS);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "JSON metadata differ"));
	buf[HS + 4096 + 5] ^= 1;
	buf[HS + 23] = 8; /* higher seqid on the secondary */
	seal(buf + HS);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "disagree"));
	buf[HS + 23] = 7;
	seal(buf + HS);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), 0);
	/* a wrong checksum on either copy: libcryptsetup would go looking for other headers */
	buf[HS + 448] ^= 1;
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "secondary header's checksum is wrong"));
	buf[HS + 448] ^= 1;
	buf[4096 + 5] ^= 1;
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "primary header's checksum is wrong"));
	buf[4096 + 5] ^= 1;
	/* bytes after the JSON's NUL (a hidden header there), even with valid checksums */
	memcpy(buf + HS - 600, "SKUL", 4);
	memcpy(buf + 2 * HS - 600, "SKUL", 4);
	seal(buf);
	seal(buf + HS);
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "after the JSON's end"));
	memset(buf + HS - 600, 0, 4);
	memset(buf + 2 * HS - 600, 0, 4);
	seal(buf);
	seal(buf + HS);
	assert_int_equal(bw_vol_check_luks2_header(buf, HS + 100, "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	buf[7] = 1;
	assert_int_equal(bw_vol_check_luks2_header(buf, sizeof(buf), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "not LUKS2"));
}

static void no_keyslot_is_an_interrupted_format(void **state)
{
	const char *j = HDRD(SEG("aes-xts-plain64", "4096", ""), "", TOKENI("pvc-1", "prepared", "false"), DIGEST(""));
	char err[BW_ERR_LEN] = "";
	(void)state;
	assert_int_equal(bw_vol_check_luks2_json(j, strlen(j), "pvc-1", NULL, err, sizeof(err)), -ENOKEY);
	/* ...only this volume's, in state prepared, otherwise valid */
	assert_int_equal(bw_vol_check_luks2_json(j, strlen(j), "pvc-2", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	j = HDRD(SEG("aes-xts-plain64", "4096", ""), "", TOKENI("pvc-1", "formatted", "false"), DIGEST(""));
	assert_int_equal(bw_vol_check_luks2_json(j, strlen(j), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
	j = HDRD(SEG("aes-xts-plain64", "4096", ""), "", TOKENI("pvc-1", "prepared", "false"), DIGEST("\"0\""));
	assert_int_equal(bw_vol_check_luks2_json(j, strlen(j), "pvc-1", NULL, err, sizeof(err)), -EMEDIUMTYPE);
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

static void write_key(const char *path, size_t n, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc((int)i + 1, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void key_file_source_rules(void **state)
{
	char dir[] = "/tmp/bw-test-key.XXXXXX", path[64], err[BW_ERR_LEN] = "";
	struct bw_vol_key_source ks;
	uint8_t key[BW_VOL_KEY_LEN];
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	bw_vol_key_file_source(&ks, path);
	write_key(path, 32, 0600);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), 0);
	assert_int_equal(key[0], 1);
	assert_int_equal(key[31], 32);
	write_key(path, 32, 0640);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0600"));
	write_key(path, 31, 0600);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "exactly 32 bytes"));
	write_key(path, 33, 0600);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	unlink(path);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	/* a symlink chain, as kubelet mounts a Secret: followed, the final file is checked */
	char target[80], link1[80];
	snprintf(target, sizeof(target), "%s/..data", dir);
	snprintf(link1, sizeof(link1), "%s/link", dir);
	write_key(target, 32, 0600);
	assert_int_equal(symlink(target, link1), 0);
	assert_int_equal(symlink(link1, path), 0);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), 0);
	assert_int_equal(key[31], 32);
	assert_int_equal(chmod(target, 0644), 0);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0600"));
	unlink(path);
	unlink(link1);
	unlink(target);
	/* a FIFO with no writer: refused at once, never blocks */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(ks.get(ks.ctx, "pvc-1", key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "regular file"));
	unlink(path);
	rmdir(dir);
}

static void error_codes_map_to_csi(void **state)
{
	(void)state;
	assert_int_equal(bw_vol_code(-EINVAL), BW_VOL_INVALID_ARGUMENT);
	assert_int_equal(bw_vol_code(-ENOENT), BW_VOL_NOT_FOUND);
	assert_int_equal(BW_VOL_INVALID_ARGUMENT, 3); /* gRPC's numbers */
	assert_int_equal(BW_VOL_NOT_FOUND, 5);
	assert_int_equal(BW_VOL_FAILED_PRECONDITION, 9);
	assert_int_equal(BW_VOL_ABORTED, 10);
	assert_int_equal(BW_VOL_INTERNAL, 13);
	assert_int_equal(bw_vol_code(-ENOTSUP), BW_VOL_FAILED_PRECONDITION);
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
		cmocka_unit_test(binary_headers_must_agree),
		cmocka_unit_test(no_keyslot_is_an_interrupted_format),
		cmocka_unit_test(names_are_safe_and_stable),
		cmocka_unit_test(key_file_source_rules),
		cmocka_unit_test(error_codes_map_to_csi),
	};
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
