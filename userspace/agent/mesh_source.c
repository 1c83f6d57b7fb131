// SPDX-License-Identifier: GPL-2.0-only
/*
 * The mesh secret fetch off the event loop (mesh_source.h). One worker thread, started with the
 * first request, runs one fetch at a time; its result (the secret in locked memory) waits in a
 * slot under a mutex and the worker activates an event of the loop (libevent's pthreads locking,
 * enabled in main), which takes it over. Nothing of the agent's state
 * is touched from the worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "common/common.h"
#include "net/net.h"
#include "agent/mesh_source.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	struct bw_conf *want;             /* a request waiting for the worker (node part only) */
	bool busy;                        /* a request is queued or running */
	struct agent_mesh_result *done;   /* a result waiting for the loop */
	struct event *ev;                 /* activated by the worker */
	void (*on_done)(void *, struct agent_mesh_result *);
	void *arg;
} ms = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void result_free(struct agent_mesh_result *res)
{
	if (!res)
		return;
	bw_secret_free(&res->secret);
	free(res);
}

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&ms.lock);
	for (;;) {
		struct bw_conf *c;
		struct agent_mesh_result *res;

		while (!ms.stop && !ms.want)
			pthread_cond_wait(&ms.cond, &ms.lock);
		if (ms.stop)
			break;
		c = ms.want;
		ms.want = NULL;
		pthread_mutex_unlock(&ms.lock);

		if ((res = calloc(1, sizeof(*res)))) {
			snprintf(res->path, sizeof(res->path), "%s", c->node.mesh_secret);
			snprintf(res->from, sizeof(res->from), "%s", c->node.key_service);
			snprintf(res->attester, sizeof(res->attester), "%s", c->node.attester);
			res->r = bw_net_mesh_fetch(c, 1, bw_log_hook, &res->secret, res->err, sizeof(res->err));
		}
		free(c);

		pthread_mutex_lock(&ms.lock);
		result_free(ms.done); /* never the case: busy holds requests until the loop took it */
		ms.done = res;
		if (!res)
			ms.busy = false;
		event_active(ms.ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&ms.lock);
	return NULL;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct agent_mesh_result *res;
	(void)fd, (void)what, (void)arg;

	pthread_mutex_lock(&ms.lock);
	res = ms.done;
	ms.done = NULL;
	if (res)
		ms.busy = false;
	pthread_mutex_unlock(&ms.lock);
	if (res)
		ms.on_done(ms.arg, res);
	result_free(res);
}

int agent_mesh_start(struct event_base *base, void (*on_done)(void *, struct agent_mesh_result *), void *arg)
{
	ms.on_done = on_done;
	ms.arg = arg;
	return (ms.ev = event_new(base, -1, 0, on_wake, NULL)) ? 0 : -ENOMEM;
}

bool agent_mesh_busy(void)
{
	bool b;

	pthread_mutex_lock(&ms.lock);
	b = ms.busy;
	pthread_mutex_unlock(&ms.lock);
	return b;
}

bool agent_mesh_request(const struct bw_conf *c)
{
	struct bw_conf *want;
	int r;

	pthread_mutex_lock(&ms.lock);
	if (ms.busy || ms.stop || !ms.ev) {
		pthread_mutex_unlock(&ms.lock);
		return false;
	}
	/* What the fetch reads: the node part (key service, CA, attester, TCTI, resource path). */
	if (!(want = calloc(1, sizeof(*want)))) {
		pthread_mutex_unlock(&ms.lock);
		return false;
	}
	want->node = c->node;
	snprintf(want->path, sizeof(want->path), "%s", c->path);
	if (!ms.started) {
		if ((r = pthread_create(&ms.thread, NULL, worker, NULL)) != 0) {
			pthread_mutex_unlock(&ms.lock);
			free(want);
			bw_err("mesh secret: starting the fetch thread: %s", strerror(r));
			return false;
		}
		ms.started = true;
	}
	ms.want = want;
	ms.busy = true;
	pthread_cond_signal(&ms.cond);
	pthread_mutex_unlock(&ms.lock);
	return true;
}

void agent_mesh_stop(void)
{
	pthread_mutex_lock(&ms.lock);
	ms.stop = true;
	pthread_cond_signal(&ms.cond);
	pthread_mutex_unlock(&ms.lock);
	if (ms.started)
		pthread_join(ms.thread, NULL);
	ms.started = false;
	free(ms.want);
	ms.want = NULL;
	result_free(ms.done);
	ms.done = NULL;
	if (ms.ev)
		event_free(ms.ev);
	ms.ev = NULL;
}
