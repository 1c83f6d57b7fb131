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
 *   - accept() failing with EMFILE/ENFILE (descriptors exhausted anyway, e.g. the limit lowered
 *     under the running service) lowers the cap to what the current RLIMIT_NOFILE allows (or
 *     below the connections open), closes the least recently active connections down to it,
 *     pauses the listener briefly (backoff) and logs once per period. From then on each accept
 *     makes room itself (as at the cap), so the accept queue keeps draining at full speed and an
 *     honest client queued behind a flood is not held for one accept per backoff period. The
 *     cap goes back up with the limit (re-read every second once no error has come for one).
 * Closing is shutdown(2) on the socket: evhttp then sees end-of-file and frees the connection
 * itself, so nothing is freed behind its back.
 *
 * Threads: every loop (one per worker thread) shares one bw_ks_conns under its mutex, so the
 * bounds above are global. A connection is owned by the loop that accepted it: only that loop
 * frees it and closes its descriptor, so a close decided by another thread (making room, a
 * deadline) is queued to the owner, which shuts the socket down in its next iteration (a
 * descriptor number touched from another thread could already belong to a new connection).
 * Each loop accepts at most ACCEPT_BURST connections before it serves the others again, so a
 * flood of connects cannot hold a loop in accept() while established clients wait.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include "keyservice/keyservice.h"

#define SRC_BUCKETS 1024
#define LOG_PERIOD_MS 10000
#define BW_KS_CLOSING_MAX 32 /* below main.c's descriptor headroom */
#define ACCEPT_BURST 16

enum where { NOWHERE, FRESH, OPEN, KILL };

struct conn {
	struct bw_ks_conns_loop *loop; /* owner: accepted it, frees it */
	struct bufferevent *bev;
	char src[BW_KS_SOURCE_LEN];
	uint64_t last_ms;          /* accept, then each completed request */
	bool closing;
	enum where on;             /* FRESH: source not yet known (fd set after the callback) */
	struct conn *prev, *next;  /* on the list `on` names */
};

struct src_count {
	char addr[BW_KS_SOURCE_LEN];
	size_t n;
	struct src_count *next;
};

struct bw_ks_conns_loop {
	struct bw_ks_conns *c;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *sweep, *post_accept, *resume, *unpause, *kill_ev;
	struct conn *fresh;         /* accepted this iteration, source pending */
	struct conn *kill;          /* closed by another thread: shut the socket down here */
	long backoff_ms;
	unsigned burst;             /* accepted since post_accept last ran */
};

struct bw_ks_conns {
	pthread_mutex_t lock;
	SSL_CTX *ssl;
	struct bw_ks_conn_limits l;
	size_t cap;                 /* l.max, lowered while descriptors run out */
	uint64_t fd_error_ms;       /* last EMFILE/ENFILE */
	struct conn *head, *tail;   /* open connections, least recently active first */
	struct src_count *src[SRC_BUCKETS];
	size_t open, closing;
	uint64_t last_log_ms, suppressed;
	struct bw_ks_conn_stats st;
};

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static __thread struct bw_ks_conns_loop *self; /* the loop this thread runs */

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

static struct src_count *src_get(struct bw_ks_conns *c, const char *addr, bool create)
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

static void src_dec(struct bw_ks_conns *c, const char *addr)
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

/* Take x off the list it is on (c->lock held). */
static void unlink_conn(struct bw_ks_conns *c, struct conn *x)
{
	struct conn **head = x->on == FRESH ? &x->loop->fresh : x->on == KILL ? &x->loop->kill : &c->head;

	if (x->on == NOWHERE)
		return;
	if (x->prev)
		x->prev->next = x->next;
	else
		*head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else if (x->on == OPEN)
		c->tail = x->prev;
	x->prev = x->next = NULL;
	x->on = NOWHERE;
}

static void push(struct conn **head, struct conn *x, enum where on)
{
	x->prev = NULL;
	x->next = *head;
	if (*head)
		(*head)->prev = x;
	*head = x;
	x->on = on;
}

static void append(struct bw_ks_conns *c, struct conn *x)
{
	x->prev = c->tail;
	x->next = NULL;
	if (c->tail)
		c->tail->next = x;
	else
		c->head = x;
	c->tail = x;
	x->on = OPEN;
}

/* Close x (c->lock held): it leaves the open list at once (its descriptor stays counted until
 * evhttp frees it); the owner loop shuts its socket down, now if that is us. */
static void close_conn(struct bw_ks_conns *c, struct conn *x)
{
	if (x->closing)
		return;
	unlink_conn(c, x);
	x->closing = true;
	c->open--;
	c->closing++;
	if (x->loop == self) {
		evutil_socket_t fd = bufferevent_getfd(x->bev);
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
		return;
	}
	push(&x->loop->kill, x, KILL);
	event_active(x->loop->kill_ev, EV_TIMEOUT, 0);
}

static void evict_lru(struct bw_ks_conns *c, uint64_t *counter)
{
	if (c->head) {
		close_conn(c, c->head);
		(*counter)++;
	}
}

/* Connections other threads closed: shut their sockets down (we own them). */
static void on_kill(evutil_socket_t fd, short ev, void *arg)
{
	struct bw_ks_conns_loop *lp = arg;
	struct conn *x;

	(void)fd, (void)ev;
	pthread_mutex_lock(&lp->c->lock);
	while ((x = lp->kill)) {
		evutil_socket_t s = bufferevent_getfd(x->bev);
		unlink_conn(lp->c, x);
		if (s >= 0)
			shutdown(s, SHUT_RDWR);
	}
	pthread_mutex_unlock(&lp->c->lock);
}

/* OpenSSL frees the SSL object when evhttp frees the connection's bufferevent (in the owner's
 * thread, or at exit with every loop stopped). */
static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct conn *x = ptr;
	struct bw_ks_conns *c;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!x)
		return;
	c = x->loop->c;
	pthread_mutex_lock(&c->lock);
	unlink_conn(c, x);
	if (x->closing)
		c->closing--;
	else
		c->open--;
	if (x->src[0])
		src_dec(c, x->src);
	pthread_mutex_unlock(&c->lock);
	free(x);
}

static void log_accept_error(struct bw_ks_conns *c, int err, long backoff_ms)
{
	uint64_t t = now_ms();

	c->st.accept_errors++;
	if (c->last_log_ms && t - c->last_log_ms < LOG_PERIOD_MS) {
		c->suppressed++;
		return;
	}
	bw_warn("accept: %s; pausing the listener (backoff %ld ms), %zu connections open; %llu such errors "
		"not logged in the last %d s",
		strerror(err), backoff_ms, c->open, (unsigned long long)c->suppressed, LOG_PERIOD_MS / 1000);
	c->last_log_ms = t;
	c->suppressed = 0;
}

/* What RLIMIT_NOFILE allows now (the configured cap at most). */
static size_t fd_cap(const struct bw_ks_conns *c)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= (rlim_t)c->l.max + BW_KS_FD_HEADROOM)
		return c->l.max;
	return rl.rlim_cur > BW_KS_FD_HEADROOM + 16 ? (size_t)(rl.rlim_cur - BW_KS_FD_HEADROOM) : 16;
}

/* Descriptors ran out (c->lock held): lower the cap to what the limit allows, or below the open
 * connections when they are already within it (other descriptors, ENFILE), and make room. */
static void fd_shortage(struct bw_ks_conns *c)
{
	size_t cap = fd_cap(c);

	if (cap >= c->open)
		cap = c->open > 16 ? c->open - c->open / 8 : c->open > 1 ? c->open - 1 : 1;
	if (cap < c->cap)
		c->cap = cap;
	c->fd_error_ms = now_ms();
	do
		evict_lru(c, &c->st.evicted_fd);
	while (c->open >= c->cap && c->head);
}

/* The listener's user data is evhttp's; the error comes on the thread of its loop. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct bw_ks_conns_loop *lp = self;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv;

	(void)arg;
	if (!lp)
		return;
	lp->backoff_ms = lp->backoff_ms ? (lp->backoff_ms * 2 > 1000 ? 1000 : lp->backoff_ms * 2) : 10;
	/* Out of descriptors (or memory): stop accepting for a while and free one, rather than
	 * spin on a listening socket that stays readable. */
	evconnlistener_disable(lev);
	pthread_mutex_lock(&lp->c->lock);
	log_accept_error(lp->c, err, lp->backoff_ms);
	if (err == EMFILE || err == ENFILE)
		fd_shortage(lp->c);
	pthread_mutex_unlock(&lp->c->lock);
	tv = (struct timeval){ lp->backoff_ms / 1000, (lp->backoff_ms % 1000) * 1000 };
	event_add(lp->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct bw_ks_conns_loop *lp = arg;

	(void)fd, (void)ev;
	evconnlistener_enable(lp->listener);
}

/* After a burst of accepts: accept again once the events already pending have run. */
static void on_unpause(evutil_socket_t fd, short ev, void *arg)
{
	struct bw_ks_conns_loop *lp = arg;

	(void)fd, (void)ev;
	if (!event_pending(lp->resume, EV_TIMEOUT, NULL))
		evconnlistener_enable(lp->listener);
}

/* The sources of this iteration's new connections, now that evhttp has set their sockets. */
static void on_post_accept(evutil_socket_t fd, short ev, void *arg)
{
	struct bw_ks_conns_loop *lp = arg;
	struct bw_ks_conns *c = lp->c;
	struct conn *x;

	(void)fd, (void)ev;
	lp->burst = 0;
	pthread_mutex_lock(&c->lock);
	while ((x = lp->fresh)) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		evutil_socket_t s = bufferevent_getfd(x->bev);
		struct src_count *sc;

		unlink_conn(c, x);
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
	pthread_mutex_unlock(&c->lock);
}

static void on_sweep(evutil_socket_t fd, short ev, void *arg)
{
	struct bw_ks_conns *c = ((struct bw_ks_conns_loop *)arg)->c;
	uint64_t t = now_ms();

	(void)fd, (void)ev;
	/* Least recently active first: stop at the first one still within its deadline. */
	pthread_mutex_lock(&c->lock);
	if (c->cap < c->l.max && t - c->fd_error_ms >= 1000)
		c->cap = fd_cap(c);
	while (c->head && c->head->last_ms + (uint64_t)c->l.request_timeout_ms <= t) {
		close_conn(c, c->head);
		c->st.timed_out++;
	}
	pthread_mutex_unlock(&c->lock);
}

static void ex_make(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
}

struct bw_ks_conns *bw_ks_conns_new(SSL_CTX *ssl, const struct bw_ks_conn_limits *l)
{
	struct bw_ks_conns *c;

	pthread_once(&ex_once, ex_make);
	if (ex_index < 0 || !(c = calloc(1, sizeof(*c))))
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->ssl = ssl;
	c->l = *l;
	c->cap = l->max;
	return c;
}

struct bw_ks_conns_loop *bw_ks_conns_loop_new(struct bw_ks_conns *c, struct event_base *base, struct evconnlistener *lev)
{
	struct bw_ks_conns_loop *lp = calloc(1, sizeof(*lp));
	struct timeval period = { 0, 250000 };

	if (!lp)
		return NULL;
	lp->c = c;
	lp->base = base;
	lp->listener = lev;
	lp->sweep = event_new(base, -1, EV_PERSIST, on_sweep, lp);
	lp->post_accept = event_new(base, -1, 0, on_post_accept, lp);
	lp->resume = event_new(base, -1, 0, on_resume, lp);
	lp->unpause = event_new(base, -1, 0, on_unpause, lp);
	lp->kill_ev = event_new(base, -1, 0, on_kill, lp);
	if (!lp->sweep || !lp->post_accept || !lp->resume || !lp->unpause || !lp->kill_ev ||
	    event_add(lp->sweep, &period) < 0) {
		bw_ks_conns_loop_free(lp);
		return NULL;
	}
	evconnlistener_set_error_cb(lev, on_accept_error);
	return lp;
}

void bw_ks_conns_loop_enter(struct bw_ks_conns_loop *lp)
{
	self = lp;
}

struct bufferevent *bw_ks_conns_bev(struct bw_ks_conns_loop *lp)
{
	struct bw_ks_conns *c = lp->c;
	SSL *ssl;
	struct conn *x;
	struct bufferevent *bev;
	bool pause;

	lp->backoff_ms = 0; /* accepting again */
	pthread_mutex_lock(&c->lock);
	while (c->open >= c->cap && c->head)
		evict_lru(c, c->cap < c->l.max ? &c->st.evicted_fd : &c->st.evicted_full);
	/* Closed connections hold their descriptors until evhttp sees the end of file in a later
	 * loop iteration, and libevent accepts in a loop: let those go before accepting more, so
	 * open + closing stays within the descriptor headroom. */
	pause = c->closing >= BW_KS_CLOSING_MAX;
	pthread_mutex_unlock(&c->lock);
	if (pause && evconnlistener_disable(lp->listener) == 0)
		event_add(lp->resume, &(struct timeval){ 0, 10000 });
	else if (++lp->burst >= ACCEPT_BURST && evconnlistener_disable(lp->listener) == 0)
		event_active(lp->unpause, EV_TIMEOUT, 0);
	ssl = SSL_new(c->ssl);
	bev = ssl ? bufferevent_openssl_socket_new(lp->base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
		  : NULL;
	if (!bev)
		return NULL; /* evhttp would then speak plain HTTP: route() refuses such requests */
	x = calloc(1, sizeof(*x));
	if (x) {
		x->loop = lp;
		x->bev = bev;
		x->last_ms = now_ms();
	}
	pthread_mutex_lock(&c->lock);
	c->st.accepted++;
	if (x && SSL_set_ex_data(ssl, ex_index, x)) {
		push(&lp->fresh, x, FRESH);
		c->open++;
		x = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	free(x); /* unaccounted (no memory), but TLS all the same */
	event_active(lp->post_accept, EV_TIMEOUT, 0);
	return bev;
}

bool bw_ks_conns_is_tls(struct bufferevent *bev)
{
	return bev && bufferevent_openssl_get_ssl(bev);
}

void bw_ks_conns_served(struct bw_ks_conns_loop *lp, struct bufferevent *bev)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn *x = ssl ? SSL_get_ex_data(ssl, ex_index) : NULL;
	struct bw_ks_conns *c = lp->c;

	if (!x)
		return;
	pthread_mutex_lock(&c->lock);
	if (x->on == OPEN) {
		unlink_conn(c, x);
		x->last_ms = now_ms();
		append(c, x);
	}
	pthread_mutex_unlock(&c->lock);
}

void bw_ks_conns_stats(struct bw_ks_conns *c, struct bw_ks_conn_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->open = c->open;
	st->closing = c->closing;
	pthread_mutex_unlock(&c->lock);
}

void bw_ks_conns_loop_free(struct bw_ks_conns_loop *lp)
{
	if (!lp)
		return;
	if (self == lp)
		self = NULL;
	/* Its connections belonged to evhttp, which is freed first; only events remain. */
	if (lp->sweep)
		event_free(lp->sweep);
	if (lp->post_accept)
		event_free(lp->post_accept);
	if (lp->resume)
		event_free(lp->resume);
	if (lp->unpause)
		event_free(lp->unpause);
	if (lp->kill_ev)
		event_free(lp->kill_ev);
	free(lp);
}

void bw_ks_conns_free(struct bw_ks_conns *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SRC_BUCKETS; i++)
		while (c->src[i]) {
			struct src_count *n = c->src[i]->next;
			free(c->src[i]);
			c->src[i] = n;
		}
	pthread_mutex_destroy(&c->lock);
	free(c);
}
