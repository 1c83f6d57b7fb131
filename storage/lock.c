// SPDX-License-Identifier: GPL-2.0-only
/* Serialisation: one in-process mutex for libcryptsetup/libdevmapper, one lock file per volume. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "storage/internal.h"

static pthread_mutex_t global = PTHREAD_MUTEX_INITIALIZER;

void bw_vol_lock_global(void) { pthread_mutex_lock(&global); }
void bw_vol_unlock_global(void) { pthread_mutex_unlock(&global); }

int bw_vol_lock(const char *name)
{
	const char *env = getenv("BULWARK_LOCK_TIMEOUT");
	long timeout_ms = (env ? atol(env) : 120) * 1000;
	char path[256];
	int fd;

	mkdir(BW_VOL_RUN_DIR, 0700);
	mkdir(BW_VOL_RUN_DIR "/locks", 0700);
	snprintf(path, sizeof(path), BW_VOL_RUN_DIR "/locks/%s.lock", name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (long waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += 50) {
		if (errno != EWOULDBLOCK || waited >= timeout_ms) {
			close(fd);
			return -EBUSY; /* CSI: ABORTED, the CO retries */
		}
		nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
	}
	return fd;
}

void bw_vol_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}
