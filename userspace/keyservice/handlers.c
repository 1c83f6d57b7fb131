// SPDX-License-Identifier: GPL-2.0-only
/*
 * The three protocol endpoints, independent of the HTTP transport: request bytes in, status
 * and JSON body out. Every failure is an ErrorInformation {"type","detail"} and carries no key.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "keyservice/keyservice.h"

void ks_error(struct ks_reply *r, int status, const char *type, const char *fmt, ...)
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

static void reply_json(struct ks_reply *r, struct json_object *o)
{
	r->status = 200;
	r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

void ks_handle_auth(struct ks_ctx *c, const char *source, const char *body, size_t len, time_t now,
		    struct ks_reply *r)
{
	struct json_object *req = NULL, *ch;
	const char *version, *tee;
	struct ks_session *s;

	if (bw_kbs_parse_object(body, len, &req) < 0) {
		c->m.bad_request++;
		ks_error(r, 400, "MalformedRequest", "Request is not a JSON object of at most %d bytes", BW_KBS_MAX_BODY);
		return;
	}
	version = bw_json_str(req, "version");
	tee = bw_json_str(req, "tee");
	if (!version || strcmp(version, BW_KBS_VERSION)) {
		c->m.auth_fail++;
		ks_error(r, 401, "ProtocolVersion", "KBS Client Protocol Version Mismatch: expect =%s while the request is %.32s",
			 BW_KBS_VERSION, version ? version : "(none)");
	} else if (!tee || !ks_verifier_find(tee)) {
		c->m.auth_fail++;
		ks_error(r, 401, "AttestationError", "tee %.32s is not supported", tee ? tee : "(none)");
	} else if (!(s = ks_session_create(c->sessions, tee, source, now))) {
		c->m.auth_fail++;
		ks_error(r, 503, "SessionsExhausted", "too many open sessions, retry later");
	} else {
		c->m.auth_ok++;
		ch = json_object_new_object();
		json_object_object_add(ch, "nonce", json_object_new_string(s->nonce));
		json_object_object_add(ch, "extra-params", json_object_new_object());
		reply_json(r, ch);
		strcpy(r->set_cookie, s->id);
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

static char *issue_token(struct ks_ctx *c, const char *tee, struct json_object *jwk,
			 struct json_object *claims, struct json_object *rules, time_t now)
{
	struct json_object *t = json_object_new_object();
	char *tok = NULL;

	json_object_object_add(t, "iss", json_object_new_string(KS_ISSUER));
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

/* Verify an attestation for session s; on success the token is stored in the session. */
static int attest(struct ks_ctx *c, struct ks_session *s, const struct attestation *a, time_t now,
		  char *err, size_t errlen)
{
	const struct ks_verifier *v = ks_verifier_find(s->tee);
	struct json_object *claims = NULL, *rules;
	char *tok = NULL;
	EVP_PKEY *pk = NULL;
	const char *alg;
	uint8_t rd[BW_KBS_REPORT_DATA_LEN];
	int r;

	if (strlen(a->nonce) != strlen(s->nonce) || !bw_memeq_ct(a->nonce, s->nonce, strlen(s->nonce))) {
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
	r = v->verify(&c->policy, a->evidence, rd, sizeof(rd), &claims, err, errlen);
	if (r < 0)
		return r;
	rules = ks_policy_match(&c->policy, claims);
	if (!rules || json_object_array_length(rules) == 0) {
		snprintf(err, errlen, "the evidence matches no policy rule (reference values or AK)");
		r = -EACCES;
	} else if (!(tok = issue_token(c, s->tee, a->jwk, claims, rules, now)) ||
		   ks_session_attested(c->sessions, s, tok, now) < 0) {
		free(tok);
		snprintf(err, errlen, "token signing failed");
		r = -EIO;
	}
	json_object_put(rules);
	json_object_put(claims);
	return r;
}

void ks_handle_attest(struct ks_ctx *c, const char *cookie, const char *body, size_t len, time_t now,
		      struct ks_reply *r)
{
	struct ks_session *s = ks_session_find(c->sessions, cookie, now);
	struct attestation a = { 0 };
	char err[BW_ERR_LEN] = "";
	struct json_object *o;

	if (!s) {
		c->m.attest_fail++;
		ks_error(r, 401, "InvalidCookie", "no valid %s cookie (unknown or expired session)", BW_KBS_COOKIE);
		return;
	}
	if (s->nonce_used) {
		c->m.attest_fail++;
		ks_error(r, 401, "AttestationError", "the session's nonce was already used");
		return;
	}
	/* Single use: whatever happens next, this nonce cannot be presented again. */
	s->nonce_used = true;
	if (parse_attestation(body, len, &a, err, sizeof(err)) < 0) {
		c->m.bad_request++;
		ks_error(r, 400, "MalformedRequest", "%s", err);
		ks_session_drop(c->sessions, s); /* its nonce is spent: the session has no further use */
	} else if (attest(c, s, &a, now, err, sizeof(err)) < 0) {
		c->m.attest_fail++;
		ks_error(r, 401, "AttestationError", "%s", err);
		ks_session_drop(c->sessions, s);
	} else {
		c->m.attest_ok++;
		o = json_object_new_object();
		json_object_object_add(o, "token", json_object_new_string(s->token));
		reply_json(r, o);
	}
	json_object_put(a.msg);
}

/*
 * Verified tokens, direct-mapped by SHA-256 of the token text: the same bytes verified once need
 * no second ECDSA verification until they expire. The policy is still checked per request.
 */
#define TOKEN_SLOTS 1024
struct ks_token_cache {
	struct slot {
		uint8_t hash[32];
		int64_t exp;
		struct json_object *claims;
		EVP_PKEY *tee;   /* the token's tee-pubkey, imported */
		const char *alg; /* JWE alg for it */
	} s[TOKEN_SLOTS];
};

void ks_ctx_free_cache(struct ks_ctx *c)
{
	for (size_t i = 0; c->tokens && i < TOKEN_SLOTS; i++) {
		json_object_put(c->tokens->s[i].claims);
		EVP_PKEY_free(c->tokens->s[i].tee);
	}
	free(c->tokens);
	c->tokens = NULL;
	bw_secret_free(&c->scratch);
}

static int verify_cached(struct ks_ctx *c, const char *tok, time_t now, struct json_object **claims,
			 struct slot **slot, char *err, size_t errlen)
{
	uint8_t h[32];
	struct slot *sl;
	struct json_object *exp, *jwk;
	EVP_PKEY *tee = NULL;
	const char *alg = NULL;
	int r;

	if (!c->tokens && !(c->tokens = calloc(1, sizeof(*c->tokens))))
		return -ENOMEM;
	EVP_Digest(tok, strlen(tok), h, NULL, EVP_sha256(), NULL);
	sl = &c->tokens->s[(h[0] | h[1] << 8) % TOKEN_SLOTS];
	if (sl->claims && !memcmp(sl->hash, h, 32) && sl->exp > (int64_t)now) {
		*claims = json_object_get(sl->claims);
		*slot = sl;
		return 0;
	}
	r = bw_jwt_verify(c->signing_key, KS_ISSUER, tok, now, claims, err, errlen);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(*claims, "tee-pubkey", &jwk) || bw_jwk_import(jwk, &tee, &alg) < 0) {
		json_object_put(*claims);
		snprintf(err, errlen, "token without a usable tee-pubkey");
		return -EINVAL;
	}
	json_object_put(sl->claims);
	EVP_PKEY_free(sl->tee);
	memcpy(sl->hash, h, 32);
	sl->exp = json_object_object_get_ex(*claims, "exp", &exp) ? json_object_get_int64(exp) : 0;
	sl->claims = json_object_get(*claims);
	sl->tee = tee;
	sl->alg = alg;
	*slot = sl;
	return 0;
}

/* Token claims from the bearer token, or from the cookie's attested session. */
static int authenticate(struct ks_ctx *c, const char *cookie, const char *bearer, time_t now,
			struct json_object **claims, struct slot **slot, char *err, size_t errlen)
{
	struct ks_session *s;

	if (!bearer && cookie && (s = ks_session_find(c->sessions, cookie, now)) && s->token)
		bearer = s->token;
	if (!bearer) {
		snprintf(err, errlen, "no token: attest first (cookie session or Authorization: Bearer)");
		return -ENOENT;
	}
	return verify_cached(c, bearer, now, claims, slot, err, errlen);
}

void ks_handle_resource(struct ks_ctx *c, const char *cookie, const char *bearer, const char *path,
			time_t now, struct ks_reply *r)
{
	struct json_object *claims = NULL, *rules = NULL;
	struct slot *sl = NULL;
	char err[BW_ERR_LEN] = "";
	int e;

	if (!bw_kbs_resource_path_valid(path)) {
		c->m.bad_request++;
		ks_error(r, 404, "InvalidRequestPath", "resource path must be REPO/TYPE/TAG of [A-Za-z0-9._-]");
		return;
	}
	e = authenticate(c, cookie, bearer, now, &claims, &sl, err, sizeof(err));
	if (e < 0) {
		c->m.resource_denied++;
		ks_error(r, 401, e == -ENOENT ? "TokenNotFound" : "TokenVerifierError", "%s", err);
		return;
	}
	json_object_object_get_ex(claims, "rules", &rules);
	if (!ks_policy_allows(&c->policy, rules, bw_json_str(claims, "tee"), path)) {
		c->m.resource_denied++;
		ks_error(r, 403, "PolicyDeny", "resource %s is not allowed for this evidence", path);
	} else if ((!c->scratch.data && bw_secret_new(&c->scratch, KS_RESOURCE_LEN) < 0) ||
		   ks_derive_into(&c->master, &c->salt, path, c->scratch.data) < 0 ||
		   bw_jwe_encrypt_to(sl->tee, sl->alg, c->scratch.data, KS_RESOURCE_LEN, &r->body) < 0) {
		c->m.resource_fail++;
		ks_error(r, 500, "JweError", "cannot derive or encrypt the resource");
	} else {
		c->m.resource_ok++;
		r->status = 200;
	}
	if (c->scratch.data)
		OPENSSL_cleanse(c->scratch.data, c->scratch.size);
	json_object_put(claims);
}
