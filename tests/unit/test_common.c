// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "common/common.h"

static char dir[] = "/tmp/bw-test-common.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void atomic_write_mode_and_content(void **state)
{
	char path[256];
	struct stat st;
	_cleanup_free_ char *back = NULL;
	size_t len;
	(void)state;

	snprintf(path, sizeof(path), "%s/key", dir);
	assert_int_equal(bw_write_file_atomic(path, "abc", 3, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(bw_read_file(path, 16, &back, &len), 0);
	assert_int_equal(len, 3);
	assert_string_equal(back, "abc");
	/* Replacing keeps the new mode and leaves no temp file behind. */
	assert_int_equal(bw_write_file_atomic(path, "defg", 4, 0644), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(system("test $(ls /tmp/bw-test-common.*/ | wc -l) -eq 1"), 0);
}

static void read_file_bounded(void **state)
{
	char path[256];
	char *out = NULL;
	(void)state;

	snprintf(path, sizeof(path), "%s/big", dir);
	assert_int_equal(bw_write_file_atomic(path, "0123456789", 10, 0600), 0);
	assert_int_equal(bw_read_file(path, 9, &out, NULL), -EFBIG);
	assert_null(out);
	assert_int_equal(bw_read_file(path, 10, &out, NULL), 0);
	free(out);
	assert_int_equal(bw_read_file(dir, 10, &out, NULL), -EINVAL);
}

static void key_file_rules(void **state)
{
	char path[256];
	uint8_t key[32];
	_cleanup_secret_ struct bw_secret s = { 0 };
	(void)state;

	memset(key, 0xa5, sizeof(key));
	snprintf(path, sizeof(path), "%s/k", dir);
	assert_int_equal(bw_write_file_atomic(path, key, 32, 0600), 0);
	assert_int_equal(bw_read_key_file(path, 32, &s), 0);
	assert_int_equal(s.len, 32);
	assert_memory_equal(s.data, key, 32);
	bw_secret_free(&s);
	assert_null(s.data);

	assert_int_equal(bw_read_key_file(path, 31, &s), -EINVAL);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(bw_read_key_file(path, 32, &s), -EPERM);
	assert_null(s.data);
}

static void secret_is_locked_and_wiped(void **state)
{
	struct bw_secret s;
	unsigned char vec;
	(void)state;

	assert_int_equal(bw_secret_new(&s, 64), 0);
	assert_non_null(s.data);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(s.data[i], 0);
	/* mincore reports resident pages; a locked page is resident. */
	assert_int_equal(mincore(s.data, s.size, &vec), 0);
	assert_true(vec & 1);
	bw_secret_free(&s);
	assert_null(s.data);
	assert_int_equal(s.len, 0);
}

static void memeq_ct(void **state)
{
	(void)state;
	assert_true(bw_memeq_ct("abcd", "abcd", 4));
	assert_false(bw_memeq_ct("abcd", "abce", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(atomic_write_mode_and_content),
		cmocka_unit_test(read_file_bounded),
		cmocka_unit_test(key_file_rules),
		cmocka_unit_test(secret_is_locked_and_wiped),
		cmocka_unit_test(memeq_ct),
	};
	return cmocka_run_group_tests_name("common", tests, setup, teardown);
}
