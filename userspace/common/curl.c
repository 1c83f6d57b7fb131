// SPDX-License-Identifier: GPL-2.0-only
/* The libcurl table of common/curl.h. */
#define BW_CURL_IMPL
#include "common/common.h"
#include "common/curl.h"

struct bw_curl_fns bw_curl;

static const struct bw_dl_sym syms[] = {
#define X(f) { #f, (void **)&bw_curl.f },
	BW_CURL_FNS(X)
#undef X
	{ NULL, NULL }
};
static struct bw_dl_lib lib = { .soname = "libcurl.so.4", .package = "libcurl4", .syms = syms };

int bw_curl_load(char *err, size_t len)
{
	return bw_dl_load(&lib, err, len);
}
