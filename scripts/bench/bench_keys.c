// SPDX-License-Identifier: GPL-2.0-only
/*
 * Key service benchmark driver (run by scripts/bench/keys).
 *   bench_keys URL CA latency N ATTESTER [TCTI]  N sequential cold fetches (new client: TLS
 *                     connection, auth, attest, resource); anchor: N cold GET /healthz
 *   bench_keys URL CA throughput THREADS SECONDS  warm fetches/s with token reuse, one client
 *                     per thread, and the p99 of one fetch; anchor: GET /healthz/s and p99 over the
 *                     same kind of connections
 *   bench_keys URL CA sessions N                  open N sessions (POST /auth, no cookie kept)
 *   bench_keys URL CA open CONNS RATE SECONDS [THREADS]  open loop: CONNS clients, each attested
 *                     once and then fetching with its token over its own kept-alive TLS connection;
 *                     requests are scheduled at fixed intervals (RATE/s in all) round-robin over the
 *                     connections, whether or not earlier ones have come back, and each latency is
 *                     taken from the scheduled send time (a request queued behind a slow one on
 *                     its connection counts its wait). THREADS (default 1) event loops drive them
 *                     (libcurl multi, one per connection, all in one epoll per thread). Every reply
 *                     is checked (HTTP 200, a flattened JWE with its five members); 1 in 64 is
 *                     also decrypted. Anchor: GET /healthz, same mode, connections and rate.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <curl/curl.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

static const char *url, *ca, *attester = "sample", *tcti;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[(int)(p * (n - 1) + 0.5)];
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

static CURL *plain(const char *path)
{
	CURL *c = curl_easy_init();
	char u[512];

	snprintf(u, sizeof(u), "%s%s", url, path);
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	return c;
}

static struct bw_kbs_client *client(void)
{
	struct bw_kbs_client_opts o = { .url = url, .ca_file = ca, .attester = attester,
					.aopts = { .tcti = tcti, .ak_handle = 0x81010002 } };
	struct bw_kbs_client *c;

	if (bw_kbs_client_new(&o, &c) < 0)
		exit(1);
	return c;
}

/* As a long-lived agent would: one locked buffer per thread, reused for every key. */
static int fetch(struct bw_kbs_client *c, int i)
{
	static __thread struct bw_secret k;
	char err[BW_ERR_LEN], path[64];
	size_t len;
	int r;

	if (!k.data && bw_secret_new(&k, 4096) < 0)
		return -1;
	snprintf(path, sizeof(path), "bulwark/volume/bench-%d", i % 1000);
	r = bw_kbs_get_resource_into(c, path, k.data, k.size, &len, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "fetch: %s\n", err);
	OPENSSL_cleanse(k.data, k.size);
	return r;
}

static int latency(int n)
{
	double *ours = calloc((size_t)n, sizeof(double)), *anchor = calloc((size_t)n, sizeof(double));

	for (int i = 0; i < n; i++) {
		double t = now_ms();
		struct bw_kbs_client *c = client();
		if (fetch(c, i) < 0)
			return 1;
		bw_kbs_client_free(c);
		ours[i] = now_ms() - t;
		t = now_ms();
		CURL *h = plain("/healthz");
		if (curl_easy_perform(h) != CURLE_OK)
			return 1;
		curl_easy_cleanup(h);
		anchor[i] = now_ms() - t;
	}
	double p50 = pct(ours, n, .5), p99 = pct(ours, n, .99), a50 = pct(anchor, n, .5), a99 = pct(anchor, n, .99);
	printf("%-7s cold fetch (TLS + auth + attest + resource), %d runs: p50 %.2f ms p99 %.2f ms; "
	       "anchor cold TLS GET /healthz: p50 %.2f ms p99 %.2f ms; ratio p50 %.2fx\n",
	       attester, n, p50, p99, a50, a99, p50 / a50);
	return 0;
}

struct worker {
	pthread_t t;
	long done;
	bool anchor;
	int id;
};

/* Latency histogram of the timed requests, all threads: 10 us buckets up to 20 s. */
#define HIST_US 10
#define HIST_N 2000000
static unsigned long hist[HIST_N + 1];

static void record(double ms)
{
	long b = (long)(ms * 1000 / HIST_US);

	__atomic_fetch_add(&hist[b < 0 ? 0 : b > HIST_N ? HIST_N : b], 1, __ATOMIC_RELAXED);
}

static double hist_pct(double p)
{
	unsigned long total = 0, seen = 0;

	for (long i = 0; i <= HIST_N; i++)
		total += hist[i];
	for (long i = 0; i <= HIST_N; i++) {
		seen += hist[i];
		if (total && seen >= (unsigned long)(p * total + 0.5))
			return (i + 1) * HIST_US / 1000.0;
	}
	return 0;
}
static pthread_barrier_t ready; /* all clients connected (and attested) before the clock starts */
static volatile double until;

static void *work(void *arg)
{
	struct worker *w = arg;

	if (w->anchor) {
		CURL *h = plain("/healthz");
		bool ok = curl_easy_perform(h) == CURLE_OK;
		pthread_barrier_wait(&ready);
		pthread_barrier_wait(&ready);
		for (double t = now_ms(); ok && t < until && curl_easy_perform(h) == CURLE_OK; t = now_ms()) {
			record(now_ms() - t);
			w->done++;
		}
		curl_easy_cleanup(h);
		return NULL;
	}
	struct bw_kbs_client *c = client();
	/* The first fetch attests; count only the warm ones that reuse the token. */
	bool ok = fetch(c, w->id) == 0;
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&ready);
	for (double t = now_ms(); ok && t < until && fetch(c, w->id + (int)w->done) == 0; t = now_ms()) {
		record(now_ms() - t);
		w->done++;
	}
	bw_kbs_client_free(c);
	return NULL;
}

/* CPU seconds the service has used (user + system), from /proc/$BENCH_SERVICE_PID/stat; -1 when
 * unknown. */
static double service_cpu(void)
{
	const char *pid = getenv("BENCH_SERVICE_PID");
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (!pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is 3rd, utime 14th. */
	if (!(p = strrchr(buf, ')')) || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* Requests/s of THREADS clients for SECS; *p99 the 99th percentile of one request (ms), *cpu_us
 * the service's CPU time per request (us; -1 unknown). */
static double run(int threads, double secs, bool anchor, double *p99, double *cpu_us)
{
	struct worker *w = calloc((size_t)threads, sizeof(*w));
	double start, rate, cpu0;
	long total = 0;

	memset(hist, 0, sizeof(hist));
	pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .anchor = anchor, .id = i };
		pthread_create(&w[i].t, NULL, work, &w[i]);
	}
	pthread_barrier_wait(&ready);
	cpu0 = service_cpu();
	start = now_ms();
	until = start + secs * 1000;
	pthread_barrier_wait(&ready);
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].t, NULL);
		total += w[i].done;
	}
	free(w);
	pthread_barrier_destroy(&ready);
	rate = total / ((now_ms() - start) / 1000);
	*p99 = hist_pct(.99);
	*cpu_us = cpu0 >= 0 && total ? (service_cpu() - cpu0) * 1e6 / total : -1;
	return rate;
}

static int throughput(int threads, double secs)
{
	double p99, a99, cpu, acpu, ours = run(threads, secs, false, &p99, &cpu),
					anchor = run(threads, secs, true, &a99, &acpu);

	printf("%3d clients: %8.0f fetches/s (token reuse) p99 %6.2f ms; anchor GET /healthz: %8.0f req/s p99 %6.2f ms; "
	       "ratio %.2fx", threads, ours, p99, anchor, a99, ours / anchor);
	if (cpu >= 0)
		printf("; service CPU %.0f us/fetch, %.0f us/healthz", cpu, acpu);
	printf("\n");
	return 0;
}

/* ---- open loop ---- */

#define QCAP 4096     /* scheduled sends waiting per connection */
#define SAMPLE 64     /* decrypt 1 reply in SAMPLE */
#define DRAIN_MS 10000 /* after the last scheduled send: wait this long for the replies */

struct oconn {
	CURLM *m;
	CURL *h;
	struct bw_kbs_client *kc; /* NULL: anchor */
	struct curl_slist *hdrs;
	char body[8192];
	size_t len;
	bool too_big;
	double q[QCAP];
	unsigned qh, qt;
	double cur;   /* scheduled send time of the request in flight; < 0: idle */
	double timer; /* libcurl's deadline (ms); < 0: none */
	int ep, idx;
};

struct oloop {
	pthread_t t;
	struct oconn *c;
	int n, tid, nth, conns;
	bool anchor;
	int ep;
	long ok, errs, decrypted, unfinished, done, reconnects;
	double maxlat, last;
	char firsterr[BW_ERR_LEN];
};

static pthread_barrier_t obar;
static double o_t0, o_iv, o_secs;
static long o_total;

static size_t obody(char *p, size_t s, size_t n, void *u)
{
	struct oconn *c = u;

	if (c->len + s * n >= sizeof(c->body)) {
		c->too_big = true;
		return 0;
	}
	memcpy(c->body + c->len, p, s * n);
	c->len += s * n;
	c->body[c->len] = '\0';
	return s * n;
}

static int osock(CURL *e, curl_socket_t s, int what, void *u, void *sp)
{
	struct oconn *c = u;
	struct epoll_event ev = { .data.u64 = (uint64_t)c->idx << 32 | (uint32_t)s };

	(void)e;
	(void)sp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(c->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(c->ep, EPOLL_CTL_MOD, s, &ev) < 0)
		epoll_ctl(c->ep, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

static int otimer(CURLM *m, long ms, void *u)
{
	struct oconn *c = u;

	(void)m;
	c->timer = ms < 0 ? -1 : now_ms() + ms;
	return 0;
}

static void ostart(struct oconn *c)
{
	c->cur = c->q[c->qh++ % QCAP];
	c->len = 0;
	c->too_big = false;
	curl_multi_add_handle(c->m, c->h);
}

static void opush(struct oloop *L, struct oconn *c, double when)
{
	if (c->qt - c->qh >= QCAP) {
		L->errs++; /* the generator's own queue is full: counted as an error, never silently */
		return;
	}
	c->q[c->qt++ % QCAP] = when;
	if (c->cur < 0)
		ostart(c);
}

static void oerr(struct oloop *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void oerr(struct oloop *L, const char *fmt, ...)
{
	va_list ap;

	L->errs++;
	if (L->firsterr[0])
		return;
	va_start(ap, fmt);
	vsnprintf(L->firsterr, sizeof(L->firsterr), fmt, ap);
	va_end(ap);
}

/* A reply: HTTP 200; for a fetch a flattened JWE (its five members), 1 in SAMPLE decrypted. */
static bool ocheck(struct oloop *L, struct oconn *c, CURLcode cc)
{
	static __thread struct bw_secret k;
	struct json_object *o = NULL;
	char err[BW_ERR_LEN];
	long status = 0;
	size_t len = 0;
	bool ok;

	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK || status != 200) {
		oerr(L, "connection %d: %s, HTTP %ld", c->idx, cc != CURLE_OK ? curl_easy_strerror(cc) : "reply", status);
		return false;
	}
	if (!c->kc)
		return true;
	ok = bw_kbs_parse_object(c->body, c->len, &o) == 0 && bw_json_str(o, "protected") &&
	     bw_json_str(o, "encrypted_key") && bw_json_str(o, "iv") && bw_json_str(o, "ciphertext") &&
	     bw_json_str(o, "tag");
	json_object_put(o);
	if (!ok) {
		oerr(L, "connection %d: the reply is not a flattened JWE", c->idx);
		return false;
	}
	if (L->done % SAMPLE)
		return true;
	if (!k.data && bw_secret_new(&k, 4096) < 0)
		return false;
	if (bw_kbs_client_decrypt_into(c->kc, c->body, c->len, k.data, k.size, &len, err, sizeof(err)) < 0 || len != 32) {
		oerr(L, "connection %d: %s", c->idx, len != 32 ? "decrypted resource is not 32 bytes" : err);
		OPENSSL_cleanse(k.data, k.size);
		return false;
	}
	OPENSSL_cleanse(k.data, k.size);
	L->decrypted++;
	return true;
}

static void odone(struct oloop *L, struct oconn *c, bool timed)
{
	struct CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode cc = msg->data.result;
		double t = now_ms(), lat = t - c->cur;
		bool ok = ocheck(L, c, cc);

		long nc = 0;

		curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &nc);
		curl_multi_remove_handle(c->m, c->h);
		c->cur = -1;
		L->done++;
		if (timed && nc)
			L->reconnects++;
		if (timed && ok) {
			record(lat);
			L->ok++;
			L->last = t;
			if (lat > L->maxlat)
				L->maxlat = lat;
		}
		if (c->qt != c->qh)
			ostart(c);
	}
}

/* Serve libcurl until `until` (ms): socket events and its timers. */
static void opump(struct oloop *L, double until, bool timed)
{
	struct epoll_event ev[64];
	double now = now_ms(), d = until;
	int running, n;

	for (int i = 0; i < L->n; i++)
		if (L->c[i].timer >= 0 && L->c[i].timer < d)
			d = L->c[i].timer;
	d = d > now ? d - now : 0;
	long long ns = (long long)(d * 1e6);
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000) };
	n = epoll_pwait2(L->ep, ev, 64, &ts, NULL);
	for (int i = 0; i < n; i++) {
		struct oconn *c = &L->c[ev[i].data.u64 >> 32];
		int fl = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			 (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

		curl_multi_socket_action(c->m, (curl_socket_t)(uint32_t)ev[i].data.u64, fl, &running);
		odone(L, c, timed);
	}
	now = now_ms();
	for (int i = 0; i < L->n; i++)
		if (L->c[i].timer >= 0 && L->c[i].timer <= now) {
			L->c[i].timer = -1;
			curl_multi_socket_action(L->c[i].m, CURL_SOCKET_TIMEOUT, 0, &running);
			odone(L, &L->c[i], timed);
		}
}

static bool obusy(struct oloop *L)
{
	for (int i = 0; i < L->n; i++)
		if (L->c[i].cur >= 0)
			return true;
	return false;
}

static void *oloop(void *arg)
{
	struct oloop *L = arg;
	double end;
	long k;

	/* Warm-up, not timed: one request per connection opens it (TLS) and uses the token once. */
	for (int i = 0; i < L->n; i++)
		opush(L, &L->c[i], now_ms());
	for (end = now_ms() + 60000; obusy(L) && now_ms() < end;)
		opump(L, now_ms() + 100, false);
	pthread_barrier_wait(&obar);
	pthread_barrier_wait(&obar);
	/* Request k (all threads) is due at t0 + k * iv on connection k % conns; this thread owns
	 * the connections (and so the requests) congruent to its id modulo the thread count. */
	end = o_t0 + o_secs * 1000 + DRAIN_MS;
	for (k = L->tid;;) {
		double now = now_ms();

		while (k < o_total && o_t0 + k * o_iv <= now) {
			opush(L, &L->c[(k % L->conns) / L->nth], o_t0 + k * o_iv);
			k += L->nth;
		}
		if ((k >= o_total && !obusy(L)) || now >= end)
			break;
		opump(L, k < o_total ? o_t0 + k * o_iv : end, true);
	}
	for (int i = 0; i < L->n; i++) {
		struct oconn *c = &L->c[i];

		L->unfinished += (c->cur >= 0) + (long)(c->qt - c->qh);
	}
	L->errs += L->unfinished;
	return NULL;
}

static double cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

struct oresult {
	double rate, p50, p99, max, cpu_us, gen_us;
	long ok, errs, decrypted, unfinished, reconnects;
	char firsterr[BW_ERR_LEN];
};

static int orun(int conns, double rate, double secs, int nth, bool anchor, struct oresult *res)
{
	struct oloop *L = calloc((size_t)nth, sizeof(*L));
	struct oconn *cs = calloc((size_t)conns, sizeof(*cs));
	char u[512], err[BW_ERR_LEN];
	double cpu0, gen0, last = 0;

	if (!L || !cs)
		return -1;
	memset(hist, 0, sizeof(hist));
	*res = (struct oresult){ 0 };
	for (int t = 0; t < nth; t++) {
		L[t] = (struct oloop){ .tid = t, .nth = nth, .conns = conns, .anchor = anchor,
				       .ep = epoll_create1(EPOLL_CLOEXEC), .n = 0 };
		L[t].c = &cs[t * (conns / nth)];
	}
	for (int i = 0; i < conns; i++) {
		struct oloop *l = &L[i % nth];
		struct oconn *c = &l->c[l->n];

		*c = (struct oconn){ .m = curl_multi_init(), .h = curl_easy_init(), .cur = -1, .timer = -1,
				     .ep = l->ep, .idx = l->n++ };
		if (anchor) {
			snprintf(u, sizeof(u), "%s/healthz", url);
		} else {
			char *auth = NULL;

			c->kc = client();
			if (bw_kbs_attest(c->kc, err, sizeof(err)) < 0) {
				fprintf(stderr, "attest: %s\n", err);
				return -1;
			}
			/* Its handshake connection is not one of the CONNS. */
			bw_kbs_client_disconnect(c->kc);
			if (asprintf(&auth, "Authorization: Bearer %s", bw_kbs_client_token(c->kc)) < 0)
				return -1;
			c->hdrs = curl_slist_append(NULL, auth);
			OPENSSL_cleanse(auth, strlen(auth));
			free(auth);
			snprintf(u, sizeof(u), "%s" BW_KBS_PREFIX "/resource/bulwark/volume/bench-%d", url, i % 1000);
		}
		curl_easy_setopt(c->h, CURLOPT_URL, u);
		curl_easy_setopt(c->h, CURLOPT_CAINFO, ca);
		curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
		curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, obody);
		curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)DRAIN_MS);
		curl_multi_setopt(c->m, CURLMOPT_SOCKETFUNCTION, osock);
		curl_multi_setopt(c->m, CURLMOPT_SOCKETDATA, c);
		curl_multi_setopt(c->m, CURLMOPT_TIMERFUNCTION, otimer);
		curl_multi_setopt(c->m, CURLMOPT_TIMERDATA, c);
	}
	pthread_barrier_init(&obar, NULL, (unsigned)nth + 1);
	for (int t = 0; t < nth; t++)
		pthread_create(&L[t].t, NULL, oloop, &L[t]);
	pthread_barrier_wait(&obar); /* every connection open and warm */
	o_iv = 1000 / rate;
	o_secs = secs;
	o_total = (long)(rate * secs);
	cpu0 = service_cpu();
	gen0 = cpu_self();
	o_t0 = now_ms() + 10;
	pthread_barrier_wait(&obar);
	for (int t = 0; t < nth; t++) {
		pthread_join(L[t].t, NULL);
		res->ok += L[t].ok;
		res->errs += L[t].errs;
		res->decrypted += L[t].decrypted;
		res->unfinished += L[t].unfinished;
		res->reconnects += L[t].reconnects;
		if (L[t].maxlat > res->max)
			res->max = L[t].maxlat;
		if (L[t].last > last)
			last = L[t].last;
		if (!res->firsterr[0])
			memcpy(res->firsterr, L[t].firsterr, sizeof(res->firsterr));
	}
	/* Over the scheduled period, or until the last reply when they came back later. */
	res->rate = res->ok / ((last > o_t0 + secs * 1000 ? last - o_t0 : secs * 1000) / 1000);
	res->p50 = hist_pct(.5);
	res->p99 = hist_pct(.99);
	res->cpu_us = cpu0 >= 0 && res->ok ? (service_cpu() - cpu0) * 1e6 / res->ok : -1;
	res->gen_us = res->ok ? (cpu_self() - gen0) * 1e6 / res->ok : -1;
	pthread_barrier_destroy(&obar);
	for (int i = 0; i < conns; i++) {
		struct oconn *c = &cs[i];

		curl_easy_cleanup(c->h);
		curl_multi_cleanup(c->m);
		curl_slist_free_all(c->hdrs);
		bw_kbs_client_free(c->kc);
	}
	for (int t = 0; t < nth; t++)
		close(L[t].ep);
	free(cs);
	free(L);
	return 0;
}

static int open_loop(int conns, double rate, double secs, int nth)
{
	struct oresult f, a;

	if (conns < 1 || rate <= 0 || secs <= 0 || nth < 1 || conns % nth) {
		fprintf(stderr, "open: CONNS must be a multiple of THREADS\n");
		return 2;
	}
	if (orun(conns, rate, secs, nth, false, &f) < 0 || orun(conns, rate, secs, nth, true, &a) < 0)
		return 1;
	printf("open loop, %d connections, %d generator thread%s, offered %.0f/s for %.0f s:\n", conns, nth,
	       nth > 1 ? "s" : "", rate, secs);
	printf("  fetch (token reuse):  achieved %6.0f/s p50 %6.2f ms p99 %6.2f ms max %7.2f ms errors %ld",
	       f.rate, f.p50, f.p99, f.max, f.errs);
	if (f.cpu_us >= 0)
		printf("; service CPU %.0f us/fetch", f.cpu_us);
	printf("; generator CPU %.0f us/fetch; new connections %ld\n", f.gen_us, f.reconnects);
	printf("  anchor GET /healthz:  achieved %6.0f/s p50 %6.2f ms p99 %6.2f ms max %7.2f ms errors %ld",
	       a.rate, a.p50, a.p99, a.max, a.errs);
	if (a.cpu_us >= 0)
		printf("; service CPU %.0f us/healthz", a.cpu_us);
	printf("; generator CPU %.0f us/request; new connections %ld\n", a.gen_us, a.reconnects);
	printf("  ratio: achieved %.2fx, p50 %.2fx, p99 %.2fx; latency from each request's scheduled send "
	       "time; every reply checked (HTTP 200, flattened JWE), 1 in %d decrypted (%ld, all correct)\n",
	       a.rate ? f.rate / a.rate : 0, a.p50 ? f.p50 / a.p50 : 0, a.p99 ? f.p99 / a.p99 : 0, SAMPLE, f.decrypted);
	if (f.errs || a.errs)
		printf("  errors: fetch %ld (%ld unfinished after %d s: %s), anchor %ld (%ld unfinished: %s)\n", f.errs,
		       f.unfinished, DRAIN_MS / 1000, f.firsterr[0] ? f.firsterr : "-", a.errs, a.unfinished,
		       a.firsterr[0] ? a.firsterr : "-");
	return 0;
}

static int sessions(int n)
{
	CURL *h = plain(BW_KBS_PREFIX "/auth");
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");

	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{}}");
	for (int i = 0; i < n; i++)
		if (curl_easy_perform(h) != CURLE_OK)
			return 1;
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_keys URL CA latency N ATTESTER [TCTI] | throughput THREADS SECONDS | sessions N"
			" | open CONNS RATE SECONDS [THREADS]\n");
		return 2;
	}
	url = argv[1];
	ca = argv[2];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(argv[3], "latency") && argc >= 6) {
		attester = argv[5];
		tcti = argc > 6 ? argv[6] : NULL;
		return latency(atoi(argv[4]));
	}
	if (!strcmp(argv[3], "throughput") && argc == 6)
		return throughput(atoi(argv[4]), atof(argv[5]));
	if (!strcmp(argv[3], "open") && (argc == 7 || argc == 8))
		return open_loop(atoi(argv[4]), atof(argv[5]), atof(argv[6]), argc == 8 ? atoi(argv[7]) : 1);
	if (!strcmp(argv[3], "sessions"))
		return sessions(atoi(argv[4]));
	return 2;
}
