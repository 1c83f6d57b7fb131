/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark-csi: a CSI (spec v1.12, package csi.v1) node plugin for encrypted, optionally
 * integrity-protected volumes, served on a unix socket with gRPC's core C API. Node calls map onto
 * the storage library (storage/include/bulwark/storage.h) in process. See userspace/csi/README.md.
 *
 * The transport (server.c) only moves bytes: bw_csi_call() decodes one request with protobuf-c,
 * runs it and encodes the answer, so the whole plugin logic is testable without a socket.
 */
#ifndef BULWARK_CSI_H
#define BULWARK_CSI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define BW_CSI_DRIVER_NAME "csi.bulwark.example"
#define BW_CSI_STATE_DIR "/run/bulwark/csi"   /* <mapping name>.json: what stage recorded */
#define BW_CSI_MAX_CALLS 16                   /* calls served at once */
#define BW_CSI_MAX_MSG (64 * 1024)            /* request/response bytes */

struct bw_csi_config {
	const char *endpoint;        /* "unix:///path/csi.sock" (CSI_ENDPOINT) */
	const char *driver_name;     /* GetPluginInfo name */
	const char *node_id;         /* NodeGetInfo node_id */
	int max_calls;               /* 0 = BW_CSI_MAX_CALLS */
	int max_msg;                 /* 0 = BW_CSI_MAX_MSG */
	long max_volumes;            /* NodeGetInfo max_volumes_per_node; 0 = not reported */
	const char *state_dir;       /* NULL = BW_CSI_STATE_DIR */
	int lock_timeout_ms;         /* volume lock wait per call; 0 = default (10 s) */
	/* Key-service defaults for volumes whose attributes do not name their own. */
	const char *key_service;     /* https://host:port */
	const char *attester;        /* "tpm", "sample", "tsm" */
	const char *ca_file;
	const char *tcti;
	uint32_t ak_handle;
};

/*
 * Serve until *stop becomes non-zero (set it from a signal handler). Returns 0 or a negative
 * errno with a message in err (socket could not be bound, ...).
 */
int bw_csi_serve(const struct bw_csi_config *c, volatile sig_atomic_t *stop, char *err, size_t len);

/*
 * One unary call: method ("/csi.v1.Node/NodeStageVolume"), the request's protobuf bytes. On
 * success (return 0 = gRPC OK) *out and *outlen hold the encoded response (free() it). Otherwise the
 * return value is the gRPC status code and msg the status message (never containing secrets).
 */
int bw_csi_call(const struct bw_csi_config *c, const char *method, const uint8_t *in, size_t inlen,
		uint8_t **out, size_t *outlen, char *msg, size_t msglen);

#endif
