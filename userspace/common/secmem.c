// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <openssl/crypto.h>
#include "common/common.h"

int bw_secret_new(struct bw_secret *s, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t size = ((len ? len : 1) + (size_t)page - 1) & ~((size_t)page - 1);
	void *p;

	*s = (struct bw_secret){ 0 };
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	/* Keys must never reach swap or a core dump. The system calls themselves: a sanitizer
	 * runtime (ASan makes mlock a no-op) or a preloaded library must not drop the lock. */
	if (syscall(SYS_mlock, p, size) < 0) {
		int e = errno;
		munmap(p, size);
		return -e;
	}
	(void)syscall(SYS_madvise, p, size, MADV_DONTDUMP);
	s->data = p;
	s->len = len;
	s->size = size;
	return 0;
}

void bw_secret_free(struct bw_secret *s)
{
	if (!s->data)
		return;
	OPENSSL_cleanse(s->data, s->size);
	(void)syscall(SYS_munlock, s->data, s->size);
	munmap(s->data, s->size);
	*s = (struct bw_secret){ 0 };
}

bool bw_memeq_ct(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
