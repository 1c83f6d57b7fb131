/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libcurl, loaded on first use. Include this instead of <curl/curl.h>: the calls keep libcurl's
 * names but go through a table filled by bw_curl_load() (common/dl.c), so a program that links
 * common need not link libcurl and its ~30 dependencies (krb5, ldap, gnutls, ...), and commands
 * that never speak HTTP (`bulwark volume stage --key-file`) do not page them in at start-up.
 * Call bw_curl_load() before the first libcurl call; a call before it crashes on NULL.
 */
#ifndef BULWARK_COMMON_CURL_H
#define BULWARK_COMMON_CURL_H

#define CURL_DISABLE_TYPECHECK /* its checking macros would stand between the names and the table */
#include <curl/curl.h>
#include <stddef.h>

#define BW_CURL_FNS(X) X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_perform) \
	X(curl_easy_getinfo) X(curl_easy_strerror) X(curl_easy_cleanup) X(curl_slist_append) \
	X(curl_slist_free_all)
struct bw_curl_fns {
#define X(f) __typeof__(f) *f;
	BW_CURL_FNS(X)
#undef X
};
extern struct bw_curl_fns bw_curl;

/* libcurl.so.4 and the functions above; 0, or -ELIBACC with the reason (and the package) in err. */
int bw_curl_load(char *err, size_t len);

#ifndef BW_CURL_IMPL
#undef curl_easy_setopt  /* curl.h's pass-through macros */
#undef curl_easy_getinfo
#define curl_global_init bw_curl.curl_global_init
#define curl_easy_init bw_curl.curl_easy_init
#define curl_easy_setopt bw_curl.curl_easy_setopt
#define curl_easy_perform bw_curl.curl_easy_perform
#define curl_easy_getinfo bw_curl.curl_easy_getinfo
#define curl_easy_strerror bw_curl.curl_easy_strerror
#define curl_easy_cleanup bw_curl.curl_easy_cleanup
#define curl_slist_append bw_curl.curl_slist_append
#define curl_slist_free_all bw_curl.curl_slist_free_all
#endif

#endif
