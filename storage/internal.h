/* SPDX-License-Identifier: GPL-2.0-only */
/* storage internals shared by its files; not installed. */
#ifndef BW_STORAGE_INTERNAL_H
#define BW_STORAGE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "bulwark/storage.h"

#define BW_VOL_CIPHER "aes-xts-plain64"
#define BW_VOL_INTEGRITY "hmac(sha256)"
#define BW_VOL_SECTOR 4096
#define BW_VOL_VK_PLAIN 64            /* aes-xts-plain64, 512-bit key */
#define BW_VOL_VK_INTEGRITY 96        /* ... + 32-byte hmac(sha256) key */
#define BW_VOL_JSON_DEPTH 16
#define BW_VOL_DATA_OFFSET (16ll << 20)   /* where bulwark's format puts the data */
#define BW_VOL_KDF_MAX_ITER 100000        /* PBKDF2 cap: keyslots and digest (bulwark writes 1000) */
#define BW_VOL_KEYSLOTS_MAX 4             /* each one costs a KDF run per open */
#define BW_VOL_RUN_DIR "/run/bulwark"
#define BW_VOL_HDR_DIR "/run/bulwark/headers"  /* detached header copies (tmpfs), 0700 */

/* The binary LUKS2 header (both copies follow each other; see cryptsetup's docs/on-disk format). */
#define LUKS2_MAGIC "LUKS\xba\xbe\x00\x02"      /* primary header: magic and version 2, 8 bytes */
#define LUKS2_MAGIC_2ND "SKUL\xba\xbe\x00\x02"  /* secondary header */
#define LUKS2_BIN_SIZE 4096
#define LUKS2_CSUM_OFF 448
#define LUKS2_CSUM_LEN 64
#define LUKS2_HDR_MIN (16u << 10)
#define LUKS2_HDR_MAX (4u << 20)
#define LUKS2_DATA_MAX (136ll << 20)  /* metadata (2 x 4 MiB) + keyslots area (<= 128 MiB) */
/* The allow-list with the binary header's hdr_size known (0: not known, config.json_size unchecked). */
int bw_vol_check_luks2_json_hs(const char *json, size_t n, uint64_t hdr_size, const char *id, bool *integrity,
			       char *err, size_t len);
int bw_vol_luks2_extent(const char *json, size_t n, uint64_t *areas_end, uint64_t *data_offset);

/* Lifecycle recorded in the token (storage/README.md, "On-disk format"). */
enum bw_vol_state { ST_PREPARED, ST_FORMATTED, ST_WIPING, ST_WIPED, ST_READY };
struct bw_vol_token {
	enum bw_vol_state state;
	bool integrity;
	uint64_t wipe_offset;         /* bytes of the mapped device known to be wiped (and flushed) */
	bool has_mac;
	uint8_t mac[32];              /* HMAC-SHA256 over the fields above, the UUID and the id */
};
const char *bw_vol_state_name(enum bw_vol_state s);
int bw_vol_state_parse(const char *s); /* enum value or -EINVAL */
struct crypt_device;
int bw_vol_token_read(struct crypt_device *cd, struct bw_vol_token *t);
/* The token's volume_id as written (unauthenticated: compare with what the caller expects). */
int bw_vol_token_id(struct crypt_device *cd, char *out, size_t len);
/* Writes the token; with mac_key (32 bytes) it carries its MAC. */
int bw_vol_token_write(struct crypt_device *cd, const char *id, const struct bw_vol_token *t, const uint8_t *mac_key);
/* The token's MAC key: HKDF-SHA256 from the volume key, salted with the volume's UUID. */
int bw_vol_token_key(const uint8_t *vk, size_t vk_len, const char *uuid, uint8_t out[32]);
/* 0 when t carries a MAC that verifies under key for this volume, else -EBADMSG. */
int bw_vol_token_verify(const struct bw_vol_token *t, const char *uuid, const char *id, const uint8_t *key);

/* Message into err (when given); returns r. */

void bw_vol_lock_global(void);
void bw_vol_unlock_global(void);
/* Per-volume lock file; -EBUSY when still held after timeout_ms (<0: the default, 60 s). */
int bw_vol_lock(const char *name, int timeout_ms);
void bw_vol_unlock(int fd);

#endif
