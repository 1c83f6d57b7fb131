// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark-csi transport: a unary gRPC server on gRPC's core C API (1.51), the only file that
 * calls it. One thread polls the completion queue; every call gets a slot (REQUESTED ->
 * RECEIVING -> WORKING -> SENDING) and, once its request is in, a worker thread that runs
 * bw_csi_call() and sends the answer. The number of slots bounds the calls served at once;
 * message size, streams per connection, idle connections and memory are bounded by channel args.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <openssl/crypto.h>
#include "common/common.h"
#include "csi/csi.h"

enum slot_state { SLOT_IDLE, SLOT_REQUESTED, SLOT_RECEIVING, SLOT_WORKING, SLOT_SENDING };

struct server;
struct slot {
	struct server *s;
	enum slot_state state;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *req;
	grpc_byte_buffer *resp;
	grpc_slice status_msg;
	int cancelled;
};

struct server {
	const struct bw_csi_config *cfg;
	grpc_server *srv;
	grpc_completion_queue *cq;
	struct slot *slots;
	int nslots;
	bool stopping;
	pthread_mutex_t lock;        /* workers counter */
	int workers;
};

static void arm(struct slot *sl)
{
	grpc_call_error e;

	grpc_call_details_init(&sl->details);
	grpc_metadata_array_init(&sl->md);
	sl->call = NULL;
	sl->req = sl->resp = NULL;
	sl->cancelled = 0;
	sl->state = SLOT_REQUESTED;
	e = grpc_server_request_call(sl->s->srv, &sl->call, &sl->details, &sl->md, sl->s->cq, sl->s->cq, sl);
	if (e != GRPC_CALL_OK) {
		bw_err("csi: request_call: %s", grpc_call_error_to_string(e));
		sl->state = SLOT_IDLE;
	}
}

static void release(struct slot *sl)
{
	if (sl->req)
		grpc_byte_buffer_destroy(sl->req);
	if (sl->resp)
		grpc_byte_buffer_destroy(sl->resp);
	sl->req = sl->resp = NULL;
	grpc_call_details_destroy(&sl->details);
	grpc_metadata_array_destroy(&sl->md);
	if (sl->call)
		grpc_call_unref(sl->call);
	sl->call = NULL;
	sl->state = SLOT_IDLE;
}

/* Batch 2: initial metadata, the response (on OK only), the status, and the close. */
static void send_reply(struct slot *sl, int code, uint8_t *out, size_t outlen, const char *msg)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_call_error e;

	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (code == GRPC_STATUS_OK) {
		grpc_slice s = out ? grpc_slice_new(out, outlen, free) : grpc_empty_slice();
		sl->resp = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = sl->resp;
	} else {
		free(out);
	}
	sl->status_msg = grpc_slice_from_copied_string(msg ? msg : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n++].data.send_status_from_server.status_details = &sl->status_msg;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &sl->cancelled;
	sl->state = SLOT_SENDING;
	e = grpc_call_start_batch(sl->call, ops, n, sl, NULL);
	grpc_slice_unref(sl->status_msg);
	if (e != GRPC_CALL_OK)
		bw_err("csi: start_batch (reply): %s", grpc_call_error_to_string(e));
}

static void handle(struct slot *sl)
{
	char method[160], msg[768] = "";
	uint8_t *out = NULL;
	size_t outlen = 0, mlen = GRPC_SLICE_LENGTH(sl->details.method);
	int code;

	if (mlen >= sizeof(method)) {
		send_reply(sl, GRPC_STATUS_UNIMPLEMENTED, NULL, 0, "unknown method");
		return;
	}
	memcpy(method, GRPC_SLICE_START_PTR(sl->details.method), mlen);
	method[mlen] = 0;
	if (!sl->req) {
		send_reply(sl, GRPC_STATUS_INVALID_ARGUMENT, NULL, 0, "no request message");
		return;
	}
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, sl->req)) {
		send_reply(sl, GRPC_STATUS_INTERNAL, NULL, 0, "cannot read the request");
		return;
	}
	grpc_slice in = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	code = bw_csi_call(sl->s->cfg, method, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in), &out, &outlen,
			   msg, sizeof(msg));
	/* The request may carry node-stage secrets: wipe our contiguous copy of it. */
	OPENSSL_cleanse(GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in));
	grpc_slice_unref(in);
	send_reply(sl, code, out, outlen, msg);
}

static void *worker(void *arg)
{
	struct slot *sl = arg;
	struct server *s = sl->s;

	handle(sl);
	pthread_mutex_lock(&s->lock);
	s->workers--;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void on_event(struct server *s, struct slot *sl, int success)
{
	grpc_op op;
	pthread_t t;
	pthread_attr_t a;

	switch (sl->state) {
	case SLOT_REQUESTED:
		if (!success) {          /* server shutting down */
			release(sl);
			return;
		}
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &sl->req;
		sl->state = SLOT_RECEIVING;
		if (grpc_call_start_batch(sl->call, &op, 1, sl, NULL) != GRPC_CALL_OK) {
			release(sl);
			if (!s->stopping)
				arm(sl);
		}
		return;
	case SLOT_RECEIVING:
		if (!success) {
			send_reply(sl, GRPC_STATUS_CANCELLED, NULL, 0, "request not received");
			return;
		}
		sl->state = SLOT_WORKING;
		pthread_mutex_lock(&s->lock);
		s->workers++;
		pthread_mutex_unlock(&s->lock);
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, worker, sl) != 0) {
			pthread_mutex_lock(&s->lock);
			s->workers--;
			pthread_mutex_unlock(&s->lock);
			send_reply(sl, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, 0, "no thread for the call");
		}
		pthread_attr_destroy(&a);
		return;
	case SLOT_SENDING:
		release(sl);
		if (!s->stopping)
			arm(sl);
		return;
	default:
		bw_err("csi: event for a slot in state %d", sl->state);
	}
}

static int address_ok(const char *ep)
{
	return ep && (!strncmp(ep, "unix://", 7) || !strncmp(ep, "unix:", 5)) && strlen(ep) < 108 + 8;
}

int bw_csi_serve(const struct bw_csi_config *c, volatile sig_atomic_t *stop, char *err, size_t len)
{
	struct server s = { .cfg = c, .lock = PTHREAD_MUTEX_INITIALIZER };
	int max_msg = c->max_msg > 0 ? c->max_msg : BW_CSI_MAX_MSG;
	int shutdown_tag, port, r = 0;
	grpc_server_credentials *creds;
	grpc_resource_quota *quota;
	mode_t old;

	if (!address_ok(c->endpoint))
		return bw_errf(err, len, -EINVAL, "endpoint '%s' is not a unix socket address (unix:///path/csi.sock)",
			       c->endpoint ? c->endpoint : "");
	s.nslots = c->max_calls > 0 ? c->max_calls : BW_CSI_MAX_CALLS;
	s.slots = calloc(s.nslots, sizeof(*s.slots));
	if (!s.slots)
		return bw_errf(err, len, -ENOMEM, "out of memory");

	grpc_init();
	quota = grpc_resource_quota_create("bulwark-csi");
	grpc_resource_quota_resize(quota, 64u << 20);
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = max_msg },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = max_msg },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONCURRENT_STREAMS, .value.integer = s.nslots },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONNECTION_IDLE_MS, .value.integer = 10 * 60 * 1000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_METADATA_SIZE, .value.integer = 16 * 1024 },
		{ .type = GRPC_ARG_POINTER, .key = GRPC_ARG_RESOURCE_QUOTA,
		  .value.pointer = { .p = quota, .vtable = grpc_resource_quota_arg_vtable() } },
	};
	grpc_channel_args ca = { .num_args = ARRAY_SIZE(args), .args = args };

	s.cq = grpc_completion_queue_create_for_next(NULL);
	s.srv = grpc_server_create(&ca, NULL);
	grpc_resource_quota_unref(quota);
	grpc_server_register_completion_queue(s.srv, s.cq, NULL);
	creds = grpc_insecure_server_credentials_create();
	old = umask(0077);           /* the socket: root only (kubelet and the registrar run as root) */
	port = grpc_server_add_http2_port(s.srv, c->endpoint, creds);
	umask(old);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		r = bw_errf(err, len, -EADDRINUSE, "cannot listen on %s (a non-socket file there, or no directory?)",
			    c->endpoint);
		grpc_server_destroy(s.srv);
		goto out_cq;
	}
	grpc_server_start(s.srv);
	for (int i = 0; i < s.nslots; i++) {
		s.slots[i].s = &s;
		arm(&s.slots[i]);
	}
	bw_info("csi: %s serving on %s (node %s, %d calls at once, %d-byte messages)", c->driver_name,
		c->endpoint, c->node_id, s.nslots, max_msg);

	while (!*stop) {
		grpc_event ev = grpc_completion_queue_next(s.cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						gpr_time_from_millis(250, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			on_event(&s, ev.tag, ev.success);
		else if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}

	/* Shutdown: refuse new calls, cancel the rest, let running workers finish (bounded). */
	s.stopping = true;
	grpc_server_shutdown_and_notify(s.srv, s.cq, &shutdown_tag);
	grpc_server_cancel_all_calls(s.srv);
	gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(10, GPR_TIMESPAN));
	bool down = false;
	for (;;) {
		pthread_mutex_lock(&s.lock);
		int busy = s.workers;
		pthread_mutex_unlock(&s.lock);
		if (down && !busy)
			break;
		if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), until) > 0) {
			bw_warn("csi: %d calls still running at shutdown; exiting without them", busy);
			free(s.slots);
			return 0;   /* the process exits; the storage library resumes interrupted work */
		}
		grpc_event ev = grpc_completion_queue_next(s.cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						gpr_time_from_millis(100, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &shutdown_tag)
			down = true;
		else if (ev.type == GRPC_OP_COMPLETE)
			on_event(&s, ev.tag, ev.success);
	}
	grpc_server_destroy(s.srv);
out_cq:
	grpc_completion_queue_shutdown(s.cq);
	while (grpc_completion_queue_next(s.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(s.cq);
	grpc_shutdown();
	free(s.slots);
	return r;
}
