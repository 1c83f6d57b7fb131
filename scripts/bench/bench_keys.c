// SPDX-License-Identifier: GPL-2.0-only
/*
 * Key service benchmark driver (run by scripts/bench/keys).
 *   bench_keys URL CA latency N ATTESTER [TCTI]  N sequential cold fetches (new client: TLS
 *                     connection, auth, attest, resource); anchor: N cold GET /healthz
 *   bench_keys URL CA throughput THREADS SECONDS  warm fetches/s with token reuse, one client
 *                     per thread, and the p99 of one fetch; anchor: GET /healthz/s and p99 over the
 *                     same kind of connections
 *   bench_keys URL CA sessions N                  open N sessions (POST /auth, no cookie kept)
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
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

/* Latency histogram of the timed requests, all threads: 10 us buckets up to 2 s. */
#define HIST_US 10
#define HIST_N 200000
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
		fprintf(stderr, "usage: bench_keys URL CA latency N ATTESTER [TCTI] | throughput THREADS SECONDS | sessions N\n");
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
	if (!strcmp(argv[3], "sessions"))
		return sessions(atoi(argv[4]));
	return 2;
}
