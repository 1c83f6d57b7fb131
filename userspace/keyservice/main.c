// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark-keyservice --listen ADDR:PORT --cert FILE --key FILE --master-secret FILE --salt FILE
 *                    --policy FILE [--signing-key FILE] [--token-lifetime SEC]
 *                    [--session-lifetime SEC] [--attest-timeout SEC] [--max-sessions N]
 *                    [--max-sessions-per-source N] [--max-connections N]
 *                    [--max-connections-per-source N] [--request-timeout SEC] [--workers N]
 *
 * libevent's evhttp over OpenSSL TLS (bufferevent_openssl), one event loop per worker thread
 * (default: one per online CPU), all accepting from one listening socket (one accept queue: a
 * connection goes to whichever loop is free first). Sessions, the token cache, the policy and
 * the connection bounds are shared (keyservice.h, conns.c). SIGHUP reloads the policy;
 * SIGTERM/SIGINT stop. Exit codes: 0 stopped by signal, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include "keyservice/keyservice.h"

struct opts {
	const char *listen, *cert, *key, *master, *salt, *policy, *signing_key;
	long token_lifetime, session_lifetime, attest_timeout, max_sessions, sessions_per_source;
	long max_conns, conns_per_source, request_timeout, workers;
};

#define MAX_WORKERS 64

struct server;
struct worker {
	struct server *s;
	struct event_base *base;
	struct evhttp *http;
	struct bw_ks_conns_loop *loop;
	pthread_t thread;
	bool started;
};

struct server {
	struct bw_ks_ctx ctx;
	struct opts o;
	SSL_CTX *ssl;
	struct bw_ks_conns *conns;
	struct worker w[MAX_WORKERS];
	size_t n_workers;
	_Atomic uint64_t requests;
};

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: bulwark-keyservice --listen ADDR:PORT --cert FILE --key FILE\n"
		   "         --master-secret FILE --salt FILE --policy FILE [--signing-key FILE]\n"
		   "         [--token-lifetime SEC (300)] [--session-lifetime SEC (300)] [--attest-timeout SEC (30)]\n"
		   "         [--max-sessions N (100000)] [--max-sessions-per-source N (1024)]\n"
		   "         [--max-connections N (4096)] [--max-connections-per-source N (512)]\n"
		   "         [--request-timeout SEC (10)] [--workers N (online CPUs)] [--version] [--help]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option all[] = {
		{ "listen", required_argument, NULL, 'l' }, { "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' }, { "master-secret", required_argument, NULL, 'm' },
		{ "salt", required_argument, NULL, 's' }, { "policy", required_argument, NULL, 'p' },
		{ "signing-key", required_argument, NULL, 'S' }, { "token-lifetime", required_argument, NULL, 't' },
		{ "session-lifetime", required_argument, NULL, 'L' }, { "max-sessions", required_argument, NULL, 'n' },
		{ "attest-timeout", required_argument, NULL, 'A' },
		{ "max-sessions-per-source", required_argument, NULL, 'P' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "max-connections-per-source", required_argument, NULL, 'c' + 256 },
		{ "request-timeout", required_argument, NULL, 'T' },
		{ "workers", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { 0 },
	};
	int ch;

	*o = (struct opts){ .token_lifetime = 300, .session_lifetime = 300, .attest_timeout = 30, .max_sessions = 100000,
			    .sessions_per_source = 1024, .max_conns = 4096, .conns_per_source = 512, .request_timeout = 10,
			    .workers = 0 /* one per online CPU */ };
	while ((ch = getopt_long(argc, argv, "h", all, NULL)) != -1) {
		switch (ch) {
		case 'l': o->listen = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'm': o->master = optarg; break;
		case 's': o->salt = optarg; break;
		case 'p': o->policy = optarg; break;
		case 'S': o->signing_key = optarg; break;
		case 't': o->token_lifetime = atol(optarg); break;
		case 'L': o->session_lifetime = atol(optarg); break;
		case 'n': o->max_sessions = atol(optarg); break;
		case 'A': o->attest_timeout = atol(optarg); break;
		case 'P': o->sessions_per_source = atol(optarg); break;
		case 'C': o->max_conns = atol(optarg); break;
		case 'c' + 256: o->conns_per_source = atol(optarg); break;
		case 'T': o->request_timeout = atol(optarg); break;
		case 'W': o->workers = atol(optarg); break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("bulwark-keyservice %s\n", BULWARK_VERSION); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc || !o->listen || !o->cert || !o->key || !o->master || !o->salt || !o->policy ||
	    o->token_lifetime <= 0 || o->session_lifetime <= 0 || o->max_sessions <= 0 || o->attest_timeout <= 0 ||
	    o->sessions_per_source <= 0 || o->max_conns <= 0 || o->conns_per_source <= 0 || o->request_timeout <= 0 ||
	    o->workers < 0 || o->workers > MAX_WORKERS)
		return -EINVAL;
	if (!o->workers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->workers = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n;
	}
	return 0;
}

/* ---- HTTP front end ---- */

static const char *cookie_value(struct evhttp_request *req, char *buf, size_t size)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	const char *p = h;
	size_t n = strlen(BW_KBS_COOKIE);

	while (p && *p) {
		p += strspn(p, " ;");
		if (!strncmp(p, BW_KBS_COOKIE, n) && p[n] == '=') {
			size_t len = strcspn(p + n + 1, ";");
			if (len >= size)
				return NULL;
			memcpy(buf, p + n + 1, len);
			buf[len] = '\0';
			return buf;
		}
		p = strchr(p, ';');
	}
	return NULL;
}

static const char *bearer_value(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	return h && !strncmp(h, "Bearer ", 7) ? h + 7 : NULL;
}

static void send_reply(struct evhttp_request *req, struct bw_ks_reply *r, const char *ctype)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	char cookie[160];

	evhttp_add_header(out, "Content-Type", ctype);
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (r->set_cookie[0]) {
		snprintf(cookie, sizeof(cookie), "%s=%s; Path=" BW_KBS_PREFIX "; Secure; HttpOnly", BW_KBS_COOKIE,
			 r->set_cookie);
		evhttp_add_header(out, "Set-Cookie", cookie);
	}
	if (r->body)
		evbuffer_add(buf, r->body, strlen(r->body));
	evhttp_send_reply(req, r->status, r->status == 200 ? "OK" : "Error", buf);
	evbuffer_free(buf);
	if (r->body)
		OPENSSL_cleanse(r->body, strlen(r->body));
	free(r->body);
	r->body = NULL;
}

static void metrics(struct server *s, struct bw_ks_reply *r)
{
	const struct bw_ks_metrics *m = &s->ctx.m;
	struct bw_ks_conn_stats cs;
	_cleanup_free_ char *conns = NULL;
	size_t n_sessions, n_pending;
	uint64_t n_evicted;

	bw_ks_conns_stats(s->conns, &cs);
	pthread_mutex_lock(&s->ctx.lock);
	n_sessions = bw_ks_sessions_count(s->ctx.sessions);
	n_pending = bw_ks_sessions_pending(s->ctx.sessions);
	n_evicted = bw_ks_sessions_evicted(s->ctx.sessions);
	pthread_mutex_unlock(&s->ctx.lock);
	if (asprintf(&conns,
		     "# TYPE bulwark_keyservice_connections gauge\nbulwark_keyservice_connections %zu\n"
		     "# TYPE bulwark_keyservice_connections_closing gauge\nbulwark_keyservice_connections_closing %zu\n"
		     "# TYPE bulwark_keyservice_connections_total counter\nbulwark_keyservice_connections_total %llu\n"
		     "# TYPE bulwark_keyservice_connections_closed_total counter\n"
		     "bulwark_keyservice_connections_closed_total{reason=\"full\"} %llu\n"
		     "bulwark_keyservice_connections_closed_total{reason=\"per_source\"} %llu\n"
		     "bulwark_keyservice_connections_closed_total{reason=\"descriptors\"} %llu\n"
		     "bulwark_keyservice_connections_closed_total{reason=\"timeout\"} %llu\n"
		     "# TYPE bulwark_keyservice_accept_errors_total counter\nbulwark_keyservice_accept_errors_total %llu\n",
		     cs.open, cs.closing, (unsigned long long)cs.accepted, (unsigned long long)cs.evicted_full,
		     (unsigned long long)cs.evicted_source, (unsigned long long)cs.evicted_fd,
		     (unsigned long long)cs.timed_out, (unsigned long long)cs.accept_errors) < 0)
		conns = NULL;

	r->status = 200;
	if (asprintf(&r->body,
		     "# TYPE bulwark_keyservice_requests_total counter\nbulwark_keyservice_requests_total %llu\n"
		     "# TYPE bulwark_keyservice_auth_total counter\n"
		     "bulwark_keyservice_auth_total{result=\"ok\"} %llu\nbulwark_keyservice_auth_total{result=\"fail\"} %llu\n"
		     "# TYPE bulwark_keyservice_attest_total counter\n"
		     "bulwark_keyservice_attest_total{result=\"ok\"} %llu\nbulwark_keyservice_attest_total{result=\"fail\"} %llu\n"
		     "# TYPE bulwark_keyservice_resource_total counter\n"
		     "bulwark_keyservice_resource_total{result=\"ok\"} %llu\n"
		     "bulwark_keyservice_resource_total{result=\"denied\"} %llu\n"
		     "bulwark_keyservice_resource_total{result=\"fail\"} %llu\n"
		     "# TYPE bulwark_keyservice_bad_requests_total counter\nbulwark_keyservice_bad_requests_total %llu\n"
		     "# TYPE bulwark_keyservice_sessions gauge\nbulwark_keyservice_sessions %zu\n"
		     "# TYPE bulwark_keyservice_sessions_unattested gauge\nbulwark_keyservice_sessions_unattested %zu\n"
		     "# TYPE bulwark_keyservice_sessions_evicted_total counter\nbulwark_keyservice_sessions_evicted_total %llu\n%s",
		     (unsigned long long)s->requests, (unsigned long long)m->auth_ok, (unsigned long long)m->auth_fail,
		     (unsigned long long)m->attest_ok, (unsigned long long)m->attest_fail,
		     (unsigned long long)m->resource_ok, (unsigned long long)m->resource_denied,
		     (unsigned long long)m->resource_fail, (unsigned long long)m->bad_request,
		     n_sessions, n_pending, (unsigned long long)n_evicted, conns ? conns : "") < 0)
		r->body = NULL;
}

/* The client's address as text (sessions and connections are accounted per source). */
static const char *peer(struct evhttp_request *req)
{
	char *addr = NULL;
	ev_uint16_t port;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	return addr;
}

/* The one method an endpoint answers, or NULL for paths that are no endpoint. */
static const char *allowed_method(const char *path)
{
	if (!strcmp(path, BW_KBS_PREFIX "/auth") || !strcmp(path, BW_KBS_PREFIX "/attest"))
		return "POST";
	if (!strncmp(path, BW_KBS_PREFIX "/resource/", strlen(BW_KBS_PREFIX "/resource/")) ||
	    !strcmp(path, "/healthz") || !strcmp(path, "/metrics"))
		return "GET";
	return NULL;
}

static void route(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct server *s = w->s;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	struct bw_ks_reply r = { 0 };
	char cookie[80];
	const char *allow;
	struct bufferevent *bev;
	time_t now = time(NULL);

	s->requests++;
	path = path ? path : "";
	bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
	if (!bw_ks_conns_is_tls(bev)) {
		/* Only when creating the TLS bufferevent failed (evhttp then falls back to plain
		 * sockets): never answer in clear. */
		shutdown(bufferevent_getfd(bev), SHUT_RDWR);
		evhttp_send_error(req, 421, "TLS required");
		return;
	}
	bw_ks_conns_served(w->loop, bev);
	allow = allowed_method(path);
	if (allow && strcmp(allow, cmd == EVHTTP_REQ_POST ? "POST" : cmd == EVHTTP_REQ_GET ? "GET" : "")) {
		/* A known endpoint with another method: 405 with Allow (RFC 9110 §15.5.6). */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		s->ctx.m.bad_request++;
		bw_ks_error(&r, 405, "MethodNotAllowed", "use %s for this endpoint", allow);
	} else if (cmd == EVHTTP_REQ_POST && !strcmp(path, BW_KBS_PREFIX "/auth"))
		bw_ks_handle_auth(&s->ctx, peer(req), body, len, now, &r);
	else if (cmd == EVHTTP_REQ_POST && !strcmp(path, BW_KBS_PREFIX "/attest"))
		bw_ks_handle_attest(&s->ctx, cookie_value(req, cookie, sizeof(cookie)), body, len, now, &r);
	else if (cmd == EVHTTP_REQ_GET && !strncmp(path, BW_KBS_PREFIX "/resource/", strlen(BW_KBS_PREFIX "/resource/")))
		bw_ks_handle_resource(&s->ctx, cookie_value(req, cookie, sizeof(cookie)), bearer_value(req),
				      path + strlen(BW_KBS_PREFIX "/resource/"), now, &r);
	else if (cmd == EVHTTP_REQ_GET && !strcmp(path, "/healthz")) {
		r.status = 200;
		r.body = strdup("{\"status\":\"ok\"}");
	} else if (cmd == EVHTTP_REQ_GET && !strcmp(path, "/metrics")) {
		metrics(s, &r);
		send_reply(req, &r, "text/plain; version=0.0.4");
		return;
	} else
		bw_ks_error(&r, 404, "InvalidRequestPath", "no such endpoint");
	send_reply(req, &r, "application/json");
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct worker *w = arg;

	(void)base;
	return bw_ks_conns_bev(w->loop);
}

static SSL_CTX *tls_ctx(const char *cert, const char *key)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	if (!c || !SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(c) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
	return c;
}

/* The token signing key: a PEM file held to the same rules as the master secret (regular,
 * ours, 0600 or stricter; symlinks followed), read through locked memory. */
static EVP_PKEY *signing_key(const char *path, char *err, size_t errlen)
{
	_cleanup_secret_ struct bw_secret pem = { 0 };
	EVP_PKEY *k = NULL;
	BIO *b;
	int r;

	if (!path)
		return bw_jwk_new(BW_JWK_EC_P256); /* tokens die with the process; clients re-attest */
	r = bw_ks_read_secret(path, 1, &pem);
	if (r < 0) {
		snprintf(err, errlen, "signing key %s: %s (need a 0600 PEM file of at most 4096 bytes, owned by the service user)",
			 path, strerror(-r));
		return NULL;
	}
	b = BIO_new_mem_buf(pem.data, (int)pem.len);
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (k && (!EVP_PKEY_is_a(k, "EC") || EVP_PKEY_get_bits(k) != 256)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (!k)
		snprintf(err, errlen, "signing key %s: not an EC P-256 private key (PEM)", path);
	return k;
}

/* ---- lifecycle ---- */

static void on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct server *s = arg;
	struct bw_ks_policy p;
	char err[BW_ERR_LEN];

	(void)ev;
	if (sig != SIGHUP) {
		for (size_t i = 0; i < s->n_workers; i++)
			event_base_loopbreak(s->w[i].base);
		return;
	}
	if (bw_ks_policy_load(s->o.policy, &p, err, sizeof(err)) < 0) {
		bw_err("policy reload failed, keeping the old policy: %s", err);
		return;
	}
	bw_ks_ctx_set_policy(&s->ctx, &p);
	bw_info("policy reloaded: %zu rules%s", p.n_rules, p.sample ? ", sample evidence ENABLED" : "");
}

static void on_purge(evutil_socket_t fd, short ev, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)ev;
	pthread_mutex_lock(&s->ctx.lock);
	bw_ks_sessions_purge(s->ctx.sessions, time(NULL));
	pthread_mutex_unlock(&s->ctx.lock);
}

static int load(struct server *s, char *err, size_t errlen)
{
	int r;

	r = bw_ks_read_secret(s->o.master, 32, &s->ctx.master);
	if (r < 0) {
		snprintf(err, errlen, "master secret %s: %s (need a 0600 file of 32..4096 bytes)", s->o.master, strerror(-r));
		return r;
	}
	r = bw_ks_read_secret(s->o.salt, 32, &s->ctx.salt);
	if (r < 0) {
		snprintf(err, errlen, "salt %s: %s (need a 0600 file of 32..4096 bytes)", s->o.salt, strerror(-r));
		return r;
	}
	r = bw_ks_policy_load(s->o.policy, &s->ctx.policy, err, errlen);
	if (r < 0)
		return r;
	s->ctx.signing_key = signing_key(s->o.signing_key, err, errlen);
	if (!s->ctx.signing_key)
		return -EINVAL;
	s->ssl = tls_ctx(s->o.cert, s->o.key);
	if (!s->ssl) {
		snprintf(err, errlen, "TLS certificate/key %s / %s cannot be loaded", s->o.cert, s->o.key);
		return -EINVAL;
	}
	s->ctx.sessions = bw_ks_sessions_new(&(struct bw_ks_session_limits){
		.max = (size_t)s->o.max_sessions, .per_source = (size_t)s->o.sessions_per_source,
		.lifetime = s->o.session_lifetime, .unattested_lifetime = s->o.attest_timeout });
	s->ctx.token_lifetime = s->o.token_lifetime;
	return s->ctx.sessions ? 0 : -ENOMEM;
}

static int split_listen(const char *l, char *host, size_t size, unsigned short *port)
{
	const char *c = strrchr(l, ':');
	char *end;
	long p;

	if (!c || (size_t)(c - l) >= size)
		return -EINVAL;
	p = strtol(c + 1, &end, 10);
	if (*end || p <= 0 || p > 65535)
		return -EINVAL;
	if (l[0] == '[' && c > l && c[-1] == ']')
		snprintf(host, size, "%.*s", (int)(c - l - 2), l + 1);
	else
		snprintf(host, size, "%.*s", (int)(c - l), l);
	*port = (unsigned short)p;
	return 0;
}

/*
 * Descriptors: the soft RLIMIT_NOFILE goes up to the hard limit (commonly 1024 soft), and the
 * connection cap stays below it with headroom for the listener, logs, TPM and policy reloads,
 * so accept() has a descriptor whenever the cap lets a connection in.
 */
#define FD_HEADROOM BW_KS_FD_HEADROOM
static size_t conn_cap(long want)
{
	struct rlimit rl;
	rlim_t have;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	have = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)want + FD_HEADROOM : rl.rlim_cur;
	if (have < FD_HEADROOM + 16)
		have = FD_HEADROOM + 16;
	if ((rlim_t)want > have - FD_HEADROOM) {
		bw_warn("--max-connections %ld lowered to %llu: RLIMIT_NOFILE is %llu (headroom %d)", want,
			(unsigned long long)(have - FD_HEADROOM), (unsigned long long)have, FD_HEADROOM);
		return (size_t)(have - FD_HEADROOM);
	}
	return (size_t)want;
}

/* The listening socket, shared by every worker's loop (one accept queue). The backlog is deep
 * (the kernel caps it at net.core.somaxconn) so a connect flood does not overflow the queue and
 * drop an honest client's SYN (a 1 s retransmission) while the loops work through it. */
static int listen_socket(const char *spec)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE },
			*ai = NULL;
	char host[128], port_s[8];
	unsigned short port;
	int fd, one = 1;

	if (split_listen(spec, host, sizeof(host), &port) < 0)
		return -EINVAL;
	snprintf(port_s, sizeof(port_s), "%u", port);
	if (getaddrinfo(host[0] ? host : NULL, port_s, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Accepted sockets inherit TCP_NODELAY: without, Nagle holds the last TLS record of a reply
	 * until the client's delayed ACK (40 ms per request). */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		int e = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return e;
	}
	freeaddrinfo(ai);
	return fd;
}

static int worker_new(struct worker *w, struct server *s, int lfd)
{
	struct evhttp_bound_socket *bound;
	int fd;

	w->s = s;
	w->base = event_base_new();
	w->http = w->base ? evhttp_new(w->base) : NULL;
	if (!w->http)
		return -ENOMEM;
	evhttp_set_bevcb(w->http, tls_bev, w);
	evhttp_set_gencb(w->http, route, w);
	evhttp_set_max_body_size(w->http, BW_KBS_MAX_BODY);
	evhttp_set_max_headers_size(w->http, 32768);
	evhttp_set_timeout(w->http, (int)s->o.request_timeout);
	/* Every method libevent knows reaches route(), which answers 405 as ErrorInformation JSON;
	 * methods libevent does not know still get its 501 HTML page (see README). */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
					    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
					    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	/* Its own descriptor for the one socket (evhttp closes it with the listener). */
	fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
	bound = fd >= 0 ? evhttp_accept_socket_with_handle(w->http, fd) : NULL;
	if (!bound) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	w->loop = bw_ks_conns_loop_new(s->conns, w->base, evhttp_bound_socket_get_listener(bound));
	return w->loop ? 0 : -ENOMEM;
}

static void worker_free(struct worker *w)
{
	if (w->http)
		evhttp_free(w->http); /* frees its connections: before the loop's accounting */
	bw_ks_conns_loop_free(w->loop);
	if (w->base)
		event_base_free(w->base);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	bw_ks_conns_loop_enter(w->loop);
	event_base_dispatch(w->base);
	bw_ks_thread_done();
	return NULL;
}

static int serve(struct server *s)
{
	struct event *ev[4] = { 0 };
	const int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	struct timeval minute = { 60, 0 };
	sigset_t all, old;
	int lfd, r = 0;

	s->conns = bw_ks_conns_new(s->ssl, &(struct bw_ks_conn_limits){
		.max = conn_cap(s->o.max_conns), .per_source = (size_t)s->o.conns_per_source,
		.request_timeout_ms = s->o.request_timeout * 1000 });
	if (!s->conns)
		return -ENOMEM;
	lfd = listen_socket(s->o.listen);
	if (lfd < 0) {
		bw_err("cannot listen on %s: %s", s->o.listen, strerror(-lfd));
		bw_ks_conns_free(s->conns);
		return lfd;
	}
	for (s->n_workers = 0; s->n_workers < (size_t)s->o.workers && r == 0; s->n_workers++)
		r = worker_new(&s->w[s->n_workers], s, lfd);
	close(lfd);
	/* Worker 0 runs on this thread with the signal events; the others never take a signal. */
	for (size_t i = 0; i < ARRAY_SIZE(sigs) && r == 0; i++) {
		ev[i] = evsignal_new(s->w[0].base, sigs[i], on_signal, s);
		event_add(ev[i], NULL);
	}
	if (r == 0) {
		ev[3] = event_new(s->w[0].base, -1, EV_PERSIST, on_purge, s);
		event_add(ev[3], &minute);
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (size_t i = 1; i < s->n_workers && r == 0; i++) {
		r = -pthread_create(&s->w[i].thread, NULL, worker_run, &s->w[i]);
		s->w[i].started = r == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0) {
		bw_info("listening on https://%s, %zu workers (policy: %zu rules%s)", s->o.listen, s->n_workers,
			s->ctx.policy.n_rules, s->ctx.policy.sample ? ", sample evidence ENABLED" : "");
		worker_run(&s->w[0]);
	} else
		bw_err("cannot start the workers: %s", strerror(-r));
	for (size_t i = 1; i < s->n_workers; i++)
		if (s->w[i].started) {
			event_base_loopbreak(s->w[i].base);
			pthread_join(s->w[i].thread, NULL);
		}
	for (size_t i = 0; i < ARRAY_SIZE(ev); i++)
		if (ev[i])
			event_free(ev[i]);
	for (size_t i = 0; i < s->n_workers; i++)
		worker_free(&s->w[i]);
	bw_ks_conns_free(s->conns);
	return r;
}

int main(int argc, char **argv)
{
	struct server s = { 0 };
	char err[BW_ERR_LEN] = "";
	int r;

	bw_log_set_prefix("bulwark-keyservice");
	if (parse(argc, argv, &s.o) < 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&s.ctx.lock, NULL);
	pthread_rwlock_init(&s.ctx.policy_lock, NULL);
	if (load(&s, err, sizeof(err)) < 0) {
		bw_err("%s", err);
		return 2;
	}
	/* Bases must lock: other threads activate events in them (closing a connection they own)
	 * and break their loops. */
	r = evthread_use_pthreads() < 0 ? -ENOMEM : serve(&s);
	SSL_CTX_free(s.ssl);
	EVP_PKEY_free(s.ctx.signing_key);
	bw_ks_sessions_free(s.ctx.sessions);
	bw_ks_ctx_free_cache(&s.ctx);
	bw_ks_policy_free(&s.ctx.policy);
	bw_secret_free(&s.ctx.master);
	bw_secret_free(&s.ctx.salt);
	return r < 0 ? 1 : 0;
}
