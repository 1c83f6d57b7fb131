/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef BW_STORAGE_INTERNAL_H
#define BW_STORAGE_INTERNAL_H

#include <stdint.h>

#define BW_VOL_CIPHER "aes-xts-plain64"
#define BW_VOL_SECTOR 4096
#define BW_VOL_RUN_DIR "/run/bulwark"

void bw_vol_lock_global(void);
void bw_vol_unlock_global(void);
/* Per-volume lock file; -EBUSY after BULWARK_LOCK_TIMEOUT seconds (default 120). */
int bw_vol_lock(const char *name);
void bw_vol_unlock(int fd);

#endif
