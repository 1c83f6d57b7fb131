/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark common helpers: logging, cleanup attributes, secret memory, file I/O.
 *
 * Conventions used across bulwark's C code:
 *  - functions return 0 or a positive value on success and a negative errno on failure;
 *  - libraries never print: the programs (cli/, agent/, csi/, keyservice/) log, with bw_log.
 *    A library reports a failure as -errno plus a message in the caller's char err[BW_ERR_LEN]
 *    (bw_errf); one-off facts about a call that worked ("mounted bpffs on ...", "created
 *    WireGuard key ...") go into the caller's struct bw_notes (bw_note; NULL: not wanted), which
 *    the caller logs (bw_notes_log); long-running or retrying library code (k8s/watch.c, the key
 *    client's handshake retries) reports through a bw_log_fn hook its caller sets (bw_log_hook:
 *    the one logger). libbpf's and libcryptsetup's own messages reach the same logger through
 *    their print/log callbacks (bw_dp_log_init, storage's crypt_set_log_callback);
 *  - resources are released with __attribute__((cleanup)) helpers (_cleanup_free_ etc.);
 *  - key material lives in struct bw_secret: locked, excluded from core dumps, wiped on free.
 */
#ifndef BULWARK_COMMON_H
#define BULWARK_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- cleanup helpers: _cleanup_free_ etc., TAKE_PTR (common/cleanup.h) ---- */
#include "common/cleanup.h"

/* ---- logging (stderr; level from BULWARK_LOG=debug|info|warn|error) ---- */
enum bw_log_level { BW_LOG_DEBUG, BW_LOG_INFO, BW_LOG_WARN, BW_LOG_ERROR };
void bw_log_set_level(enum bw_log_level level);
void bw_log_set_prefix(const char *prefix);
/*
 * Line format: plain "prog: level: message" (the CLI's default), logfmt
 * "ts=2026-01-02T03:04:05.678Z level=info prog=bulwarkd msg=\"...\"" (the daemons' default), or one
 * JSON object per line with the same keys. Timestamps are UTC wall clock with milliseconds.
 */
enum bw_log_format { BW_LOG_PLAIN, BW_LOG_LOGFMT, BW_LOG_JSON };
void bw_log_set_format(enum bw_log_format f);
/* "plain", "logfmt", "json" -> format; -EINVAL otherwise. */
int bw_log_format_parse(const char *name);
void bw_log(enum bw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define bw_debug(...) bw_log(BW_LOG_DEBUG, __VA_ARGS__)
#define bw_info(...) bw_log(BW_LOG_INFO, __VA_ARGS__)
#define bw_warn(...) bw_log(BW_LOG_WARN, __VA_ARGS__)
#define bw_err(...) bw_log(BW_LOG_ERROR, __VA_ARGS__)

/* The size of every error buffer (char err[BW_ERR_LEN]): what any library here reports fits. */
#define BW_ERR_LEN 512

/*
 * One-off facts a library call reports besides its result, in the order they happened; the
 * caller logs them (bw_notes_log: each at info level) where it logs everything else. Notes past
 * BW_NOTES_MAX are dropped. Zero-initialise ({ 0 }) before the first call that adds to it.
 */
#define BW_NOTES_MAX 8
struct bw_notes {
	unsigned n;
	char text[BW_NOTES_MAX][BW_ERR_LEN];
};
/* Add a note (notes may be NULL: the caller does not want them). */
void bw_note(struct bw_notes *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log every note at info level, in order, and empty notes (NULL: nothing). */
void bw_notes_log(struct bw_notes *notes);

/* A hook through which long-running or retrying library code reports as it goes (level + one
 * message line); NULL: not reported. bw_log_hook (ctx unused) hands them to bw_log. */
typedef void (*bw_log_fn)(void *ctx, enum bw_log_level level, const char *msg);
void bw_log_hook(void *ctx, enum bw_log_level level, const char *msg);

/* Format a message into a caller's error buffer (may be NULL) and return r: `return bw_errf(err,
 * len, -EINVAL, "...", ...)` is how libraries here report what failed. */
__attribute__((format(printf, 4, 5)))
static inline int bw_errf(char *err, size_t len, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- secrets: locked, non-dumpable memory, wiped with OPENSSL_cleanse on free ---- */
struct bw_secret {
	uint8_t *data;
	size_t len;   /* bytes in use */
	size_t size;  /* bytes mapped (page multiple) */
};
/* Allocate len zeroed bytes; -ENOMEM, or -EPERM/-EAGAIN when memory cannot be locked. */
int bw_secret_new(struct bw_secret *s, size_t len);
/* HKDF-SHA256 (RFC 5869; no salt when salt_len is 0) into out_len bytes of out; 0 or -errno. */
int bw_hkdf_sha256(const void *key, size_t key_len, const void *salt, size_t salt_len, const void *info,
		   size_t info_len, uint8_t *out, size_t out_len);
void bw_secret_free(struct bw_secret *s);

/* ---- files ---- */
/*
 * Write data to path atomically: temp file in the same directory created with mode,
 * written, fsync'ed, renamed over path, directory fsync'ed. Readers see old or new, never half.
 */
int bw_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* mkdir -p: path and each missing parent with mode; existing directories are fine. 0 or -errno. */
int bw_mkdir_p(const char *path, mode_t mode);
/* Read at most max bytes of a regular file; -EFBIG if larger. *out is NUL-terminated. */
int bw_read_file(const char *path, size_t max, char **out, size_t *len);
/*
 * Read a key file into secret memory. Symlinks are followed (kubelet Secret volumes); the final
 * file must be a regular file (a FIFO or device is refused without blocking), owned by the
 * caller's uid, not accessible by group or others (0600 or stricter), and exactly len bytes long.
 * Returns -EPERM for a wrong mode/owner, -EINVAL for a wrong size or file type.
 */
int bw_read_key_file(const char *path, size_t len, struct bw_secret *out);
/* The same for a key file of min..max bytes (e.g. a master secret of at least 32 bytes). */
int bw_read_key_file_range(const char *path, size_t min, size_t max, struct bw_secret *out);

/* ---- IP prefixes ---- */
struct bw_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t len;    /* prefix length */
	uint8_t addr[16];
};
/* Parse "a.b.c.d/n" or "x::/n"; a bare address is a host prefix. Host bits must be zero. */
int bw_cidr_parse(const char *s, struct bw_cidr *out);
/* Format into buf (64 bytes are always enough). */
const char *bw_cidr_str(const struct bw_cidr *c, char *buf, size_t size);
bool bw_cidr_eq(const struct bw_cidr *a, const struct bw_cidr *b);

/* ---- UDP endpoints: numeric "a.b.c.d:port" or "[x::y]:port" (names are never resolved) ---- */
union bw_sockaddr {
	struct sockaddr sa; /* sa_family AF_UNSPEC (0): none */
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};
int bw_endpoint_parse(const char *s, union bw_sockaddr *out);
/* "(none)" for AF_UNSPEC; 64 bytes are always enough. */
const char *bw_endpoint_str(const union bw_sockaddr *ep, char *buf, size_t size);
/* Same family, address and port (AF_UNSPEC equals AF_UNSPEC). */
bool bw_endpoint_eq(const union bw_sockaddr *a, const union bw_sockaddr *b);

/* Constant-time comparison of n bytes. */
bool bw_memeq_ct(const void *a, const void *b, size_t n);

/* ---- encodings: base64, base64url, hex, WireGuard keys (common/encoding.h) ---- */
#include "common/encoding.h"
/* ---- libraries loaded on first use (dlopen) ---- */
struct bw_dl_sym {
	const char *name;
	void **slot;          /* where the function's address goes: (void **)&table.fn */
};
struct bw_dl_lib {
	const char *soname;   /* e.g. "libcurl.so.4": the runtime name, no -dev package needed */
	const char *package;  /* the Debian package that ships it, for the error message */
	const struct bw_dl_sym *syms; /* terminated by { NULL } */
	int state;            /* 0 not tried, 1 loaded, -1 failed (not retried) */
	char error[BW_ERR_LEN];
};
/*
 * Load lib and resolve all its symbols on the first call (thread-safe); later calls return the
 * first outcome. 0, or -ELIBACC with "<soname> ... (Debian package <package>): <why>" in err.
 */
int bw_dl_load(struct bw_dl_lib *lib, char *err, size_t len);

#endif
