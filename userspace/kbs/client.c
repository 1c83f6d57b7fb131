// SPDX-License-Identifier: GPL-2.0-only
/*
 * KBS 0.4.0 client: RCAR handshake and resource fetch over libcurl.
 *
 * Retries: a handshake is tried up to handshake_tries times with doubling backoff, but only
 * after transport errors and 5xx/429 answers; a 4xx is the service's verdict and retrying it
 * would only repeat the denial. A resource fetch that gets 401 (token expired, service
 * restarted with a new signing key) re-handshakes once per attempt, at most 3 attempts.
 */
#include <errno.h>
#include <string.h>
#include "common/curl.h"
#include "kbs/internal.h"
#include "kbs/kbs.h"

int bw_kbs_http_load(char *err, size_t len)
{
	return bw_curl_load(err, len);
}

#define RESOURCE_TRIES 3
#define TOKEN_SLACK 10 /* seconds: do not present a token this close to its expiry */

struct bw_kbs_client {
	struct bw_kbs_client_opts o;
	char *url, *ca;
	const struct bw_attester *att;
	CURL *curl;
	EVP_PKEY *key; /* ephemeral tee key; new per handshake, freed (and cleared) with the client */
	char *token;
	int64_t token_exp;
	int save_err; /* the last failure to save an Attestation message (attestation_out), -errno */
};

struct http_resp {
	long status;
	char *body;
	size_t len;
	bool too_big;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	struct http_resp *r = ud;
	size_t add = sz * n;
	char *nb;

	if (r->len + add > BW_KBS_MAX_BODY) {
		r->too_big = true;
		return 0;
	}
	nb = realloc(r->body, r->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static void resp_free(struct http_resp *r)
{
	if (r->body)
		OPENSSL_cleanse(r->body, r->len);
	free(r->body);
	*r = (struct http_resp){ 0 };
}

/* "server said 401 AttestationError: detail" from an ErrorInformation body. */
static void server_error(const struct http_resp *r, const char *what, char *err, size_t errlen)
{
	struct json_object *o = NULL;
	const char *type = NULL, *detail = NULL;

	if (r->body && bw_kbs_parse_object(r->body, r->len, &o) == 0) {
		type = bw_json_str(o, "type");
		detail = bw_json_str(o, "detail");
		if (type && !strncmp(type, BW_KBS_ERR_PREFIX, strlen(BW_KBS_ERR_PREFIX)))
			type += strlen(BW_KBS_ERR_PREFIX);
	}
	snprintf(err, errlen, "%s: HTTP %ld %s: %s", what, r->status, type ? type : "(no error type)",
		 detail ? detail : "(no detail)");
	json_object_put(o);
}

static int request(struct bw_kbs_client *c, const char *path, const char *body, struct http_resp *r,
		   char *err, size_t errlen)
{
	_cleanup_free_ char *url = NULL, *auth = NULL;
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	CURLcode cc;

	*r = (struct http_resp){ 0 };
	if (asprintf(&url, "%s%s", c->url, path) < 0) {
		url = NULL;
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	if (!body && c->token && asprintf(&auth, "Authorization: Bearer %s", c->token) >= 0)
		hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	if (body)
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	else
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	cc = curl_easy_perform(c->curl);
	curl_slist_free_all(hdrs);
	if (auth)
		OPENSSL_cleanse(auth, strlen(auth));
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s%s: %s", c->url, path,
			 r->too_big ? "response too large" : curl_easy_strerror(cc));
		resp_free(r);
		return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ? -EKEYREJECTED : -EIO;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

static void setup(struct bw_kbs_client *c)
{
	curl_easy_setopt(c->curl, CURLOPT_COOKIEFILE, ""); /* in-memory cookie engine */
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->o.timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca);
}

int bw_kbs_client_new(const struct bw_kbs_client_opts *o, struct bw_kbs_client **out)
{
	struct bw_kbs_client *c;

	/* https only: without server authentication a fake service could hand out a key it chose. */
	if (!o->url || strncmp(o->url, "https://", 8))
		return -EINVAL;
	if (bw_kbs_http_load(NULL, 0) < 0)
		return -ELIBACC;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->o = *o;
	c->att = bw_attester_find(o->attester ? o->attester : "tpm");
	c->url = strdup(o->url);
	c->ca = o->ca_file ? strdup(o->ca_file) : NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->curl = curl_easy_init();
	if (!c->att || !c->url || (o->ca_file && !c->ca) || !c->curl) {
		int r = c->att ? -ENOMEM : -ENOENT;
		bw_kbs_client_free(c);
		return r;
	}
	c->url[strcspn(c->url, "?#")] = '\0';
	while (strlen(c->url) > 8 && c->url[strlen(c->url) - 1] == '/')
		c->url[strlen(c->url) - 1] = '\0';
	if (c->o.handshake_tries <= 0)
		c->o.handshake_tries = 5;
	if (c->o.timeout_ms <= 0)
		c->o.timeout_ms = 10000;
	if (c->o.backoff_ms <= 0)
		c->o.backoff_ms = 200;
	setup(c);
	*out = c;
	return 0;
}

static void drop_session(struct bw_kbs_client *c)
{
	if (c->token)
		OPENSSL_cleanse(c->token, strlen(c->token));
	free(c->token);
	c->token = NULL;
	c->token_exp = 0;
	curl_easy_setopt(c->curl, CURLOPT_COOKIELIST, "ALL"); /* forget the session cookie */
}

void bw_kbs_client_free(struct bw_kbs_client *c)
{
	if (!c)
		return;
	drop_session(c);
	curl_easy_cleanup(c->curl);
	EVP_PKEY_free(c->key);
	free(c->url);
	free(c->ca);
	free(c);
}

const char *bw_kbs_client_token(struct bw_kbs_client *c) { return c->token; }

/* The token's exp, read without verification: only used to decide when to re-handshake. */
static int64_t token_exp(const char *tok)
{
	const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	_cleanup_free_ char *p = d2 ? strndup(d1 + 1, (size_t)(d2 - d1 - 1)) : NULL;
	_cleanup_free_ uint8_t *js = NULL;
	struct json_object *o = NULL, *v;
	int64_t exp = 0;
	size_t n;

	if (p && bw_base64_decode_alloc(p, BW_B64_JOSE, &js, &n) == 0 && bw_kbs_parse_object((char *)js, n, &o) == 0 &&
	    json_object_object_get_ex(o, "exp", &v))
		exp = json_object_get_int64(v);
	json_object_put(o);
	return exp;
}

static char *auth_body(const char *tee)
{
	struct json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "version", json_object_new_string(BW_KBS_VERSION));
	json_object_object_add(o, "tee", json_object_new_string(tee));
	json_object_object_add(o, "extra-params", json_object_new_object());
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

/* Build the Attestation message for nonce with the attester's evidence. */
static int attest_body(struct bw_kbs_client *c, const char *nonce, char **out, char *err, size_t errlen)
{
	struct json_object *jwk = NULL, *ev = NULL, *rt, *te, *msg;
	uint8_t rd[BW_KBS_REPORT_DATA_LEN];
	int r;

	EVP_PKEY_free(c->key);
	c->key = bw_jwk_new(c->o.key_type);
	if (!c->key || bw_jwk_public(c->key, &jwk) < 0)
		return -ENOMEM;
	char why[BW_ERR_LEN] = "";

	r = bw_kbs_report_data(jwk, nonce, rd);
	if (r == 0)
		r = c->att->evidence(&c->o.aopts, rd, sizeof(rd), &ev, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "attester %s: %s", c->att->name, why[0] ? why : strerror(-r));
		json_object_put(jwk);
		return r;
	}
	msg = json_object_new_object();
	rt = json_object_new_object();
	te = json_object_new_object();
	json_object_object_add(rt, "nonce", json_object_new_string(nonce));
	json_object_object_add(rt, "tee-pubkey", jwk);
	json_object_object_add(te, "primary_evidence", ev);
	json_object_object_add(te, "additional_evidence", json_object_new_string(""));
	json_object_object_add(msg, "runtime-data", rt);
	json_object_object_add(msg, "tee-evidence", te);
	*out = strdup(json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(msg);
	return *out ? 0 : -ENOMEM;
}

static int status_errno(long status)
{
	if (status == 401 || status == 403)
		return -BW_KBS_EDENIED;
	if (status == 404)
		return -BW_KBS_ENOTFOUND;
	return -EPROTO;
}

static bool retryable(int r, long status)
{
	return r == -EIO || status >= 500 || status == 429;
}

/* One RCAR round; *status is the failing HTTP status (0 for transport errors). */
static int handshake_once(struct bw_kbs_client *c, long *status, char *err, size_t errlen)
{
	const char *tee = c->att->tee_of ? c->att->tee_of(&c->o.aopts) : c->att->tee;
	_cleanup_free_ char *ab = tee ? auth_body(tee) : NULL, *tb = NULL;
	struct http_resp resp;
	struct json_object *o = NULL;
	const char *nonce, *tok;
	int r;

	drop_session(c);
	*status = 0;
	if (!tee) {
		snprintf(err, errlen, "attester %s: cannot tell the TEE type (no configfs-tsm provider?)", c->att->name);
		return -ENODEV;
	}
	r = ab ? request(c, BW_KBS_PREFIX "/auth", ab, &resp, err, errlen) : -ENOMEM;
	if (r < 0)
		return r;
	if (resp.status != 200) {
		*status = resp.status;
		server_error(&resp, "auth", err, errlen);
		resp_free(&resp);
		return status_errno(*status);
	}
	r = bw_kbs_parse_object(resp.body, resp.len, &o);
	nonce = r == 0 ? bw_json_str(o, "nonce") : NULL;
	if (!nonce || strlen(nonce) > 1024) {
		snprintf(err, errlen, "auth: malformed challenge");
		json_object_put(o);
		resp_free(&resp);
		return -EPROTO;
	}
	r = attest_body(c, nonce, &tb, err, errlen);
	json_object_put(o);
	resp_free(&resp);
	if (r < 0)
		return r;
	if (c->o.attestation_out) {
		int s = bw_write_file_atomic(c->o.attestation_out, tb, strlen(tb), 0644);

		if (s < 0)
			c->save_err = s;
	}
	r = request(c, BW_KBS_PREFIX "/attest", tb, &resp, err, errlen);
	if (r < 0)
		return r;
	if (resp.status != 200) {
		*status = resp.status;
		server_error(&resp, "attest", err, errlen);
		resp_free(&resp);
		return status_errno(*status);
	}
	o = NULL;
	tok = bw_kbs_parse_object(resp.body, resp.len, &o) == 0 ? bw_json_str(o, "token") : NULL;
	if (tok && strlen(tok) < 16384)
		c->token = strdup(tok);
	json_object_put(o);
	resp_free(&resp);
	if (!c->token) {
		snprintf(err, errlen, "attest: response without a token");
		return -EPROTO;
	}
	c->token_exp = token_exp(c->token);
	return 0;
}

int bw_kbs_client_attestation_saved(const struct bw_kbs_client *c)
{
	return c->save_err;
}

int bw_kbs_attest(struct bw_kbs_client *c, char *err, size_t errlen)
{
	long delay = c->o.backoff_ms, status;
	int r = -EIO;

	/* A local device that is not there stays missing: say so once, before any network round. */
	if (c->att->probe && (r = c->att->probe(&c->o.aopts, err, errlen)) < 0)
		return r;
	for (int i = 0; i < c->o.handshake_tries; i++) {
		if (i) {
			if (c->o.log) {
				char line[BW_ERR_LEN + 64];

				snprintf(line, sizeof(line), "kbs: handshake retry %d after %ld ms: %s", i, delay, err);
				c->o.log(c->o.log_ctx, BW_LOG_DEBUG, line);
			}
			usleep((useconds_t)delay * 1000);
			delay = delay * 2 > 5000 ? 5000 : delay * 2;
		}
		r = handshake_once(c, &status, err, errlen);
		if (r == 0 || !retryable(r, status))
			return r;
	}
	return r;
}

/* Where a fetched resource goes: a new secret, or the caller's buffer. */
struct sink {
	struct bw_secret *secret;
	uint8_t *buf;
	size_t cap, *len;
};

static int decrypt(struct bw_kbs_client *c, const struct http_resp *resp, const struct sink *k,
		   char *err, size_t errlen)
{
	char why[BW_ERR_LEN] = "";
	int r = k->secret ? bw_jwe_decrypt(c->key, resp->body, resp->len, k->secret, why, sizeof(why))
			  : bw_jwe_decrypt_into(c->key, resp->body, resp->len, k->buf, k->cap, k->len, why, sizeof(why));

	if (r < 0) {
		snprintf(err, errlen, "resource: %s", why);
		return r;
	}
	/* An empty resource is never a key: refuse it rather than hand out zero bytes. */
	if ((k->secret ? k->secret->len : *k->len) == 0) {
		if (k->secret)
			bw_secret_free(k->secret);
		snprintf(err, errlen, "resource: the service sent an empty resource");
		return -EPROTO;
	}
	return 0;
}

static int get_resource(struct bw_kbs_client *c, const char *path, const struct sink *k, char *err,
			size_t errlen)
{
	_cleanup_free_ char *rpath = NULL;
	struct http_resp resp;
	int r;

	if (!bw_kbs_resource_path_valid(path)) {
		snprintf(err, errlen, "resource path must be REPO/TYPE/TAG of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (asprintf(&rpath, BW_KBS_PREFIX "/resource/%s", path) < 0) {
		rpath = NULL;
		return -ENOMEM;
	}
	for (int i = 0; i < RESOURCE_TRIES; i++) {
		if (!c->token || c->token_exp <= (int64_t)time(NULL) + TOKEN_SLACK) {
			r = bw_kbs_attest(c, err, errlen);
			if (r < 0)
				return r;
		}
		r = request(c, rpath, NULL, &resp, err, errlen);
		if (r < 0)
			return r;
		if (resp.status == 200) {
			r = decrypt(c, &resp, k, err, errlen);
			resp_free(&resp);
			return r;
		}
		server_error(&resp, "resource", err, errlen);
		r = status_errno(resp.status);
		if (resp.status != 401) {
			resp_free(&resp);
			return r;
		}
		/* Expired or unknown token: a fresh handshake on the next round. */
		resp_free(&resp);
		drop_session(c);
	}
	return r;
}

int bw_kbs_get_resource(struct bw_kbs_client *c, const char *path, struct bw_secret *out,
			char *err, size_t errlen)
{
	return get_resource(c, path, &(struct sink){ .secret = out }, err, errlen);
}

int bw_kbs_get_resource_into(struct bw_kbs_client *c, const char *path, uint8_t *out, size_t cap,
			     size_t *len, char *err, size_t errlen)
{
	return get_resource(c, path, &(struct sink){ .buf = out, .cap = cap, .len = len }, err, errlen);
}

int bw_kbs_client_decrypt_into(struct bw_kbs_client *c, const char *jwe, size_t len, uint8_t *out, size_t cap,
				size_t *outlen, char *err, size_t errlen)
{
	struct http_resp resp = { .status = 200, .body = (char *)jwe, .len = len };

	if (!c->key) {
		snprintf(err, errlen, "resource: no tee key (attest first)");
		return -ENOKEY;
	}
	return decrypt(c, &resp, &(struct sink){ .buf = out, .cap = cap, .len = outlen }, err, errlen);
}

int bw_kbs_client_disconnect(struct bw_kbs_client *c)
{
	CURL *n = curl_easy_init();

	if (!n)
		return -ENOMEM;
	/* curl_easy_cleanup closes the handle's connections; the token and key stay. */
	curl_easy_cleanup(c->curl);
	c->curl = n;
	setup(c);
	return 0;
}

int bw_kbs_fetch_key(const struct bw_kbs_client_opts *o, const char *path, uint8_t *out, size_t len,
		     char *err, size_t errlen)
{
	struct bw_kbs_client *c = NULL;
	char why[BW_ERR_LEN] = "";
	size_t got = 0;
	int r = bw_kbs_client_new(o, &c);

	if (r == -ELIBACC)
		return bw_kbs_http_load(err, errlen);
	if (r < 0) {
		snprintf(err, errlen, "key service %s: %s", o->url ? o->url : "(none)",
			 r == -ENOENT ? "unknown attester" : "bad URL (https://HOST:PORT)");
		return -EINVAL;
	}
	/* Straight into the caller's locked buffer: the key exists in no other place. */
	r = bw_kbs_get_resource_into(c, path, out, len, &got, why, sizeof(why));
	bw_kbs_client_free(c);
	if (r == 0 && got != len) {
		OPENSSL_cleanse(out, len);
		snprintf(why, sizeof(why), "resource is %zu bytes, expected %zu", got, len);
		r = -EPROTO;
	}
	if (r == -EMSGSIZE)
		snprintf(why, sizeof(why), "resource is larger than the %zu-byte key", len);
	if (r < 0) {
		snprintf(err, errlen, "key service %s: %s", o->url, why);
		return r;
	}
	return 0;
}
