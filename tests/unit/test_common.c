// SPDX-License-Identifier: GPL-2.0-only
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* Directory entries other than . and .. */
static int entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
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
	assert_int_equal(entries(dir), 1); /* this run's directory only: others may run at once */
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

/*
 * munmap as the secure-memory code calls it: the executable's definition takes precedence over
 * libc's, so the bytes of a watched mapping can be checked at the moment it goes away, then it
 * is unmapped with the system call itself.
 */
static const void *watch_addr;
static int watch_wiped = -1; /* -1: not unmapped yet, 1: all zero, 0: not wiped */

int munmap(void *addr, size_t len)
{
	if (watch_addr && addr == watch_addr) {
		const volatile uint8_t *p = addr;
		watch_wiped = 1;
		for (size_t i = 0; i < len; i++)
			if (p[i])
				watch_wiped = 0;
		watch_addr = NULL;
	}
	return (int)syscall(SYS_munmap, addr, len);
}

/* VmLck of this process in kB. */
static long vm_locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The VmFlags of the mapping holding p (from /proc/self/smaps), or "" when none. */
static void vm_flags(const void *p, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in = false;

	assert_non_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's header line */
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, size, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static bool has_flag(const char *flags, const char *f)
{
	char buf[512];

	snprintf(buf, sizeof(buf), " %s ", flags);
	buf[strcspn(buf, "\n")] = ' ';
	char want[8];
	snprintf(want, sizeof(want), " %s ", f);
	return strstr(buf, want) != NULL;
}

/* Locked (VmLck and the smaps "lo" flag), out of core dumps ("dd"), zero-filled, wiped at free. */
static void secret_is_locked_and_wiped(void **state)
{
	struct bw_secret s;
	char flags[512];
	long before = vm_locked_kb(), during;
	(void)state;

	assert_true(before >= 0);
	assert_int_equal(bw_secret_new(&s, 64), 0);
	assert_non_null(s.data);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(s.data[i], 0);
	during = vm_locked_kb();
	if (during < before + (long)(s.size / 1024))
		fail_msg("VmLck %ld kB -> %ld kB: the %zu-byte secret page is not locked", before, during, s.size);
	vm_flags(s.data, flags, sizeof(flags));
	if (!has_flag(flags, "lo") || !has_flag(flags, "dd"))
		fail_msg("secret mapping VmFlags '%s' lack lo (mlock) or dd (MADV_DONTDUMP)", flags);
	memset(s.data, 0xa5, s.size);
	watch_addr = s.data;
	watch_wiped = -1;
	bw_secret_free(&s);
	assert_null(s.data);
	assert_int_equal(s.len, 0);
	if (watch_wiped < 0)
		fail_msg("the secret was never unmapped");
	if (watch_wiped == 0)
		fail_msg("the secret was unmapped without being wiped");
	assert_int_equal(vm_locked_kb(), before);
}

static void memeq_ct(void **state)
{
	(void)state;
	assert_true(bw_memeq_ct("abcd", "abcd", 4));
	assert_false(bw_memeq_ct("abcd", "abce", 4));
}

/* Libraries loaded on first use: a missing one is a clear, stable error naming its package. */
static void dl_load_on_first_use(void **state)
{
	pid_t (*my_getpid)(void) = NULL;
	size_t (*my_strlen)(const char *) = NULL;
	void *nothing = NULL;
	const struct bw_dl_sym libc_syms[] = { { "getpid", (void **)&my_getpid }, { "strlen", (void **)&my_strlen },
					       { NULL, NULL } };
	const struct bw_dl_sym none_syms[] = { { "nothing", &nothing }, { NULL, NULL } };
	const struct bw_dl_sym bad_syms[] = { { "getpid", &nothing }, { "bw_no_such_function", &nothing },
					      { NULL, NULL } };
	struct bw_dl_lib libc = { .soname = "libc.so.6", .package = "libc6", .syms = libc_syms };
	struct bw_dl_lib missing = { .soname = "libbw-no-such-library.so.9", .package = "bw-nothing9", .syms = none_syms };
	struct bw_dl_lib bad = { .soname = "libc.so.6", .package = "libc6", .syms = bad_syms };
	char err[300] = "";

	(void)state;
	assert_int_equal(bw_dl_load(&libc, err, sizeof(err)), 0);
	assert_int_equal(my_getpid(), getpid());
	assert_int_equal(my_strlen("four"), 4);
	assert_int_equal(bw_dl_load(&libc, NULL, 0), 0); /* once */

	assert_int_equal(bw_dl_load(&missing, err, sizeof(err)), -ELIBACC);
	assert_non_null(strstr(err, "libbw-no-such-library.so.9"));
	assert_non_null(strstr(err, "Debian package bw-nothing9"));
	assert_null(nothing);
	memset(err, 0, sizeof(err));
	assert_int_equal(bw_dl_load(&missing, err, sizeof(err)), -ELIBACC); /* not retried, same answer */
	assert_non_null(strstr(err, "libbw-no-such-library.so.9"));

	assert_int_equal(bw_dl_load(&bad, err, sizeof(err)), -ELIBACC);
	assert_non_null(strstr(err, "bw_no_such_function"));
	assert_null(nothing); /* all or nothing: getpid's slot is cleared again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(atomic_write_mode_and_content),
		cmocka_unit_test(read_file_bounded),
		cmocka_unit_test(key_file_rules),
		cmocka_unit_test(secret_is_locked_and_wiped),
		cmocka_unit_test(memeq_ct),
		cmocka_unit_test(dl_load_on_first_use),
	};
	return cmocka_run_group_tests_name("common", tests, setup, teardown);
}
