/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kbs: the Trustee KBS attestation protocol 0.4.0 (RCAR) — client, attesters and the message
 * and crypto pieces the reference key service (userspace/keyservice) shares with it.
 *
 * Wire formats (see README.md in this directory):
 *   POST /kbs/v0/auth    {"version":"0.4.0","tee":T,"extra-params":{}}  -> cookie + {"nonce":N}
 *   POST /kbs/v0/attest  {"runtime-data":{"nonce":N,"tee-pubkey":JWK},
 *                         "tee-evidence":{"primary_evidence":E,"additional_evidence":""}}
 *                        -> {"token": JWT}
 *   GET  /kbs/v0/resource/REPO/TYPE/TAG   -> flattened JWE to tee-pubkey
 * Report data = SHA-384(JCS({"additional-evidence":"","nonce":N,"tee-pubkey":JWK})).
 *
 * This header is the component's public interface: the client, the attester table, and the
 * message and JOSE pieces the key service needs. What only the client and the tests use (JCS,
 * JWE decryption, the client's JWK, attester internals) is in kbs/internal.h.
 *
 * All functions return 0 (or a length) on success and a negative errno on failure. Functions
 * that take err/errlen write a human-readable reason there on failure.
 */
#ifndef BULWARK_KBS_H
#define BULWARK_KBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include "common/common.h"

#define BW_KBS_VERSION "0.4.0"
#define BW_KBS_PREFIX "/kbs/v0"
#define BW_KBS_COOKIE "kbs-session-id"
#define BW_KBS_REPORT_DATA_LEN 48 /* SHA-384 */
#define BW_KBS_MAX_BODY (64 * 1024) /* largest request/response body either side accepts */
#define BW_KBS_ERR_PREFIX "https://github.com/confidential-containers/kbs/errors/"

/* ---- protocol messages: what the client and the key service (userspace/keyservice) share ---- */
/* The report data the TEE evidence must carry (SHA-384 of the JCS runtime data). */
int bw_kbs_report_data(struct json_object *tee_pubkey, const char *nonce,
		       uint8_t out[BW_KBS_REPORT_DATA_LEN]);

/* Strict RFC 8259 JSON of at most max bytes whose value is an object: no comments, single
 * quotes, trailing commas, NaN/Infinity, bare words, raw control characters, invalid UTF-8,
 * lone surrogates, \u0000, duplicate member names, integers beyond int64 or non-finite numbers,
 * nothing after the value but whitespace; nesting at most 32. -EBADMSG, -EFBIG when too long. */
int bw_json_parse_object(const char *buf, size_t len, size_t max, struct json_object **out);
/* The same with max BW_KBS_MAX_BODY: every protocol message, token part and JWE. */
int bw_kbs_parse_object(const char *buf, size_t len, struct json_object **out);
/* The string member key of o, or NULL when absent, not a string or holding a NUL. */
const char *bw_json_str(struct json_object *o, const char *key);

/* ---- keys (JWK) ---- */
enum bw_jwk_type { BW_JWK_EC_P256, BW_JWK_RSA3072 };
EVP_PKEY *bw_jwk_new(enum bw_jwk_type type);
/* Import a public JWK (EC P-256 or RSA >= 2048 bits); *alg is the JWE alg to use with it. */
int bw_jwk_import(struct json_object *jwk, EVP_PKEY **out, const char **alg);

/* ---- JWE (flattened JSON serialization; A256GCM content encryption) ---- */
/* Encrypt pt to an imported public key (alg as bw_jwk_import returned it); *out is the JSON text
 * (malloc'ed). Decryption is the client's (kbs/internal.h). */
int bw_jwe_encrypt_to(EVP_PKEY *peer, const char *alg, const uint8_t *pt, size_t len, char **out);

/* ---- JWT (ES256) ---- */
int bw_jwt_sign(EVP_PKEY *key, struct json_object *claims, char **out);
#define BW_JWT_SKEW 60 /* seconds iat/nbf may lie in the future */
/* Verify signature (alg must be ES256, no crit), iss (when iss is not NULL: exactly it), exp
 * (required, > now), iat and nbf (<= now + BW_JWT_SKEW); *claims on success. -EKEYEXPIRED for
 * times, -EKEYREJECTED for a foreign signature or issuer, -EBADMSG for malformed tokens. */
int bw_jwt_verify(EVP_PKEY *pub, const char *iss, const char *jwt, time_t now, struct json_object **claims,
		  char *err, size_t errlen);

/* ---- attesters ---- */
struct bw_attester_opts {
	const char *tcti;      /* tpm: TCTI string, e.g. "swtpm:host=127.0.0.1,port=2321" */
	uint32_t ak_handle;    /* tpm: persistent AK handle (default 0x81010002) */
	const char *tsm_dir;   /* tsm: configfs-tsm report directory (default /sys/kernel/config/tsm/report) */
};
struct bw_attester {
	const char *name; /* --attester NAME */
	const char *tee;  /* KBS tee string sent in the Request */
	/* Optional: the tee string found at run time (tsm: from the provider); NULL on failure. */
	const char *(*tee_of)(const struct bw_attester_opts *o);
	/* err (may be NULL) says what failed; attesters never log. */
	int (*evidence)(const struct bw_attester_opts *o, const uint8_t *report_data, size_t len,
			struct json_object **evidence, char *err, size_t errlen);
	/* Optional: is the local device there? 0 or -ENODEV; checked before any network round, and
	 * a missing device is never retried (err names the device). */
	int (*probe)(const struct bw_attester_opts *o, char *err, size_t errlen);
};
/* NULL when unknown. */
const struct bw_attester *bw_attester_find(const char *name);
/* Comma-separated list of the compiled-in attesters, for usage text. */
const char *bw_attester_names(void);


/* ---- client ---- */
/* libcurl is loaded on first use (dlopen); 0, or -ELIBACC and a message naming its package. */
int bw_kbs_http_load(char *err, size_t len);
struct bw_kbs_client_opts {
	const char *url;      /* https://host:port (no trailing path) */
	const char *ca_file;  /* NULL: system store */
	const char *attester; /* name in the attester table */
	struct bw_attester_opts aopts;
	enum bw_jwk_type key_type; /* ephemeral tee key (default EC P-256) */
	int handshake_tries;  /* default 5 */
	long timeout_ms;      /* per request, default 10000 */
	long backoff_ms;      /* first retry delay, doubled per try, default 200 */
	const char *attestation_out; /* if set: save each Attestation message sent (not secret);
				      * a failure to save is reported by bw_kbs_client_attestation_saved */
	bw_log_fn log;        /* NULL, or told of each handshake retry (debug, with the cause) */
	void *log_ctx;
};
struct bw_kbs_client;
/* -EINVAL (not https://), -ENOENT (unknown attester), -ELIBACC (libcurl missing), -ENOMEM. */
int bw_kbs_client_new(const struct bw_kbs_client_opts *o, struct bw_kbs_client **out);
void bw_kbs_client_free(struct bw_kbs_client *c);
/* 0 when every Attestation message was saved to attestation_out (or none was asked for), else
 * the -errno of the last save that failed: the caller warns (the handshake went on without it). */
int bw_kbs_client_attestation_saved(const struct bw_kbs_client *c);
/* Run the RCAR handshake now (normally implicit). */
int bw_kbs_attest(struct bw_kbs_client *c, char *err, size_t errlen);
/* Fetch and decrypt a resource "REPO/TYPE/TAG"; reuses the token while valid, re-handshakes
 * on 401. Errors carry the server's error type and detail. */
int bw_kbs_get_resource(struct bw_kbs_client *c, const char *path, struct bw_secret *out,
			char *err, size_t errlen);
/* The same into the caller's locked buffer (no allocation per fetch: long-lived callers). */
int bw_kbs_get_resource_into(struct bw_kbs_client *c, const char *path, uint8_t *out, size_t cap,
			     size_t *len, char *err, size_t errlen);
/* The current token (NULL before a handshake) and the tee public key's JWK text. */
const char *bw_kbs_client_token(struct bw_kbs_client *c);

/* One-shot: attest and fetch path into out, which must be exactly len bytes long (volume keys).
 * For key-source callbacks (storage): the client and its ephemeral key live only in this call. */
int bw_kbs_fetch_key(const struct bw_kbs_client_opts *o, const char *path, uint8_t *out, size_t len,
		     char *err, size_t errlen);

/* Resource paths are exactly three segments of [A-Za-z0-9._-] (no "." / ".."), <= 255 bytes. */
bool bw_kbs_resource_path_valid(const char *path);

/* errno-style code for an HTTP status the client got back (for exit codes). */
#define BW_KBS_EDENIED EACCES  /* 401/403 */
#define BW_KBS_ENOTFOUND ENOENT /* 404 */

#endif
