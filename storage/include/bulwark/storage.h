/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark storage: encrypted (dm-crypt) and optionally authenticated (dm-integrity) volumes for
 * CSI node plugins and the node's state disk, on LUKS2 via libcryptsetup. See storage/README.md.
 *
 * Every function returns 0 on success or a negative errno; err (when given) receives a message
 * naming what was wrong. bw_vol_code() maps a failure onto the CSI (gRPC) code to report.
 * libcryptsetup and libdevmapper are not thread-safe: all calls are serialised internally, and a
 * per-volume lock file serialises processes (kubelet may race a stage against a slow unstage).
 */
#ifndef BULWARK_STORAGE_H
#define BULWARK_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BW_VOL_KEY_LEN 32          /* the keyslot passphrase: 32 random bytes from a key source */
#define BW_VOL_TOKEN_TYPE "bulwark"
#define BW_VOL_ID_MAX 128
#define BW_VOL_LOCK_DIR "/run/bulwark/locks"   /* <name>.lock, flock(2)ed per operation */
#define BW_STATEDISK_ID "bulwark-state-disk"   /* volume id recorded in the state disk's token */
#define BW_STATEDISK_NAME "bulwark-state"      /* its mapping: /dev/mapper/bulwark-state */

/* CSI codes: the numbers are gRPC's, and `bulwark volume` exits with them (storage/README.md). */
enum bw_vol_code {
	BW_VOL_OK = 0,
	BW_VOL_INVALID_ARGUMENT = 3,
	BW_VOL_NOT_FOUND = 5,
	BW_VOL_FAILED_PRECONDITION = 9,
	BW_VOL_ABORTED = 10,         /* another operation on the volume is in progress: retry */
	BW_VOL_INTERNAL = 13,
};
enum bw_vol_code bw_vol_code(int err);
const char *bw_vol_code_name(enum bw_vol_code c);
/* Route libcryptsetup's messages into bw_log (errors as error, normal messages as info, the rest as debug): programs call
 * this once at start, so nothing of libcryptsetup's reaches stdout or bypasses the log format. */
void bw_vol_log_init(void);

/*
 * Where keys come from. get() fills key (BW_VOL_KEY_LEN bytes of locked memory owned by the
 * library, wiped after use) for volume id, or returns a negative errno with a message in err.
 * The library calls it once per operation, after the header was validated and before any
 * activation. bw_vol_key_file_source() is the key-file source; an attested key service plugs
 * in the same way.
 */
struct bw_vol_key_source {
	const char *name;            /* for messages: "key file", "key service" */
	int (*get)(void *ctx, const char *id, uint8_t *key, char *err, size_t err_len);
	void *ctx;
};
/* A key file: symlinks followed; the final file regular (a FIFO is refused without blocking),
 * owned by us, mode 0600 (no group/other bits), exactly 32 bytes. */
void bw_vol_key_file_source(struct bw_vol_key_source *ks, const char *path);

/* Wipe progress of an integrity volume: bytes done of total. Return non-zero to stop. */
typedef int (*bw_vol_progress_fn)(uint64_t done, uint64_t total, void *ctx);

struct bw_vol_opts {
	const char *id;              /* CSI volume id: 1..128 printable ASCII characters */
	const char *device;          /* backing block device */
	bool integrity;              /* hmac(sha256) via dm-integrity; only used when formatting */
	const struct bw_vol_key_source *keys;
	bw_vol_progress_fn progress; /* optional */
	void *progress_ctx;
	int lock_timeout_ms;         /* wait for the volume lock; 0 = fail at once, <0 = default 60 s */
	const char *name;            /* mapping name; NULL = bw_vol_name(id) */
};

/*
 * CSI NodeStageVolume: idempotent. A blank device is formatted (the only case that writes a
 * header); a LUKS2 device is validated from a detached copy of its header and activated from
 * that same copy; anything else is refused untouched. path receives /dev/mapper/<name>.
 */
int bw_vol_stage(const struct bw_vol_opts *o, char *path, size_t path_len, char *err, size_t err_len);
/* Format only: the device must be blank; leaves the volume closed (state "ready"). */
int bw_vol_format(const struct bw_vol_opts *o, char *err, size_t err_len);
/* CSI NodeUnstageVolume: idempotent; removes the crypt device and its _dif integrity device. */
int bw_vol_unstage(const struct bw_vol_opts *o, char *err, size_t err_len);
/* CSI NodeExpandVolume: grow a staged plain volume to its device; integrity: -ENOTSUP. */
int bw_vol_expand(const struct bw_vol_opts *o, uint64_t *new_size, char *err, size_t err_len);

/*
 * The node's state disk: format with integrity on first boot, open afterwards. The token's
 * state machine (prepared -> formatted -> wiping -> wiped -> ready) makes a reboot at any step
 * resume without reformatting. o->id and o->name default to BW_STATEDISK_ID/_NAME.
 */
int bw_statedisk_open(const struct bw_vol_opts *o, char *path, size_t path_len, char *err, size_t err_len);

struct bw_vol_status {
	char name[64];
	char path[96];
	bool active;
	bool integrity;
	uint64_t size_bytes;
	char backing[96];            /* "major:minor (path)" of the device below */
	bool wipe;                   /* a "-wipe" mapping left by a killed integrity wipe */
	char cipher[48];
	uint32_t sector_size;
	char table[256];             /* dm-crypt table line, key elided */
	/*
	 * The volume id in the header's token when it hashes to the mapping's name (bw_vol_name), so
	 * a list of mappings can name its volumes; "" when it does not (a header not written by
	 * us for this mapping) or cannot be read. The state disk: BW_STATEDISK_ID.
	 */
	char id[BW_VOL_ID_MAX + 1];
	char dm_uuid[160];           /* device-mapper UUID (dmsetup info): CRYPT-LUKS2-<uuid>-<name> */
};
int bw_vol_status(const char *id, const char *name, struct bw_vol_status *st, char *err, size_t err_len);

/* Names of bulwark's active mappings (volumes, the state disk, "-wipe" leftovers), at most max. */
int bw_vol_list(char (*names)[64], size_t max, size_t *count);

/* The device-mapper name for a volume id: "bw-" + 32 hex digits of SHA-256(id). */
int bw_vol_name(const char *id, char *out, size_t len);

/*
 * Header checks (no kernel needed; fuzzed): validate a LUKS2 JSON metadata text, or a whole
 * binary header copy (both metadata areas, which must agree), against bulwark's allow-list for
 * volume id. On refusal err names the offending field. *integrity tells which profile it is.
 */
int bw_vol_check_luks2_json(const char *json, size_t len, const char *id, bool *integrity, char *err, size_t err_len);
int bw_vol_check_luks2_header(const uint8_t *buf, size_t len, const char *id, bool *integrity, char *err, size_t err_len);

#endif
