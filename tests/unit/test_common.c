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
#include <openssl/evp.h>
#include <openssl/rand.h>
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

/* RFC 4648 section 10 test vectors, every flag combination. */
static void base64_rfc4648_vectors(void **state)
{
	static const char *const v[][2] = {
		{ "", "" },		{ "f", "Zg==" },	 { "fo", "Zm8=" },	  { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		const char *in = v[i][0], *want = v[i][1];
		size_t n = strlen(in), nopad = strcspn(want, "="), got;
		char out[16];
		uint8_t back[16];

		assert_int_equal(bw_base64_encode((const uint8_t *)in, n, 0, out), strlen(want));
		assert_string_equal(out, want);
		assert_int_equal(bw_base64_len(n, 0), strlen(want));
		assert_int_equal(bw_base64_encode((const uint8_t *)in, n, BW_B64_JOSE, out), nopad);
		assert_memory_equal(out, want, nopad);
		assert_int_equal(out[nopad], '\0');
		assert_int_equal(bw_base64_len(n, BW_B64_NOPAD), nopad);

		/* padded text: every mode takes it */
		for (unsigned int f = 0; f < 4; f++) {
			assert_int_equal(bw_base64_decode(want, strlen(want), f, back, sizeof(back), &got), 0);
			assert_int_equal(got, n);
			assert_memory_equal(back, in, n);
		}
		/* unpadded text: only where padding is optional (or there is none to leave out) */
		assert_int_equal(bw_base64_decode(want, nopad, BW_B64_NOPAD, back, sizeof(back), &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(back, in, n);
		assert_int_equal(bw_base64_decode(want, nopad, 0, back, sizeof(back), &got),
				 nopad == strlen(want) ? 0 : -EINVAL);
	}
	/* base16 (hex) vector, both cases */
	uint8_t b[6];
	char h[13];
	assert_int_equal(bw_hex_decode("666F6F626172", b, 6), 0);
	assert_memory_equal(b, "foobar", 6);
	assert_int_equal(bw_hex_decode("666f6f626172", b, 6), 0);
	assert_memory_equal(b, "foobar", 6);
	bw_hex_encode(b, 6, h);
	assert_string_equal(h, "666f6f626172");
}

/* Every byte value and every length against OpenSSL's encoder, both alphabets, round trip. */
static void base64_matches_openssl(void **state)
{
	uint8_t in[258], back[258];
	char ours[360], ref[360];
	(void)state;

	for (size_t i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	assert_int_equal(RAND_bytes(in + 256, 2), 1);
	for (size_t n = 0; n <= sizeof(in); n++) {
		size_t got, len = (size_t)EVP_EncodeBlock((unsigned char *)ref, in, (int)n);

		assert_int_equal(bw_base64_encode(in, n, 0, ours), len);
		assert_string_equal(ours, ref);
		assert_int_equal(bw_base64_decode(ours, len, 0, back, n, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(back, in, n);
		for (char *p = ref; *p; p++)
			*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
		len = strcspn(ref, "=");
		ref[len] = '\0';
		assert_int_equal(bw_base64_encode(in, n, BW_B64_JOSE, ours), len);
		assert_string_equal(ours, ref);
		assert_int_equal(bw_base64_decode(ours, len, BW_B64_JOSE, back, n, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(back, in, n);
	}
}

static void base64_rejects(void **state)
{
	static const struct { const char *s; unsigned int flags; } bad[] = {
		{ "Zg=", 0 }, { "Zg===", 0 }, { "Z===", 0 }, { "=Zg=", 0 }, { "Zg==Zg==", 0 },
		{ "Z", BW_B64_NOPAD }, { "Zm9vY", BW_B64_NOPAD }, { "Zg", 0 }, { "Zm8", 0 },
		{ "Zh==", 0 }, { "Zm9=", 0 }, { "Zh", BW_B64_NOPAD }, /* bits left over: not canonical */
		{ "Zm9 ", 0 }, { "Zm9v\n", 0 }, { " Zm9v", 0 }, { "Zm\r9v", 0 }, { "Zm.v", 0 },
		{ "-_8A", 0 }, { "+/8A", BW_B64_URL }, { "+/8A", BW_B64_JOSE }, { "Zm9v=", BW_B64_NOPAD },
		{ "Zg=A", 0 }, { "Z=g=", 0 }, { "\xc3\xa9Zg", BW_B64_NOPAD }, { "Zm9v\x80\x80\x80\x80", 0 },
	};
	uint8_t out[16];
	size_t got;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(out, 0x5a, sizeof(out));
		if (bw_base64_decode(bad[i].s, strlen(bad[i].s), bad[i].flags, out, sizeof(out), &got) != -EINVAL)
			fail_msg("accepted \"%s\" (flags %u)", bad[i].s, bad[i].flags);
	}
	/* A NUL inside the text is not base64. */
	assert_int_equal(bw_base64_decode("Zm\0v", 4, 0, out, sizeof(out), &got), -EINVAL);
	/* A rejected text leaves nothing of itself in out. */
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(bw_base64_decode("Zm9vYmE*", 8, 0, out, sizeof(out), &got), -EINVAL);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(out[i], 0);
	/* Too long for the buffer: refused before decoding. */
	assert_int_equal(bw_base64_decode("Zm9vYmFy", 8, 0, out, 5, &got), -EMSGSIZE);
	assert_int_equal(bw_base64_decode("Zm9vYmE=", 8, 0, out, 5, &got), 0);
	assert_int_equal(got, 5);

	_cleanup_free_ uint8_t *a = NULL;
	size_t len;
	assert_int_equal(bw_base64_decode_alloc("Zm9vYmE", BW_B64_NOPAD, &a, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal((char *)a, "fooba");
}

static void hex_rejects(void **state)
{
	static const char *const bad[] = { "666f6f62617", "666f6f6261722", "g66f6f626172", "666f6f62617 ",
					   "+66f6f626172", " 66f6f62617", "0x6f6f626172", "666f6f62\xc3\xa9" };
	uint8_t out[6];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(out, 0x5a, sizeof(out));
		if (bw_hex_decode(bad[i], out, sizeof(out)) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(bw_hex_decode("00112233445z", out, sizeof(out)), -EINVAL);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0);
}

/* 32-byte keys as wg(8) writes them: exactly 44 characters, one '='. */
static void key_base64(void **state)
{
	uint8_t k[BW_KEY_LEN], back[BW_KEY_LEN];
	char s[BW_KEY_B64_LEN + 1], ref[BW_KEY_B64_LEN + 1];
	(void)state;

	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	bw_key_to_base64(k, s);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)ref, k, sizeof(k)), BW_KEY_B64_LEN);
	assert_string_equal(s, ref);
	assert_int_equal(bw_key_from_base64(s, back), 0);
	assert_memory_equal(back, k, sizeof(k));

	/* 31 bytes ("=="), 33 bytes (no '='), one character too many or too few, bits left over */
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", back), -EINVAL);
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", back), -EINVAL);
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", back), -EINVAL);
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", back), -EINVAL);
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", back), -EINVAL);
	assert_int_equal(bw_key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=", back), 0);
	assert_int_equal(back[31], 0x01);
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
	char err[BW_ERR_LEN] = "";

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

/*
 * Libraries report, programs log: notes come back in order (NULL takes nothing, more than
 * BW_NOTES_MAX are dropped), bw_notes_log prints each as an info line and empties them, and
 * bw_log_hook is the logger behind a library's hook.
 */
static void notes_and_hook(void **state)
{
	struct bw_notes notes = { 0 };
	char path[64], out[4096] = "";
	int fd, saved;
	ssize_t n;
	(void)state;

	bw_note(NULL, "dropped %d", 1);
	bw_note(&notes, "mounted %s", "bpffs");
	bw_note(&notes, "created key %d", 7);
	assert_int_equal(notes.n, 2);
	assert_string_equal(notes.text[0], "mounted bpffs");
	assert_string_equal(notes.text[1], "created key 7");
	for (int i = 0; i < BW_NOTES_MAX + 3; i++)
		bw_note(&notes, "more %d", i);
	assert_int_equal(notes.n, BW_NOTES_MAX);
	assert_string_equal(notes.text[BW_NOTES_MAX - 1], "more 5");

	snprintf(path, sizeof(path), "%s/log", dir);
	assert_true((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	fflush(stderr);
	saved = dup(2);
	assert_int_equal(dup2(fd, 2), 2);
	bw_log_set_prefix("test");
	bw_log_set_level(BW_LOG_DEBUG);
	notes.n = 2;
	bw_notes_log(&notes);
	bw_notes_log(NULL);
	bw_log_hook(NULL, BW_LOG_WARN, "from a hook");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_int_equal(notes.n, 0);
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	assert_true(n > 0);
	assert_string_equal(out, "test: info: mounted bpffs\ntest: info: created key 7\ntest: warning: from a hook\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(atomic_write_mode_and_content),
		cmocka_unit_test(read_file_bounded),
		cmocka_unit_test(key_file_rules),
		cmocka_unit_test(secret_is_locked_and_wiped),
		cmocka_unit_test(memeq_ct),
		cmocka_unit_test(base64_rfc4648_vectors),
		cmocka_unit_test(base64_matches_openssl),
		cmocka_unit_test(base64_rejects),
		cmocka_unit_test(hex_rejects),
		cmocka_unit_test(key_base64),
		cmocka_unit_test(dl_load_on_first_use),
		cmocka_unit_test(notes_and_hook),
	};
	return cmocka_run_group_tests_name("common", tests, setup, teardown);
}
