// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <time.h>
#include <bpf/libbpf.h>
#include "datapath/internal.h"

struct mon {
	bw_dp_event_cb cb;
	void *ctx;
	int stop;
};

static int on_sample(void *ctx, void *data, size_t len)
{
	struct mon *m = ctx;

	if (m->stop || len < sizeof(struct bw_event))
		return 0;
	if (m->cb(data, m->ctx))
		m->stop = 1;
	return m->stop ? 1 : 0;
}

int bw_dp_monitor(struct bw_dp *dp, bw_dp_event_cb cb, void *ctx, int timeout_ms)
{
	struct mon m = { cb, ctx, 0 };
	struct ring_buffer *rb = ring_buffer__new(dp->fd[BW_MAP_EVENTS], on_sample, &m, NULL);
	struct timespec start, now;
	int r = 0;

	if (!rb)
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!m.stop) {
		int wait = 200;

		if (timeout_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
			if (spent >= timeout_ms)
				break;
			if (timeout_ms - spent < wait)
				wait = (int)(timeout_ms - spent);
		}
		r = ring_buffer__poll(rb, wait);
		if (r == -EINTR) {
			r = 0;
			break;
		}
		if (r < 0)
			break;
		r = 0;
	}
	ring_buffer__free(rb);
	return r;
}

static int discard(void *ctx, void *data, size_t len)
{
	(void)data, (void)len;
	++*(long *)ctx;
	return 0;
}

long bw_dp_monitor_drain(struct bw_dp *dp)
{
	long n = 0;
	struct ring_buffer *rb = ring_buffer__new(dp->fd[BW_MAP_EVENTS], discard, &n, NULL);
	int r;

	if (!rb)
		return -errno;
	r = ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return r < 0 ? r : n;
}
