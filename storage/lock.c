// SPDX-License-Identifier: GPL-2.0-only
/* Serialisation: one in-process mutex for libcryptsetup/libdevmapper, one lock file per volume. */
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/common.h"
#include "storage/internal.h"

#define LOCK_DEFAULT_MS 60000
#define LOCK_POLL_MS 50

/* Neither libcryptsetup nor libdevmapper is thread-safe (global state, log callbacks). */
static pthread_mutex_t global = PTHREAD_MUTEX_INITIALIZER;

/*
 * libcryptsetup prints what it has to say on stdout (all but errors) when no callback is set: it
 * would corrupt --json output. Every user of the library goes through here, so its messages reach
 * bulwark's logger (bw_vol_log_init) even where the program did not set that up itself.
 */
static void logs_init(void) { bw_vol_log_init(); }
static pthread_once_t logs_once = PTHREAD_ONCE_INIT;

void bw_vol_lock_global(void)
{
	pthread_once(&logs_once, logs_init);
	pthread_mutex_lock(&global);
}
void bw_vol_unlock_global(void) { pthread_mutex_unlock(&global); }

/*
 * flock(2) on /run/bulwark/locks/<name>.lock: the kernel drops it when the holder dies (even by
 * SIGKILL), so a killed stage never leaves the volume locked.
 */
int bw_vol_lock(const char *name, int timeout_ms)
{
	char path[256];
	int fd;

	if (timeout_ms < 0)
		timeout_ms = LOCK_DEFAULT_MS;
	mkdir(BW_VOL_RUN_DIR, 0700);
	mkdir(BW_VOL_LOCK_DIR, 0700);
	snprintf(path, sizeof(path), BW_VOL_LOCK_DIR "/%s.lock", name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += LOCK_POLL_MS) {
		if (errno != EWOULDBLOCK || waited >= timeout_ms) {
			close(fd);
			return -EBUSY; /* CSI: ABORTED, the CO retries */
		}
		nanosleep(&(struct timespec){ 0, LOCK_POLL_MS * 1000 * 1000 }, NULL);
	}
	return fd;
}

void bw_vol_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}
