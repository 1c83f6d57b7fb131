/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark storage: encrypted (dm-crypt) and optionally authenticated (dm-integrity) volumes for
 * CSI drivers, on LUKS2 via libcryptsetup. See storage/README.md.
 *
 * Every function returns 0 on success or a negative errno; err (when given) receives a message
 * naming what was wrong. bw_vol_code() maps a failure onto the CSI error code to report.
 * libcryptsetup and libdevmapper are not thread-safe: all calls are serialised internally, and a
 * per-volume lock file serialises processes (kubelet may race a stage against a slow unstage).
 */
#ifndef BULWARK_STORAGE_H
#define BULWARK_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BW_VOL_KEY_LEN 32          /* the passphrase: 32 random bytes from the key source */
#define BW_VOL_TOKEN_TYPE "bulwark"
#define BW_VOL_ID_MAX 128

/* CSI codes (and `bulwark volume` exit codes, see storage/README.md). */
enum bw_vol_code {
	BW_VOL_OK = 0,
	BW_VOL_INTERNAL = 1,
	BW_VOL_INVALID_ARGUMENT = 3,
	BW_VOL_NOT_FOUND = 4,
	BW_VOL_FAILED_PRECONDITION = 5,
	BW_VOL_ABORTED = 6,          /* another operation on the volume is in progress */
};
enum bw_vol_code bw_vol_code(int err);
const char *bw_vol_code_name(enum bw_vol_code c);

/* Wipe progress of an integrity volume: bytes done of total. Return non-zero to stop. */
typedef int (*bw_vol_progress_fn)(uint64_t done, uint64_t total, void *ctx);

struct bw_vol_stage_opts {
	const char *id;              /* CSI volume id: 1..128 printable characters */
	const char *device;          /* backing block device */
	bool integrity;              /* hmac(sha256) via dm-integrity; decided at format time */
	const uint8_t *key;          /* BW_VOL_KEY_LEN bytes, caller keeps them in locked memory */
	bw_vol_progress_fn progress; /* optional */
	void *progress_ctx;
};

/*
 * CSI NodeStageVolume: idempotent. A blank device is formatted (the only case that writes a
 * header); a LUKS2 device is validated from a detached copy of its header and activated from
 * that same copy; anything else is refused untouched. path receives /dev/mapper/<name>.
 */
int bw_vol_stage(const struct bw_vol_stage_opts *o, char *path, size_t path_len, char *err, size_t err_len);
/* CSI NodeUnstageVolume: idempotent; removes the crypt device and its _dif integrity device. */
int bw_vol_unstage(const char *id, char *err, size_t err_len);

struct bw_vol_status {
	char name[64];
	char path[96];
	bool active;
	bool integrity;
	uint64_t size_bytes;
	char backing[64];            /* major:minor of the device below */
	uint64_t integrity_mismatches;
	char cipher[48];
	uint32_t sector_size;
};
int bw_vol_status(const char *id, struct bw_vol_status *st, char *err, size_t err_len);

/* The device-mapper name for a volume id: "bw-" + 32 hex digits of SHA-256(id). */
int bw_vol_name(const char *id, char *out, size_t len);

/*
 * Header checks (exposed for tests): validate a LUKS2 JSON metadata text against bulwark's
 * allow-list for volume id; on refusal err names the offending field.
 */
int bw_vol_check_luks2_json(const char *json, const char *id, char *err, size_t err_len);

#endif
