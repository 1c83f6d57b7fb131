// SPDX-License-Identifier: GPL-2.0-only
/*
 * Libraries loaded on first use (dlopen), so a command that never needs them does not pay for
 * them at start-up: the `bulwark` CLI loads libcurl and tpm2-tss only for the key service.
 * A library that is missing is reported once, with its package, and never retried.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "common/common.h"

static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;

static int load_locked(struct bw_dl_lib *lib)
{
	void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
	const char *e;

	if (!h)
		return bw_errf(lib->error, sizeof(lib->error), -ELIBACC, "%s is needed here but cannot be loaded "
			       "(Debian package %s): %s", lib->soname, lib->package, (e = dlerror()) ? e : "not found");
	for (const struct bw_dl_sym *s = lib->syms; s->name; s++) {
		dlerror();
		*s->slot = dlsym(h, s->name);
		if (!*s->slot) {
			e = dlerror();
			bw_errf(lib->error, sizeof(lib->error), -ELIBACC, "%s lacks %s (Debian package %s is too old?): %s",
				lib->soname, s->name, lib->package, e ? e : "no such symbol");
			for (const struct bw_dl_sym *t = lib->syms; t->name; t++)
				*t->slot = NULL;
			dlclose(h);
			return -ELIBACC;
		}
	}
	return 0; /* the handle stays open for the life of the process */
}

int bw_dl_load(struct bw_dl_lib *lib, char *err, size_t len)
{
	int r;

	pthread_mutex_lock(&dl_lock);
	if (!lib->state)
		lib->state = load_locked(lib) == 0 ? 1 : -1;
	r = lib->state > 0 ? 0 : -ELIBACC;
	pthread_mutex_unlock(&dl_lock);
	return r < 0 ? bw_errf(err, len, r, "%s", lib->error) : 0;
}
