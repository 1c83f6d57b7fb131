// SPDX-License-Identifier: GPL-2.0-only
/*
 * Connection accounting for the HTTP front end: libevent's evhttp accepts connections and frees
 * them, but bounds nothing but bodies, headers and a read timeout that every trickled byte
 * resets. Here each TLS connection is a record, created when evhttp asks for its bufferevent
 * and removed when OpenSSL frees its SSL object (ex_data free callback), kept in a list in
 * order of last completed request (accept time before the first):
 *   - at most max open connections: a new one pushes out the least recently active one;
 *   - at most per_source from one client address: more are closed at once, before the TLS
 *     handshake (a reconnecting flood then costs accept() only);
 *   - a deadline from the accept (and then from each completed request) to the next complete
 *     request, trickled bytes or not: half-open and idle connections are closed after it;
 *   - accept() failing with EMFILE/ENFILE (descriptors exhausted anyway) pauses the listener
 *     with backoff, frees the least recently active connection and logs once per period.
 * Closing is shutdown(2) on the socket: evhttp then sees end-of-file and frees the connection
 * itself, so nothing is freed behind its back.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include "keyservice/keyservice.h"

#define SRC_BUCKETS 1024
#define LOG_PERIOD_MS 10000
#define KS_CLOSING_MAX 32 /* below main.c's descriptor headroom */

struct conn {
	struct ks_conns *owner;
	struct bufferevent *bev;
	char src[KS_SOURCE_LEN];
	uint64_t last_ms;          /* accept, then each completed request */
	bool fresh, closing;       /* fresh: source not yet known (fd set after the callback) */
	struct conn *prev, *next;  /* LRU (open) list, or the fresh list */
};

struct src_count {
	char addr[KS_SOURCE_LEN];
	size_t n;
	struct src_count *next;
};

struct ks_conns {
	struct event_base *base;
	SSL_CTX *ssl;
	struct ks_conn_limits l;
	struct conn *head, *tail;   /* open connections, least recently active first */
	struct conn *fresh;         /* accepted this loop iteration, source pending */
	struct event *sweep, *post_accept, *resume;
	struct evconnlistener *listener;
	struct src_count *src[SRC_BUCKETS];
	size_t open, closing;
	long backoff_ms;
	uint64_t last_log_ms, suppressed;
	struct ks_conn_stats st;
};

static int ex_index = -1;

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static size_t src_hash(const char *a)
{
	uint32_t h = 2166136261u;

	for (; *a; a++)
		h = (h ^ (uint8_t)*a) * 16777619u;
	return h % SRC_BUCKETS;
}

static struct src_count *src_get(struct ks_conns *c, const char *addr, bool create)
{
	struct src_count *x;

	for (x = c->src[src_hash(addr)]; x; x = x->next)
		if (!strcmp(x->addr, addr))
			return x;
	if (!create || !(x = calloc(1, sizeof(*x))))
		return NULL;
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->next = c->src[src_hash(addr)];
	c->src[src_hash(addr)] = x;
	return x;
}

static void src_dec(struct ks_conns *c, const char *addr)
{
	struct src_count **pp, *x;

	for (pp = &c->src[src_hash(addr)]; (x = *pp); pp = &x->next) {
		if (strcmp(x->addr, addr))
			continue;
		if (--x->n == 0) {
			*pp = x->next;
			free(x);
		}
		return;
	}
}

/* The list x is on: the fresh list (one direction, head only) or the open list. */
static void unlink_conn(struct ks_conns *c, struct conn *x)
{
	struct conn **head = x->fresh ? &c->fresh : &c->head;

	if (x->prev)
		x->prev->next = x->next;
	else
		*head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else if (!x->fresh)
		c->tail = x->prev;
	x->prev = x->next = NULL;
}

static void append(struct ks_conns *c, struct conn *x)
{
	x->prev = c->tail;
	x->next = NULL;
	if (c->tail)
		c->tail->next = x;
	else
		c->head = x;
	c->tail = x;
}

/* Close x: it leaves the open list (its descriptor stays counted until evhttp frees it). */
static void close_conn(struct ks_conns *c, struct conn *x)
{
	evutil_socket_t fd = bufferevent_getfd(x->bev);

	if (x->closing)
		return;
	unlink_conn(c, x);
	x->fresh = false;
	x->closing = true;
	c->open--;
	c->closing++;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void evict_lru(struct ks_conns *c, uint64_t *counter)
{
	if (c->head) {
		close_conn(c, c->head);
		(*counter)++;
	}
}

/* OpenSSL frees the SSL object when evhttp frees the connection's bufferevent. */
static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct conn *x = ptr;
	struct ks_conns *c;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!x)
		return;
	c = x->owner;
	if (x->closing)
		c->closing--;
	else {
		unlink_conn(c, x);
		c->open--;
	}
	if (x->src[0])
		src_dec(c, x->src);
	free(x);
}

static void log_accept_error(struct ks_conns *c, int err)
{
	uint64_t t = now_ms();

	c->st.accept_errors++;
	if (c->last_log_ms && t - c->last_log_ms < LOG_PERIOD_MS) {
		c->suppressed++;
		return;
	}
	bw_warn("accept: %s; pausing the listener (backoff %ld ms), %zu connections open; %llu such errors "
		"not logged in the last %d s",
		strerror(err), c->backoff_ms, c->open, (unsigned long long)c->suppressed, LOG_PERIOD_MS / 1000);
	c->last_log_ms = t;
	c->suppressed = 0;
}

/* The listener's user data is evhttp's: the error callback finds us here (one listener). */
static struct ks_conns *listening;

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct ks_conns *c = listening;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv;

	(void)arg;
	if (!c)
		return;
	c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 1000 ? 1000 : c->backoff_ms * 2) : 50;
	log_accept_error(c, err);
	/* Out of descriptors (or memory): stop accepting for a while and free one, rather than
	 * spin on a listening socket that stays readable. */
	evconnlistener_disable(lev);
	if (err == EMFILE || err == ENFILE)
		evict_lru(c, &c->st.evicted_fd);
	tv = (struct timeval){ c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000 };
	event_add(c->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct ks_conns *c = arg;

	(void)fd, (void)ev;
	evconnlistener_enable(c->listener);
}

/* The sources of this iteration's new connections, now that evhttp has set their sockets. */
static void on_post_accept(evutil_socket_t fd, short ev, void *arg)
{
	struct ks_conns *c = arg;
	struct conn *x;

	(void)fd, (void)ev;
	while ((x = c->fresh)) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		evutil_socket_t s = bufferevent_getfd(x->bev);
		struct src_count *sc;

		unlink_conn(c, x);
		x->fresh = false;
		append(c, x);
		if (s < 0 || getpeername(s, (struct sockaddr *)&ss, &sl) < 0 ||
		    !inet_ntop(ss.ss_family, ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
									 : (void *)&((struct sockaddr_in *)&ss)->sin_addr,
			       x->src, sizeof(x->src))) {
			x->src[0] = '\0';
			continue;
		}
		sc = src_get(c, x->src, true);
		if (!sc) {
			x->src[0] = '\0';
			close_conn(c, x);
			continue;
		}
		sc->n++;
		/* Over the source's share: this new connection is closed before any TLS work, so a
		 * source that keeps reconnecting costs accept() and nothing more. */
		if (sc->n > c->l.per_source) {
			close_conn(c, x);
			c->st.evicted_source++;
		}
	}
}

static void on_sweep(evutil_socket_t fd, short ev, void *arg)
{
	struct ks_conns *c = arg;
	uint64_t t = now_ms();

	(void)fd, (void)ev;
	/* Least recently active first: stop at the first one still within its deadline. */
	while (c->head && c->head->last_ms + (uint64_t)c->l.request_timeout_ms <= t) {
		close_conn(c, c->head);
		c->st.timed_out++;
	}
}

struct ks_conns *ks_conns_new(struct event_base *base, SSL_CTX *ssl, const struct ks_conn_limits *l)
{
	struct ks_conns *c = calloc(1, sizeof(*c));
	struct timeval period = { 0, 250000 };

	if (!c)
		return NULL;
	if (ex_index < 0)
		ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
	c->base = base;
	c->ssl = ssl;
	c->l = *l;
	c->sweep = event_new(base, -1, EV_PERSIST, on_sweep, c);
	c->post_accept = event_new(base, -1, 0, on_post_accept, c);
	c->resume = event_new(base, -1, 0, on_resume, c);
	if (ex_index < 0 || !c->sweep || !c->post_accept || !c->resume || event_add(c->sweep, &period) < 0) {
		ks_conns_free(c);
		return NULL;
	}
	return c;
}

void ks_conns_listen(struct ks_conns *c, struct evconnlistener *lev)
{
	c->listener = lev;
	listening = c;
	evconnlistener_set_error_cb(lev, on_accept_error);
}

struct bufferevent *ks_conns_bev(struct ks_conns *c)
{
	SSL *ssl;
	struct conn *x;
	struct bufferevent *bev;

	c->backoff_ms = 0; /* accepting again */
	while (c->open >= c->l.max && c->head)
		evict_lru(c, &c->st.evicted_full);
	/* Closed connections hold their descriptors until evhttp sees the end of file in a later
	 * loop iteration, and libevent accepts in a loop: let those go before accepting more, so
	 * open + closing stays within the descriptor headroom. */
	if (c->closing >= KS_CLOSING_MAX && c->listener && evconnlistener_disable(c->listener) == 0)
		event_add(c->resume, &(struct timeval){ 0, 10000 });
	ssl = SSL_new(c->ssl);
	bev = ssl ? bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
		  : NULL;
	if (!bev)
		return NULL; /* evhttp would then speak plain HTTP: route() refuses such requests */
	c->st.accepted++;
	x = calloc(1, sizeof(*x));
	if (!x || !SSL_set_ex_data(ssl, ex_index, x)) {
		free(x);
		return bev; /* unaccounted, but TLS all the same */
	}
	x->owner = c;
	x->bev = bev;
	x->last_ms = now_ms();
	x->fresh = true;
	x->next = c->fresh;
	if (c->fresh)
		c->fresh->prev = x;
	c->fresh = x;
	c->open++;
	event_active(c->post_accept, EV_TIMEOUT, 0);
	return bev;
}

bool ks_conns_is_tls(struct bufferevent *bev)
{
	return bev && bufferevent_openssl_get_ssl(bev);
}

void ks_conns_served(struct ks_conns *c, struct bufferevent *bev)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn *x = ssl ? SSL_get_ex_data(ssl, ex_index) : NULL;

	if (!x || x->closing || x->fresh)
		return;
	unlink_conn(c, x);
	x->last_ms = now_ms();
	append(c, x);
}

void ks_conns_stats(const struct ks_conns *c, struct ks_conn_stats *st)
{
	*st = c->st;
	st->open = c->open;
	st->closing = c->closing;
}

void ks_conns_free(struct ks_conns *c)
{
	if (!c)
		return;
	if (listening == c)
		listening = NULL;
	/* Connections still listed belong to evhttp, which is freed first; only events remain. */
	if (c->sweep)
		event_free(c->sweep);
	if (c->post_accept)
		event_free(c->post_accept);
	if (c->resume)
		event_free(c->resume);
	for (size_t i = 0; i < SRC_BUCKETS; i++)
		while (c->src[i]) {
			struct src_count *n = c->src[i]->next;
			free(c->src[i]);
			c->src[i] = n;
		}
	free(c);
}
