// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kubernetes peer source: list + watch Nodes, publish this node's annotations (k8s.h).
 * One thread, one blocking libcurl request at a time; the watch body is parsed incrementally
 * with json_tokener (events are newline-separated JSON objects; chunk boundaries do not align).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include "common/common.h"
#include "k8s/k8s.h"

#define LIST_MAX (64u << 20)   /* bytes of one NodeList / Node / patch response */
#define WATCH_TIMEOUT 300      /* timeoutSeconds asked of the server */
#define BACKOFF_MAX 16         /* seconds between reconnects, at most */
#define JSON_DEPTH 128

struct knode {
	char name[64];
	bool has_key;
	uint8_t key[32];
	char endpoint[128];        /* from the annotation, validated; "" none */
	struct bw_cidr cidrs[2];
	size_t n_cidrs;
	char ann_key[64], ann_endpoint[128]; /* raw annotation values (own node: are they current?) */
	char internal_ip[64];
};

struct bw_k8s_watcher {
	struct bw_k8s_config cfg;
	bw_k8s_set_cb on_set;
	bw_k8s_state_cb on_state;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool rekey;                /* a new public key waits in new_key (bw_k8s_set_public_key) */
	uint8_t new_key[32];
	/* watcher-thread state */
	struct knode *nodes;
	size_t n_nodes, cap_nodes;
	char rv[128];
	char *last_sig;            /* the last delivered set, serialized */
	bool reachable;
	bool relist;               /* a 410 came: list again */
	bool changed;
	json_tokener *tok;
	int stream_err;
};

/* Report through the configured hook (the library does not print). */
__attribute__((format(printf, 3, 4)))
static void report(const struct bw_k8s_watcher *w, enum bw_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!w->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	w->cfg.log(w->cfg.log_ctx, level, line);
}

static bool stopping(struct bw_k8s_watcher *w)
{
	bool s;

	pthread_mutex_lock(&w->lock);
	s = w->stop;
	pthread_mutex_unlock(&w->lock);
	return s;
}

/* Sleep up to sec seconds; false when asked to stop. */
static bool nap(struct bw_k8s_watcher *w, unsigned sec)
{
	struct timespec ts;
	bool s;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += sec;
	pthread_mutex_lock(&w->lock);
	while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
		;
	s = w->stop;
	pthread_mutex_unlock(&w->lock);
	return !s;
}

/* ---- node objects ---- */

static const char *jstr(json_object *o, const char *a, const char *b)
{
	json_object *x;

	if (!json_object_object_get_ex(o, a, &x))
		return NULL;
	if (b && !json_object_object_get_ex(x, b, &x))
		return NULL;
	return json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
}

static bool endpoint_valid(const char *s)
{
	char host[64];
	unsigned char buf[16];
	const char *colon;
	char *end;
	unsigned long port;
	size_t n;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (n = (size_t)(rb - s - 1)) >= sizeof(host))
			return false;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		colon = rb + 1;
		if (inet_pton(AF_INET6, host, buf) != 1)
			return false;
	} else {
		if (!(colon = strrchr(s, ':')) || (n = (size_t)(colon - s)) >= sizeof(host))
			return false;
		memcpy(host, s, n);
		host[n] = '\0';
		if (inet_pton(AF_INET, host, buf) != 1)
			return false;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	return !errno && *end == '\0' && colon[1] >= '0' && colon[1] <= '9' && port > 0 && port <= 65535;
}

/* Fields of one Node we use; anything malformed is left out (hostile input), never fatal. */
static int parse_node(json_object *o, struct knode *k)
{
	json_object *meta, *ann, *spec, *cidrs, *status, *addrs;
	const char *s;

	memset(k, 0, sizeof(*k));
	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "metadata", &meta))
		return -EINVAL;
	if (!(s = jstr(o, "metadata", "name")) || !s[0] || strlen(s) >= sizeof(k->name))
		return -EINVAL;
	strcpy(k->name, s);
	if (json_object_object_get_ex(meta, "annotations", &ann) && json_object_is_type(ann, json_type_object)) {
		if ((s = jstr(ann, BW_K8S_ANN_KEY, NULL)) && strlen(s) < sizeof(k->ann_key)) {
			strcpy(k->ann_key, s);
			k->has_key = bw_key_from_base64(s, k->key) == 0;
		}
		if ((s = jstr(ann, BW_K8S_ANN_ENDPOINT, NULL)) && strlen(s) < sizeof(k->ann_endpoint)) {
			strcpy(k->ann_endpoint, s);
			if (endpoint_valid(s))
				strcpy(k->endpoint, s);
		}
	}
	if (json_object_object_get_ex(o, "spec", &spec) && json_object_object_get_ex(spec, "podCIDRs", &cidrs) &&
	    json_object_is_type(cidrs, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(cidrs) && k->n_cidrs < 2; i++) {
			json_object *c = json_object_array_get_idx(cidrs, i);
			if (json_object_is_type(c, json_type_string) &&
			    bw_cidr_parse(json_object_get_string(c), &k->cidrs[k->n_cidrs]) == 0)
				k->n_cidrs++;
		}
	}
	if (json_object_object_get_ex(o, "status", &status) && json_object_object_get_ex(status, "addresses", &addrs) &&
	    json_object_is_type(addrs, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(addrs); i++) {
			json_object *a = json_object_array_get_idx(addrs, i);
			const char *t = jstr(a, "type", NULL), *ip = jstr(a, "address", NULL);
			unsigned char buf[16];
			if (!t || !ip || strcmp(t, "InternalIP") || strlen(ip) >= sizeof(k->internal_ip))
				continue;
			if (inet_pton(strchr(ip, ':') ? AF_INET6 : AF_INET, ip, buf) != 1)
				continue;
			strcpy(k->internal_ip, ip);
			break;
		}
	}
	return 0;
}

static struct knode *find(struct bw_k8s_watcher *w, const char *name)
{
	for (size_t i = 0; i < w->n_nodes; i++)
		if (!strcmp(w->nodes[i].name, name))
			return &w->nodes[i];
	return NULL;
}

static int upsert(struct bw_k8s_watcher *w, const struct knode *k)
{
	struct knode *old = find(w, k->name);

	if (old) {
		*old = *k;
		return 0;
	}
	if (w->n_nodes >= BW_K8S_MAX_NODES)
		return -E2BIG;
	if (w->n_nodes == w->cap_nodes) {
		size_t cap = w->cap_nodes ? w->cap_nodes * 2 : 16;
		struct knode *n = realloc(w->nodes, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->nodes = n;
		w->cap_nodes = cap;
	}
	w->nodes[w->n_nodes++] = *k;
	return 0;
}

static void remove_node(struct bw_k8s_watcher *w, const char *name)
{
	struct knode *k = find(w, name);

	if (k)
		*k = w->nodes[--w->n_nodes];
}

void bw_k8s_set_free(struct bw_k8s_set *s)
{
	if (!s)
		return;
	bw_conf_peers_free(s->peers, s->n_peers);
	free(s->peers);
	free(s);
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct knode *)a)->name, ((const struct knode *)b)->name);
}

/* Build the desired set from the cache; deliver it when it differs from the last one. */
static int deliver(struct bw_k8s_watcher *w)
{
	struct bw_k8s_set *s = calloc(1, sizeof(*s));
	char *sig = NULL;
	size_t siglen = 0;
	FILE *f;
	char b64[45], buf[64];

	if (!s)
		return -ENOMEM;
	qsort(w->nodes, w->n_nodes, sizeof(*w->nodes), cmp_node);
	if (!(s->peers = calloc(w->n_nodes ? w->n_nodes : 1, sizeof(*s->peers))) || !(f = open_memstream(&sig, &siglen))) {
		bw_k8s_set_free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < w->n_nodes; i++) {
		const struct knode *k = &w->nodes[i];
		struct bw_conf_peer *p = &s->peers[s->n_peers];

		if (!strcmp(k->name, w->cfg.node)) {
			memcpy(s->pod_cidrs, k->cidrs, sizeof(k->cidrs));
			s->n_pod_cidrs = k->n_cidrs;
			fprintf(f, "self");
			for (size_t j = 0; j < k->n_cidrs; j++)
				fprintf(f, " %s", bw_cidr_str(&k->cidrs[j], buf, sizeof(buf)));
			fprintf(f, "\n");
			continue;
		}
		/* A node without a key, pod CIDRs, or with our own key is no peer. */
		if (!k->has_key || !k->n_cidrs || !memcmp(k->key, w->cfg.public_key, 32))
			continue;
		snprintf(p->file, sizeof(p->file), "kubernetes:node/%s", k->name);
		snprintf(p->node, sizeof(p->node), "%s", k->name);
		memcpy(p->public_key, k->key, 32);
		if (k->endpoint[0])
			bw_endpoint_parse(k->endpoint, &p->endpoint); /* validated when read */
		if (!(p->allowed_ips = calloc(k->n_cidrs, sizeof(*p->allowed_ips)))) {
			fclose(f);
			free(sig);
			bw_k8s_set_free(s);
			return -ENOMEM;
		}
		memcpy(p->allowed_ips, k->cidrs, k->n_cidrs * sizeof(*p->allowed_ips));
		p->n_allowed_ips = k->n_cidrs;
		s->n_peers++;
		bw_key_to_base64(k->key, b64);
		fprintf(f, "%s %s %s", k->name, b64, k->endpoint);
		for (size_t j = 0; j < k->n_cidrs; j++)
			fprintf(f, " %s", bw_cidr_str(&k->cidrs[j], buf, sizeof(buf)));
		fprintf(f, "\n");
	}
	fclose(f);
	if (w->last_sig && sig && !strcmp(w->last_sig, sig)) {
		free(sig);
		bw_k8s_set_free(s);
		return 0;
	}
	free(w->last_sig);
	w->last_sig = sig;
	w->on_set(w->arg, s);
	return 1;
}

/* ---- HTTP ---- */

struct body {
	char *buf;
	size_t len;
	bool too_big;
};

static size_t body_write(char *p, size_t sz, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = sz * n;
	char *nb;

	if (b->len + len > LIST_MAX) {
		b->too_big = true;
		return 0;
	}
	if (!(nb = realloc(b->buf, b->len + len + 1)))
		return 0;
	b->buf = nb;
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return stopping(arg);
}

/* The watch also ends when a new key is to be published (it resumes from the same rv). */
static int watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct bw_k8s_watcher *w = arg;
	bool s;
	(void)a, (void)b, (void)c, (void)d;

	pthread_mutex_lock(&w->lock);
	s = w->stop || w->rekey;
	pthread_mutex_unlock(&w->lock);
	return s;
}

/* Take a key handed over by bw_k8s_set_public_key; true when there was one. */
static bool take_rekey(struct bw_k8s_watcher *w)
{
	bool r;

	pthread_mutex_lock(&w->lock);
	if ((r = w->rekey)) {
		memcpy(w->cfg.public_key, w->new_key, 32);
		w->rekey = false;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Where and how to ask: the kubeconfig read now, or the configured files (rotation either way). */
static int auth_for(struct bw_k8s_watcher *w, struct bw_k8s_auth *a, char *err, size_t errlen)
{
	_cleanup_free_ char *tok = NULL;
	const char *tf;
	size_t len = 0;
	int r;

	if (w->cfg.kubeconfig[0]) {
		if ((r = bw_k8s_kubeconfig_load(w->cfg.kubeconfig, a, err, errlen)) < 0)
			return r;
	} else {
		memset(a, 0, sizeof(*a));
		snprintf(a->server, sizeof(a->server), "%s", w->cfg.api);
		snprintf(a->ca_file, sizeof(a->ca_file), "%s", w->cfg.ca_file);
		snprintf(a->token_file, sizeof(a->token_file), "%s", w->cfg.token_file);
	}
	if (a->token.data || !a->token_file[0])
		return 0;
	tf = a->token_file;
	if ((r = bw_read_file(tf, 64 * 1024, &tok, &len)) < 0) {
		bw_errf(err, errlen, r, "token %s: %s", tf, strerror(-r));
		goto fail;
	}
	while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		tok[--len] = '\0';
	if (!len || strpbrk(tok, "\r\n")) {
		r = bw_errf(err, errlen, -EINVAL, "token %s: empty or not one line", tf);
		goto fail;
	}
	if ((r = bw_secret_new(&a->token, len + 1)) < 0) {
		bw_errf(err, errlen, r, "token %s: locked memory: %s", tf, strerror(-r));
		goto fail;
	}
	memcpy(a->token.data, tok, len + 1);
	a->token.len = len;
	explicit_bzero(tok, len);
	return 0;
fail:
	if (tok)
		explicit_bzero(tok, len);
	bw_k8s_auth_free(a);
	return r;
}

static void set_blob(CURL *h, CURLoption opt, const struct bw_secret *s)
{
	/* NOCOPY: libcurl uses our locked buffer, which outlives the handle (the caller's auth). */
	struct curl_blob b = { .data = s->data, .len = s->len, .flags = CURL_BLOB_NOCOPY };

	curl_easy_setopt(h, opt, &b);
}

/*
 * A configured handle for path. auth (the caller's, freed after curl_easy_cleanup) holds the
 * credentials read now: a rotated token, kubeconfig or certificate is picked up.
 */
static CURL *request(struct bw_k8s_watcher *w, const char *path, struct curl_slist **hdrs, struct bw_k8s_auth *a,
		     char *err, size_t errlen)
{
	char url[1024];
	CURL *h;

	if (auth_for(w, a, err, errlen) < 0)
		return NULL;
	if (!(h = curl_easy_init())) {
		snprintf(err, errlen, "curl: out of memory");
		bw_k8s_auth_free(a);
		return NULL;
	}
	snprintf(url, sizeof(url), "%s%s", a->server, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	if (a->ca.data)
		set_blob(h, CURLOPT_CAINFO_BLOB, &a->ca);
	else if (a->ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_file);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (a->cert.data)
		set_blob(h, CURLOPT_SSLCERT_BLOB, &a->cert);
	else if (a->cert_file[0])
		curl_easy_setopt(h, CURLOPT_SSLCERT, a->cert_file);
	if (a->key.data)
		set_blob(h, CURLOPT_SSLKEY_BLOB, &a->key);
	else if (a->key_file[0])
		curl_easy_setopt(h, CURLOPT_SSLKEY, a->key_file);
	if (a->token.data) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, (const char *)a->token.data);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bulwarkd");
	*hdrs = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	return h;
}

/* Run a bounded request; returns the HTTP status or -errno; *out gets the parsed body. */
static int simple(struct bw_k8s_watcher *w, const char *method, const char *path, const char *patch,
		  json_object **out, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	struct bw_k8s_auth auth;
	struct body b = { 0 };
	long code = 0;
	CURLcode cr;
	CURL *h = request(w, path, &hdrs, &auth, err, errlen);

	*out = NULL;
	if (!h)
		return -EACCES;
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (patch) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/merge-patch+json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, patch);
	}
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	bw_k8s_auth_free(&auth);
	if (cr != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, path, b.too_big ? "response too large" : curl_easy_strerror(cr));
		free(b.buf);
		return -EIO;
	}
	if (b.buf) {
		json_tokener *t = json_tokener_new_ex(JSON_DEPTH);
		if (t) {
			*out = json_tokener_parse_ex(t, b.buf, (int)b.len);
			json_tokener_free(t);
		}
	}
	if (code != 200) {
		const char *msg = *out ? jstr(*out, "message", NULL) : NULL;
		snprintf(err, errlen, "%s %s: HTTP %ld%s%s", method, path, code, msg ? ": " : "", msg ? msg : "");
	} else if (!*out) {
		snprintf(err, errlen, "%s %s: response is not JSON", method, path);
		free(b.buf);
		return -EBADMSG;
	}
	free(b.buf);
	return (int)code;
}

/* Publish our key and endpoint on our Node when they differ; only our two annotations. */
static void publish(struct bw_k8s_watcher *w)
{
	struct knode *self = find(w, w->cfg.node);
	char b64[45], ep[128], path[128], err[BW_ERR_LEN];
	json_object *patch, *meta, *ann, *resp = NULL;
	int r;

	if (!self) {
		report(w, BW_LOG_WARN, "kubernetes: no Node named %s: annotations not published", w->cfg.node);
		return;
	}
	bw_key_to_base64(w->cfg.public_key, b64);
	if (!self->internal_ip[0]) {
		ep[0] = '\0';
	} else if (strchr(self->internal_ip, ':')) {
		snprintf(ep, sizeof(ep), "[%s]:%u", self->internal_ip, w->cfg.listen_port);
	} else {
		snprintf(ep, sizeof(ep), "%s:%u", self->internal_ip, w->cfg.listen_port);
	}
	if (!strcmp(self->ann_key, b64) && !strcmp(self->ann_endpoint, ep))
		return;
	patch = json_object_new_object();
	meta = json_object_new_object();
	ann = json_object_new_object();
	json_object_object_add(ann, BW_K8S_ANN_KEY, json_object_new_string(b64));
	/* No InternalIP: no endpoint (peers wait for us to reach them); null removes a stale one. */
	json_object_object_add(ann, BW_K8S_ANN_ENDPOINT, ep[0] ? json_object_new_string(ep) : NULL);
	json_object_object_add(meta, "annotations", ann);
	json_object_object_add(patch, "metadata", meta);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", w->cfg.node);
	r = simple(w, "PATCH", path, json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN), &resp, err,
		   sizeof(err));
	json_object_put(patch);
	if (r == 200) {
		report(w, BW_LOG_INFO, "kubernetes: published %s = %s, %s = %s on node %s", BW_K8S_ANN_KEY, b64,
		       BW_K8S_ANN_ENDPOINT, ep[0] ? ep : "(none: no InternalIP)", w->cfg.node);
		snprintf(self->ann_key, sizeof(self->ann_key), "%s", b64);
		snprintf(self->ann_endpoint, sizeof(self->ann_endpoint), "%s", ep);
	} else {
		report(w, BW_LOG_WARN, "kubernetes: publishing annotations: %s", err);
	}
	json_object_put(resp);
}

static int list(struct bw_k8s_watcher *w, char *err, size_t errlen)
{
	json_object *o = NULL, *items;
	const char *rv;
	int r = simple(w, "GET", "/api/v1/nodes", NULL, &o, err, errlen);

	if (r != 200) {
		json_object_put(o);
		return r < 0 ? r : -EIO;
	}
	if (!json_object_object_get_ex(o, "items", &items) || !json_object_is_type(items, json_type_array) ||
	    !(rv = jstr(o, "metadata", "resourceVersion")) || !rv[0] || strlen(rv) >= sizeof(w->rv)) {
		json_object_put(o);
		snprintf(err, errlen, "GET /api/v1/nodes: not a NodeList");
		return -EBADMSG;
	}
	/* Replaced only after the whole list parsed: a failed list keeps the previous cache. */
	w->n_nodes = 0;
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		struct knode k;
		if (parse_node(json_object_array_get_idx(items, i), &k) == 0 && (r = upsert(w, &k)) < 0) {
			json_object_put(o);
			snprintf(err, errlen, "node list: %s", strerror(-r));
			return r;
		}
	}
	strcpy(w->rv, rv);
	json_object_put(o);
	return 0;
}

static void event(struct bw_k8s_watcher *w, json_object *ev)
{
	const char *type = jstr(ev, "type", NULL), *rv;
	json_object *obj;
	struct knode k;

	if (!type || !json_object_object_get_ex(ev, "object", &obj))
		return;
	if (!strcmp(type, "ERROR")) {
		json_object *code;
		if (json_object_object_get_ex(obj, "code", &code) && json_object_get_int(code) == 410) {
			report(w, BW_LOG_INFO, "kubernetes: watch resourceVersion %s expired (410): listing again", w->rv);
			w->relist = true;
		} else {
			const char *m = jstr(obj, "message", NULL);
			report(w, BW_LOG_WARN, "kubernetes: watch error: %s", m ? m : "(no message)");
		}
		w->stream_err = -EIO;
		return;
	}
	if ((rv = jstr(obj, "metadata", "resourceVersion")) && rv[0] && strlen(rv) < sizeof(w->rv))
		strcpy(w->rv, rv);
	if (!strcmp(type, "BOOKMARK"))
		return;
	if (parse_node(obj, &k) < 0)
		return;
	if (!strcmp(type, "DELETED"))
		remove_node(w, k.name);
	else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED"))
		upsert(w, &k);
	else
		return;
	w->changed = true;
}

static size_t watch_write(char *p, size_t sz, size_t n, void *arg)
{
	struct bw_k8s_watcher *w = arg;
	size_t len = sz * n, off = 0;

	while (off < len && !w->stream_err) {
		json_object *o = json_tokener_parse_ex(w->tok, p + off, (int)(len - off));
		enum json_tokener_error e = json_tokener_get_error(w->tok);

		if (e == json_tokener_continue)
			break;
		if (e != json_tokener_success) {
			report(w, BW_LOG_WARN, "kubernetes: watch stream: %s", json_tokener_error_desc(e));
			w->stream_err = -EBADMSG;
			break;
		}
		off += json_tokener_get_parse_end(w->tok);
		event(w, o);
		json_object_put(o);
	}
	if (w->changed) {
		w->changed = false;
		deliver(w);
		if (find(w, w->cfg.node))
			publish(w);
	}
	return w->stream_err ? 0 : len;
}

/* Watch from w->rv until the stream ends; 0 on a clean end, <0 on errors (w->relist on 410). */
static int watch(struct bw_k8s_watcher *w, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	struct bw_k8s_auth auth;
	char path[256];
	long code = 0;
	CURLcode cr;
	CURL *h;

	snprintf(path, sizeof(path), "/api/v1/nodes?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
		 w->rv, WATCH_TIMEOUT);
	if (!(h = request(w, path, &hdrs, &auth, err, errlen)))
		return -EACCES;
	if (!(w->tok = json_tokener_new_ex(JSON_DEPTH))) {
		curl_easy_cleanup(h);
		curl_slist_free_all(hdrs);
		bw_k8s_auth_free(&auth);
		return -ENOMEM;
	}
	w->stream_err = 0;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
	/* A dead connection: nothing at all for longer than the server's own timeout. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)WATCH_TIMEOUT + 30);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	bw_k8s_auth_free(&auth);
	json_tokener_free(w->tok);
	w->tok = NULL;
	if (code == 410) {
		w->relist = true;
		snprintf(err, errlen, "watch: HTTP 410 (resourceVersion %s expired)", w->rv);
		return -ESTALE;
	}
	if (w->stream_err) {
		snprintf(err, errlen, "watch from resourceVersion %s ended with an error", w->rv);
		return w->stream_err;
	}
	if (code && code != 200) {
		snprintf(err, errlen, "watch: HTTP %ld", code);
		return -EIO;
	}
	if (cr != CURLE_OK) {
		snprintf(err, errlen, "watch: %s", curl_easy_strerror(cr));
		return -EIO;
	}
	return 0;
}

static void set_reachable(struct bw_k8s_watcher *w, bool up, const char *why)
{
	if (up == w->reachable)
		return;
	w->reachable = up;
	if (up)
		report(w, BW_LOG_INFO, "kubernetes: API %s reachable again", w->cfg.api);
	else
		report(w, BW_LOG_ERROR, "kubernetes: API %s unreachable: %s; keeping the last applied peers", w->cfg.api,
		       why);
	if (w->on_state)
		w->on_state(w->arg, up, why);
}

static void *run(void *arg)
{
	struct bw_k8s_watcher *w = arg;
	unsigned backoff = 0;
	char err[BW_ERR_LEN];
	int r;

	w->relist = true;
	w->reachable = true;
	while (!stopping(w)) {
		if (backoff && !nap(w, backoff))
			break;
		if (w->relist) {
			if ((r = list(w, err, sizeof(err))) < 0) {
				set_reachable(w, false, err);
				backoff = backoff ? (backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2) : 1;
				continue;
			}
			w->relist = false;
			set_reachable(w, true, NULL);
			take_rekey(w); /* a key rotated while the API was away */
			deliver(w);
			publish(w);
		}
		r = watch(w, err, sizeof(err));
		if (stopping(w))
			break;
		if (take_rekey(w)) {
			/* Key rotated: the set (our own key is never a peer) and the annotation follow;
			 * the watch resumes from where it was. */
			report(w, BW_LOG_INFO, "kubernetes: this node's WireGuard key changed: publishing it");
			deliver(w);
			publish(w);
			backoff = 0;
			continue;
		}
		if (r == 0) {
			backoff = 0;
			continue;
		}
		if (w->relist) {
			report(w, BW_LOG_INFO, "kubernetes: %s: listing again", err);
			backoff = 0;
			continue;
		}
		set_reachable(w, false, err);
		backoff = backoff ? (backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2) : 1;
	}
	return NULL;
}

int bw_k8s_start(const struct bw_k8s_config *cfg, bw_k8s_set_cb on_set, bw_k8s_state_cb on_state, void *arg,
		 struct bw_k8s_watcher **out)
{
	struct bw_k8s_watcher *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	w->on_set = on_set;
	w->on_state = on_state;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((r = pthread_create(&w->thread, NULL, run, w)) != 0) {
		free(w);
		return -r;
	}
	*out = w;
	return 0;
}

void bw_k8s_set_public_key(struct bw_k8s_watcher *w, const uint8_t public_key[32])
{
	pthread_mutex_lock(&w->lock);
	memcpy(w->new_key, public_key, 32);
	w->rekey = true;
	pthread_cond_broadcast(&w->cond); /* a backoff nap ends too */
	pthread_mutex_unlock(&w->lock);
}

void bw_k8s_stop(struct bw_k8s_watcher *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	free(w->nodes);
	free(w->last_sig);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
