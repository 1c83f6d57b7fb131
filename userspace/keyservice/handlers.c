// SPDX-License-Identifier: GPL-2.0-only
/*
 * The three protocol endpoints, independent of the HTTP transport: request bytes in, status
 * and JSON body out. Every failure is an ErrorInformation {"type","detail"} and carries no key.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "keyservice/keyservice.h"

void bw_ks_error(struct bw_ks_reply *r, int status, const char *type, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char detail[BW_ERR_LEN + 64], t[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/* Details may quote client bytes (a version, a tee) cut at a byte count: keep printable
	 * ASCII only, so the body is valid UTF-8 and JSON whatever the client sent. */
	for (char *p = detail; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	snprintf(t, sizeof(t), BW_KBS_ERR_PREFIX "%s", type);
	json_object_object_add(o, "type", json_object_new_string(t));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	free(r->body);
	r->status = status;
	r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	r->set_cookie[0] = '\0';
	json_object_put(o);
}

static void reply_json(struct bw_ks_reply *r, struct json_object *o)
{
	r->status = 200;
	r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

void bw_ks_handle_auth(struct bw_ks_ctx *c, const char *source, const char *body, size_t len, time_t now,
		       struct bw_ks_reply *r)
{
	struct json_object *req = NULL, *ch;
	const char *version, *tee;
	struct bw_ks_session *s;
	char nonce[sizeof(s->nonce)];

	if (bw_kbs_parse_object(body, len, &req) < 0) {
		c->m.bad_request++;
		bw_ks_error(r, 400, "MalformedRequest", "Request is not a JSON object of at most %d bytes", BW_KBS_MAX_BODY);
		return;
	}
	version = bw_json_str(req, "version");
	tee = bw_json_str(req, "tee");
	if (!version || strcmp(version, BW_KBS_VERSION)) {
		c->m.auth_fail++;
		bw_ks_error(r, 401, "ProtocolVersion", "KBS Client Protocol Version Mismatch: expect =%s while the request is %.32s",
			    BW_KBS_VERSION, version ? version : "(none)");
	} else if (!tee || !bw_ks_verifier_find(tee)) {
		c->m.auth_fail++;
		bw_ks_error(r, 401, "AttestationError", "tee %.32s is not supported", tee ? tee : "(none)");
	} else {
		pthread_mutex_lock(&c->lock);
		s = bw_ks_session_create(c->sessions, tee, source, now);
		if (s) {
			memcpy(nonce, s->nonce, sizeof(nonce));
			memcpy(r->set_cookie, s->id, sizeof(s->id));
		}
		pthread_mutex_unlock(&c->lock);
		if (!s) {
			c->m.auth_fail++;
			bw_ks_error(r, 503, "SessionsExhausted", "too many open sessions, retry later");
		} else {
			c->m.auth_ok++;
			ch = json_object_new_object();
			json_object_object_add(ch, "nonce", json_object_new_string(nonce));
			json_object_object_add(ch, "extra-params", json_object_new_object());
			reply_json(r, ch);
		}
	}
	json_object_put(req);
}

struct attestation {
	struct json_object *msg, *jwk, *evidence;
	const char *nonce;
};

static int parse_attestation(const char *body, size_t len, struct attestation *a, char *err, size_t errlen)
{
	struct json_object *rt, *te, *add;

	if (bw_kbs_parse_object(body, len, &a->msg) < 0) {
		snprintf(err, errlen, "Attestation is not a JSON object of at most %d bytes", BW_KBS_MAX_BODY);
		return -EBADMSG;
	}
	if (!json_object_object_get_ex(a->msg, "runtime-data", &rt) || !json_object_is_type(rt, json_type_object) ||
	    !(a->nonce = bw_json_str(rt, "nonce")) || !json_object_object_get_ex(rt, "tee-pubkey", &a->jwk) ||
	    !json_object_is_type(a->jwk, json_type_object) || !json_object_object_get_ex(a->msg, "tee-evidence", &te) ||
	    !json_object_object_get_ex(te, "primary_evidence", &a->evidence) ||
	    !json_object_is_type(a->evidence, json_type_object)) {
		snprintf(err, errlen, "Attestation needs runtime-data {nonce, tee-pubkey} and tee-evidence.primary_evidence");
		return -EBADMSG;
	}
	/* No device (additional) evidence is supported: it must be absent or "". */
	if (json_object_object_get_ex(te, "additional_evidence", &add) &&
	    (!json_object_is_type(add, json_type_string) || json_object_get_string_len(add) != 0)) {
		snprintf(err, errlen, "additional_evidence is not supported");
		return -EBADMSG;
	}
	return 0;
}

static char *issue_token(struct bw_ks_ctx *c, const char *tee, struct json_object *jwk,
			 struct json_object *claims, struct json_object *rules, time_t now)
{
	struct json_object *t = json_object_new_object();
	char *tok = NULL;

	json_object_object_add(t, "iss", json_object_new_string(BW_KS_ISSUER));
	json_object_object_add(t, "iat", json_object_new_int64(now));
	json_object_object_add(t, "exp", json_object_new_int64(now + c->token_lifetime));
	json_object_object_add(t, "tee", json_object_new_string(tee));
	json_object_object_add(t, "tee-pubkey", json_object_get(jwk));
	json_object_object_add(t, "rules", json_object_get(rules));
	json_object_object_add(t, "evidence-claims", json_object_get(claims));
	if (bw_jwt_sign(c->signing_key, t, &tok) < 0)
		tok = NULL;
	json_object_put(t);
	return tok;
}

/* What an attestation needs of its session, copied out of the table (another thread may evict
 * the session meanwhile: it is looked up again by id to record the token). */
struct claim {
	char id[65], nonce[48], tee[16];
};

static void drop_session(struct bw_ks_ctx *c, const char *id, time_t now)
{
	struct bw_ks_session *s;

	pthread_mutex_lock(&c->lock);
	if ((s = bw_ks_session_find(c->sessions, id, now)))
		bw_ks_session_drop(c->sessions, s);
	pthread_mutex_unlock(&c->lock);
}

/* Verify an attestation for session k; on success the token is stored in the session and a
 * copy returned in *token. */
static int attest(struct bw_ks_ctx *c, const struct claim *k, const struct attestation *a, time_t now,
		  char **token, char *err, size_t errlen)
{
	const struct bw_ks_verifier *v = bw_ks_verifier_find(k->tee);
	struct json_object *claims = NULL, *rules = NULL;
	struct bw_ks_session *s;
	char *tok = NULL;
	EVP_PKEY *pk = NULL;
	const char *alg;
	uint8_t rd[BW_KBS_REPORT_DATA_LEN];
	int r;

	if (strlen(a->nonce) != strlen(k->nonce) || !bw_memeq_ct(a->nonce, k->nonce, strlen(k->nonce))) {
		snprintf(err, errlen, "the nonce in the attestation is not this session's challenge");
		return -EKEYREJECTED;
	}
	if (bw_jwk_import(a->jwk, &pk, &alg) < 0) {
		snprintf(err, errlen, "tee-pubkey is not an EC P-256 (ECDH-ES+A256KW) or RSA-OAEP-256 JWK");
		return -EINVAL;
	}
	EVP_PKEY_free(pk);
	r = bw_kbs_report_data(a->jwk, a->nonce, rd);
	if (r < 0) {
		snprintf(err, errlen, "runtime-data cannot be canonicalised");
		return r;
	}
	pthread_rwlock_rdlock(&c->policy_lock);
	r = v->verify(&c->policy, a->evidence, rd, sizeof(rd), &claims, err, errlen);
	if (r == 0)
		rules = bw_ks_policy_match(&c->policy, claims);
	pthread_rwlock_unlock(&c->policy_lock);
	if (r < 0)
		return r;
	if (!rules || json_object_array_length(rules) == 0) {
		snprintf(err, errlen, "the evidence matches no policy rule (reference values or AK)");
		r = -EACCES;
	} else if (!(tok = issue_token(c, k->tee, a->jwk, claims, rules, now)) || !(*token = strdup(tok))) {
		free(tok);
		snprintf(err, errlen, "token signing failed");
		r = -EIO;
	} else {
		pthread_mutex_lock(&c->lock);
		s = bw_ks_session_find(c->sessions, k->id, now);
		r = s ? bw_ks_session_attested(c->sessions, s, tok, now) : -ESTALE;
		pthread_mutex_unlock(&c->lock);
		if (r < 0) {
			free(tok);
			free(*token);
			*token = NULL;
			snprintf(err, errlen, r == -ESTALE ? "the session expired or was evicted during the attestation"
							   : "token signing failed");
		}
	}
	json_object_put(rules);
	json_object_put(claims);
	return r;
}

void bw_ks_handle_attest(struct bw_ks_ctx *c, const char *cookie, const char *body, size_t len, time_t now,
			 struct bw_ks_reply *r)
{
	struct bw_ks_session *s;
	struct attestation a = { 0 };
	struct claim k;
	char err[BW_ERR_LEN] = "", *token = NULL;
	bool used = false;
	struct json_object *o;

	pthread_mutex_lock(&c->lock);
	s = bw_ks_session_find(c->sessions, cookie, now);
	if (s) {
		/* Single use: whatever happens next, this nonce cannot be presented again. */
		used = s->nonce_used;
		s->nonce_used = true;
		memcpy(k.id, s->id, sizeof(k.id));
		memcpy(k.nonce, s->nonce, sizeof(k.nonce));
		memcpy(k.tee, s->tee, sizeof(k.tee));
	}
	pthread_mutex_unlock(&c->lock);
	if (!s) {
		c->m.attest_fail++;
		bw_ks_error(r, 401, "InvalidCookie", "no valid %s cookie (unknown or expired session)", BW_KBS_COOKIE);
		return;
	}
	if (used) {
		c->m.attest_fail++;
		bw_ks_error(r, 401, "AttestationError", "the session's nonce was already used");
		return;
	}
	if (parse_attestation(body, len, &a, err, sizeof(err)) < 0) {
		c->m.bad_request++;
		bw_ks_error(r, 400, "MalformedRequest", "%s", err);
		drop_session(c, k.id, now); /* its nonce is spent: the session has no further use */
	} else if (attest(c, &k, &a, now, &token, err, sizeof(err)) < 0) {
		c->m.attest_fail++;
		bw_ks_error(r, 401, "AttestationError", "%s", err);
		drop_session(c, k.id, now);
	} else {
		c->m.attest_ok++;
		o = json_object_new_object();
		json_object_object_add(o, "token", json_object_new_string(token));
		reply_json(r, o);
	}
	free(token);
	json_object_put(a.msg);
}

/*
 * Verified tokens, by SHA-256 of the token text: the same bytes verified once need no second
 * ECDSA verification until they expire. The policy is still checked per request. Sets of
 * TOKEN_WAYS (least recently used out): direct-mapped slots made two live tokens that met in a
 * slot evict each other on every fetch (with 256 clients about one in five tokens shared a slot
 * of 1024, each of their fetches then verified the token again).
 */
#define TOKEN_SETS 1024
#define TOKEN_WAYS 4
struct bw_ks_token_cache {
	uint64_t tick;
	struct slot {
		uint8_t hash[32];
		int64_t exp;
		uint64_t used;   /* tick of the last hit or fill */
		struct json_object *claims;
		EVP_PKEY *tee;   /* the token's tee-pubkey, imported */
		const char *alg; /* JWE alg for it */
	} s[TOKEN_SETS][TOKEN_WAYS];
};

/* The key being served sits in this thread's locked buffer, wiped after each use. */
static __thread struct bw_secret scratch;

void bw_ks_thread_done(void)
{
	bw_secret_free(&scratch);
}

void bw_ks_ctx_free_cache(struct bw_ks_ctx *c)
{
	for (size_t i = 0; c->tokens && i < TOKEN_SETS; i++)
		for (size_t w = 0; w < TOKEN_WAYS; w++) {
			json_object_put(c->tokens->s[i][w].claims);
			EVP_PKEY_free(c->tokens->s[i][w].tee);
		}
	free(c->tokens);
	c->tokens = NULL;
	bw_ks_thread_done();
}

void bw_ks_ctx_set_policy(struct bw_ks_ctx *c, struct bw_ks_policy *p)
{
	struct bw_ks_policy old;

	pthread_rwlock_wrlock(&c->policy_lock);
	old = c->policy;
	c->policy = *p;
	pthread_rwlock_unlock(&c->policy_lock);
	bw_ks_policy_free(&old);
}

/* Whether the verified claims' rules (under the current policy) allow path. Called with c->lock
 * held when the claims are the cache's (json-c reference counts are not atomic). */
static bool allowed(struct bw_ks_ctx *c, struct json_object *claims, const char *path)
{
	struct json_object *rules = NULL;
	bool ok;

	json_object_object_get_ex(claims, "rules", &rules);
	pthread_rwlock_rdlock(&c->policy_lock);
	ok = bw_ks_policy_allows(&c->policy, rules, bw_json_str(claims, "tee"), path);
	pthread_rwlock_unlock(&c->policy_lock);
	return ok;
}

/*
 * Authorise a request for path with token tok: 0 and the token's tee key (a new reference) and
 * JWE alg when the policy allows it, -EACCES when it does not, another -errno when the token does
 * not verify. The same bytes verified once need no second ECDSA verification until they expire;
 * the signature check runs outside the lock.
 */
static int authorize(struct bw_ks_ctx *c, const char *tok, const char *path, time_t now, EVP_PKEY **tee,
		     const char **alg, char *err, size_t errlen)
{
	uint8_t h[32];
	struct slot *set, *sl;
	struct json_object *claims = NULL, *exp, *jwk;
	EVP_PKEY *pk = NULL;
	const char *a = NULL;
	int r = -ENOENT;

	EVP_Digest(tok, strlen(tok), h, NULL, EVP_sha256(), NULL);
	pthread_mutex_lock(&c->lock);
	if (!c->tokens && !(c->tokens = calloc(1, sizeof(*c->tokens)))) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	set = c->tokens->s[(h[0] | h[1] << 8) % TOKEN_SETS];
	for (sl = set; sl < set + TOKEN_WAYS; sl++)
		if (sl->claims && !memcmp(sl->hash, h, 32))
			break;
	if (sl < set + TOKEN_WAYS && sl->exp > (int64_t)now) {
		sl->used = ++c->tokens->tick;
		r = allowed(c, sl->claims, path) ? 0 : -EACCES;
		if (r == 0 && EVP_PKEY_up_ref(sl->tee)) {
			*tee = sl->tee;
			*alg = sl->alg;
		} else if (r == 0)
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&c->lock);
	if (r != -ENOENT)
		return r;

	r = bw_jwt_verify(c->signing_key, BW_KS_ISSUER, tok, now, &claims, err, errlen);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(claims, "tee-pubkey", &jwk) || bw_jwk_import(jwk, &pk, &a) < 0 ||
	    !EVP_PKEY_up_ref(pk)) {
		EVP_PKEY_free(pk);
		json_object_put(claims);
		snprintf(err, errlen, "token without a usable tee-pubkey");
		return -EINVAL;
	}
	r = allowed(c, claims, path) ? 0 : -EACCES;
	pthread_mutex_lock(&c->lock);
	/* Into the set (which may have changed while the lock was free): the same token's way (another
	 * thread verified it too), else an empty or expired one, else the least recently used. */
	sl = set;
	for (struct slot *w = set; w < set + TOKEN_WAYS; w++) {
		if (w->claims && !memcmp(w->hash, h, 32)) {
			sl = w;
			break;
		}
		if (!w->claims || w->exp <= (int64_t)now)
			sl = sl->claims && sl->exp > (int64_t)now ? w : sl;
		else if (sl->claims && sl->exp > (int64_t)now && w->used < sl->used)
			sl = w;
	}
	sl->used = ++c->tokens->tick;
	json_object_put(sl->claims);
	EVP_PKEY_free(sl->tee);
	memcpy(sl->hash, h, 32);
	sl->exp = json_object_object_get_ex(claims, "exp", &exp) ? json_object_get_int64(exp) : 0;
	sl->claims = claims; /* the cache's now */
	sl->tee = pk;        /* and this reference */
	sl->alg = a;
	pthread_mutex_unlock(&c->lock);
	if (r < 0) {
		EVP_PKEY_free(pk);
		return r;
	}
	*tee = pk;
	*alg = a;
	return 0;
}

void bw_ks_handle_resource(struct bw_ks_ctx *c, const char *cookie, const char *bearer, const char *path,
			   time_t now, struct bw_ks_reply *r)
{
	_cleanup_free_ char *own = NULL;
	struct bw_ks_session *s;
	char err[BW_ERR_LEN] = "";
	EVP_PKEY *tee = NULL;
	const char *alg = NULL;
	int e;

	if (!bw_kbs_resource_path_valid(path)) {
		c->m.bad_request++;
		bw_ks_error(r, 404, "InvalidRequestPath", "resource path must be REPO/TYPE/TAG of [A-Za-z0-9._-]");
		return;
	}
	/* The token: bearer, or the one of the cookie's attested session. */
	if (!bearer && cookie) {
		pthread_mutex_lock(&c->lock);
		if ((s = bw_ks_session_find(c->sessions, cookie, now)) && s->token)
			bearer = own = strdup(s->token);
		pthread_mutex_unlock(&c->lock);
	}
	if (!bearer) {
		c->m.resource_denied++;
		bw_ks_error(r, 401, "TokenNotFound", "no token: attest first (cookie session or Authorization: Bearer)");
		return;
	}
	e = authorize(c, bearer, path, now, &tee, &alg, err, sizeof(err));
	if (e == -EACCES) {
		c->m.resource_denied++;
		bw_ks_error(r, 403, "PolicyDeny", "resource %s is not allowed for this evidence", path);
	} else if (e < 0) {
		c->m.resource_denied++;
		bw_ks_error(r, 401, "TokenVerifierError", "%s", err[0] ? err : "token cannot be verified");
	} else if ((!scratch.data && bw_secret_new(&scratch, BW_KS_RESOURCE_LEN) < 0) ||
		   bw_ks_derive_into(&c->master, &c->salt, path, scratch.data) < 0 ||
		   bw_jwe_encrypt_to(tee, alg, scratch.data, BW_KS_RESOURCE_LEN, &r->body) < 0) {
		c->m.resource_fail++;
		bw_ks_error(r, 500, "JweError", "cannot derive or encrypt the resource");
	} else {
		c->m.resource_ok++;
		r->status = 200;
	}
	if (scratch.data)
		OPENSSL_cleanse(scratch.data, scratch.size);
	EVP_PKEY_free(tee);
}
