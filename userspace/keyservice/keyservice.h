/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark-keyservice: the reference key service for the KBS 0.4.0 protocol subset (see
 * README.md here). Pieces: policy (which evidence may read which resources), verifiers
 * (sample; tpm through userspace/tpm), sessions, resource derivation, connection limits and the
 * HTTP front end.
 */
#ifndef BULWARK_KEYSERVICE_H
#define BULWARK_KEYSERVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <json-c/json.h>
#include <openssl/types.h>
#include "common/common.h"
#include "kbs/kbs.h"
#include "tpm/tpm.h"

#define BW_KS_ISSUER "bulwark-keyservice" /* iss of the tokens we sign and accept */

/* ---- policy ---- */
struct bw_ks_rule {
	char *name;
	char ref[96];           /* "name@<16 hex of SHA-256 of the rule's JSON>": what tokens carry */
	char *tee;              /* "sample" or "tpm" */
	char **aks;             /* tpm: trusted AK identities (SHA-256 hex of SPKI DER) */
	size_t n_aks;
	bool has_pcr[BW_TPM_PCRS];  /* tpm: reference PCR values (SHA-256 bank), only those listed */
	uint8_t pcr[BW_TPM_PCRS][32];
	char **resources;       /* "repo/type/tag" exact or "prefix/" (segment boundary) or "*" */
	size_t n_resources;
};
struct bw_ks_policy {
	bool sample;            /* sample evidence accepted at all (tests only) */
	struct bw_ks_rule *rules;
	size_t n_rules;
};
/* Parse policy JSON (bounded, strict: unknown members are errors). */
int bw_ks_policy_parse(const char *text, size_t len, struct bw_ks_policy *p, char *err, size_t errlen);
int bw_ks_policy_load(const char *path, struct bw_ks_policy *p, char *err, size_t errlen);
void bw_ks_policy_free(struct bw_ks_policy *p);
/*
 * The rules whose reference values the claims satisfy, as a JSON array of their refs (empty when
 * none matches). claims: {"tee":T, ...} with for tpm "ak": hex and "pcrs": [24 hex]. A ref names
 * the rule's content too, so editing a rule (or removing it) revokes the tokens issued under it.
 */
struct json_object *bw_ks_policy_match(const struct bw_ks_policy *p, struct json_object *claims);
/* Whether any of the referenced rules (still in the policy unchanged, same tee) allows the path. */
bool bw_ks_policy_allows(const struct bw_ks_policy *p, struct json_object *rule_names, const char *tee,
			 const char *path);

/* ---- verifiers: evidence + expected report data -> claims ---- */
struct bw_ks_verifier {
	const char *tee;
	int (*verify)(const struct bw_ks_policy *p, struct json_object *evidence, const uint8_t *report_data,
		      size_t len, struct json_object **claims, char *err, size_t errlen);
};
const struct bw_ks_verifier *bw_ks_verifier_find(const char *tee);

/* ---- sessions ---- */
#define BW_KS_SOURCE_LEN 48 /* a client address as text (INET6_ADDRSTRLEN) */
struct bw_ks_source;
struct bw_ks_session {
	char id[65];
	char nonce[48];
	char tee[16];
	time_t created, expires;
	bool nonce_used;   /* single use: any attestation attempt consumes it */
	char *token;       /* after a successful attestation */
	struct bw_ks_source *src;
	struct bw_ks_session *bnext, *prev, *next, *src_prev, *src_next; /* table internals */
};
struct bw_ks_session_limits {
	size_t max;                 /* sessions in all */
	size_t per_source;          /* unattested sessions per client address (0: max) */
	time_t lifetime;            /* attested sessions, from the attestation */
	time_t unattested_lifetime; /* from /auth until the attestation (0 or larger: lifetime) */
};
struct bw_ks_sessions;
struct bw_ks_sessions *bw_ks_sessions_new(const struct bw_ks_session_limits *l);
void bw_ks_sessions_free(struct bw_ks_sessions *s);
/* New session with a fresh nonce for a client at address source. Always finds room: at the
 * source's quota its oldest unattested session goes, at the global limit the oldest unattested
 * one (then the oldest attested one). NULL only on allocation/RNG failure or a bad tee. */
struct bw_ks_session *bw_ks_session_create(struct bw_ks_sessions *s, const char *tee, const char *source, time_t now);
/* Mark x attested with token (taken over, malloc'ed): it now lives lifetime from now. */
int bw_ks_session_attested(struct bw_ks_sessions *s, struct bw_ks_session *x, char *token, time_t now);
/* Remove x now (a failed attestation: its nonce is spent, the session is of no further use). */
void bw_ks_session_drop(struct bw_ks_sessions *s, struct bw_ks_session *x);
/* NULL when unknown or expired. */
struct bw_ks_session *bw_ks_session_find(struct bw_ks_sessions *s, const char *id, time_t now);
size_t bw_ks_sessions_purge(struct bw_ks_sessions *s, time_t now);
size_t bw_ks_sessions_count(const struct bw_ks_sessions *s);
size_t bw_ks_sessions_pending(const struct bw_ks_sessions *s);
uint64_t bw_ks_sessions_evicted(const struct bw_ks_sessions *s);

/* ---- resources ---- */
#define BW_KS_RESOURCE_LEN 32
/* HKDF-SHA256(master, salt, info(path), 32); bulwark/volume/<id> uses info "key-<id>". */
int bw_ks_derive(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
		 struct bw_secret *out);
/* The same into out[BW_KS_RESOURCE_LEN] (caller's locked memory). */
int bw_ks_derive_into(const struct bw_secret *master, const struct bw_secret *salt, const char *path,
		      uint8_t *out);
/* HKDF info for a resource path. */
int bw_ks_info(const char *path, char *buf, size_t size);
/* Read a secret file: regular, owned by us, mode without group/other bits, min..4096 bytes
 * (-EPERM wrong owner/mode, -EINVAL wrong size). */
int bw_ks_read_secret(const char *path, size_t min, struct bw_secret *out);

/* ---- protocol handlers (transport independent, used by the HTTP front end and the fuzzer) ---- */
/*
 * The handlers may run on several threads at once with one ctx: `lock` guards the sessions and
 * the token cache (held only for table operations and lookups, never across signatures,
 * verifications or key derivation), `policy_lock` the policy (read while evidence is verified or
 * a resource checked, written by a reload). A zero-initialised ctx has valid locks (glibc's
 * PTHREAD_MUTEX_INITIALIZER and PTHREAD_RWLOCK_INITIALIZER are all zero).
 */
struct bw_ks_ctx {
	struct bw_ks_policy policy;
	struct bw_ks_sessions *sessions;
	EVP_PKEY *signing_key;
	struct bw_secret master, salt;
	time_t token_lifetime;
	struct bw_ks_token_cache *tokens; /* verified tokens by hash; allocated on first use */
	pthread_mutex_t lock;          /* sessions, tokens */
	pthread_rwlock_t policy_lock;  /* policy */
	struct bw_ks_metrics {
		_Atomic uint64_t auth_ok, auth_fail, attest_ok, attest_fail, resource_ok, resource_denied,
			resource_fail, bad_request;
	} m;
};
struct bw_ks_reply {
	int status;           /* HTTP status */
	char *body;           /* JSON, malloc'ed */
	char set_cookie[65];  /* session id to set, or "" */
};
/* body/len: request body; cookie: kbs-session-id value or NULL; bearer: token or NULL. */
/* source: the client's address as text (sessions are accounted per source); NULL: unknown. */
void bw_ks_handle_auth(struct bw_ks_ctx *c, const char *source, const char *body, size_t len, time_t now,
		       struct bw_ks_reply *r);
void bw_ks_handle_attest(struct bw_ks_ctx *c, const char *cookie, const char *body, size_t len, time_t now,
			 struct bw_ks_reply *r);
void bw_ks_handle_resource(struct bw_ks_ctx *c, const char *cookie, const char *bearer, const char *path,
			   time_t now, struct bw_ks_reply *r);
/* Replace the policy (a reload): waits for the requests using the old one. */
void bw_ks_ctx_set_policy(struct bw_ks_ctx *c, struct bw_ks_policy *p);
/* Free the token cache and the calling thread's scratch buffer. */
void bw_ks_ctx_free_cache(struct bw_ks_ctx *c);
/* A thread that ran handlers is done: free its locked scratch buffer (the key being served). */
void bw_ks_thread_done(void);
/* An ErrorInformation reply. */
void bw_ks_error(struct bw_ks_reply *r, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- connections (conns.c, the libevent front end only): bounds evhttp lacks ---- */
struct event_base;
struct evconnlistener;
struct bufferevent;
/* Descriptors kept free below RLIMIT_NOFILE for the listener, logs, TPM, policy reloads and
 * connections being closed: the connection cap is at most the limit minus this. */
#define BW_KS_FD_HEADROOM 64
struct bw_ks_conn_limits {
	size_t max;             /* open connections in all (lowered while descriptors run out) */
	size_t per_source;      /* open connections per client address */
	long request_timeout_ms; /* from accept / the last reply to the next complete request */
};
struct bw_ks_conn_stats {
	size_t open, closing;
	uint64_t accepted, evicted_full, evicted_source, evicted_fd, timed_out, accept_errors;
};
/*
 * One bw_ks_conns for the whole service (the caps are global, whichever thread accepted a
 * connection), one bw_ks_conns_loop per event loop (thread). A connection belongs to the loop that
 * accepted it; another thread closing it (to make room) hands it to its loop, which shuts the
 * socket down, so a descriptor is never touched by a thread that could see it reused.
 */
struct bw_ks_conns;
struct bw_ks_conns_loop;
struct bw_ks_conns *bw_ks_conns_new(SSL_CTX *ssl, const struct bw_ks_conn_limits *l);
/* Free after every loop (bw_ks_conns_loop_free). */
void bw_ks_conns_free(struct bw_ks_conns *c);
/* A loop on base, taking over the listener's accept errors (EMFILE backoff) and bursts. The
 * base must be locking (evthread_use_pthreads before event_base_new) when there are several. */
struct bw_ks_conns_loop *bw_ks_conns_loop_new(struct bw_ks_conns *c, struct event_base *base, struct evconnlistener *lev);
/* The calling thread runs loop lp (call first thing in the thread that dispatches its base). */
void bw_ks_conns_loop_enter(struct bw_ks_conns_loop *lp);
/* After evhttp_free of the loop's evhttp (which frees its connections), with every loop stopped. */
void bw_ks_conns_loop_free(struct bw_ks_conns_loop *lp);
/* evhttp's bufferevent callback: a TLS bufferevent for a new connection, accounted. */
struct bufferevent *bw_ks_conns_bev(struct bw_ks_conns_loop *lp);
/* Whether bev is a TLS bufferevent (evhttp falls back to plain sockets when the callback fails). */
bool bw_ks_conns_is_tls(struct bufferevent *bev);
/* A complete request arrived on the connection of bev: it becomes the most recently active. */
void bw_ks_conns_served(struct bw_ks_conns_loop *lp, struct bufferevent *bev);
void bw_ks_conns_stats(struct bw_ks_conns *c, struct bw_ks_conn_stats *st);

#endif
