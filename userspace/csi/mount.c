// SPDX-License-Identifier: GPL-2.0-only
/* bulwark-csi: mounts through libmount, probing through libblkid, mkfs/grow as child processes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <blkid/blkid.h>
#include <libmount/libmount.h>
#include "common/common.h"
#include "csi/internal.h"

#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t) /* <linux/fs.h> clashes with <sys/mount.h> */
#endif

extern char **environ;

int csi_mnt_at(const char *path, struct csi_mnt *m)
{
	char real[PATH_MAX];
	struct libmnt_table *tb;
	struct statvfs sv;
	struct stat st;

	memset(m, 0, sizeof(*m));
	if (lstat(path, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;     /* CO paths are never symlinks: do not follow one somewhere else */
	if (!realpath(path, real))
		return -errno;
	m->st_dev = st.st_dev;
	m->st_rdev = st.st_rdev;
	m->mode = st.st_mode;
	tb = mnt_new_table_from_file("/proc/self/mountinfo");
	if (!tb)
		return -EIO;
	m->mounted = mnt_table_find_target(tb, real, MNT_ITER_BACKWARD) != NULL;
	mnt_unref_table(tb);
	if (m->mounted && statvfs(path, &sv) == 0)
		m->ro = sv.f_flag & ST_RDONLY;
	return 0;
}

int csi_mount(const char *source, const char *target, const char *fstype, const char *options, char *msg,
	      size_t len)
{
	struct libmnt_context *cx = mnt_new_context();
	char buf[256] = "";
	int r;

	if (!cx)
		return bw_errf(msg, len, -ENOMEM, "out of memory");
	mnt_context_disable_helpers(cx, 1);
	mnt_context_disable_mtab(cx, 1);
	mnt_context_disable_swapmatch(cx, 1);
	mnt_context_set_source(cx, source);
	mnt_context_set_target(cx, target);
	if (fstype)
		mnt_context_set_fstype(cx, fstype);
	if (options && *options)
		mnt_context_set_options(cx, options);
	r = mnt_context_mount(cx);
	if (r != 0 || mnt_context_get_status(cx) != 1) {
		mnt_context_get_excode(cx, r, buf, sizeof(buf));
		bw_errf(msg, len, 0, "mounting %s on %s: %s", source, target, buf[0] ? buf : strerror(r < 0 ? -r : EIO));
		mnt_free_context(cx);
		return r < 0 ? r : -EIO;
	}
	mnt_free_context(cx);
	return 0;
}

int csi_umount(const char *path, char *msg, size_t len)
{
	struct csi_mnt m;
	int r;

	for (int i = 0; i < 16; i++) {
		if ((r = csi_mnt_at(path, &m)) < 0)
			return r == -ENOENT ? 0 : bw_errf(msg, len, r, "%s: %s", path, strerror(-r));
		if (!m.mounted)
			return 0;
		if (umount2(path, UMOUNT_NOFOLLOW) < 0)
			return bw_errf(msg, len, -errno, "unmounting %s: %s", path, strerror(errno));
	}
	return bw_errf(msg, len, -EBUSY, "%s: too many stacked mounts", path);
}

int csi_probe(const char *device, enum csi_probe *kind, char *type, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(device);
	const char *v = NULL;
	int r;

	*kind = CSI_PROBE_NOTHING;
	if (type && len)
		type[0] = 0;
	if (!pr)
		return errno ? -errno : -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	r = blkid_do_safeprobe(pr);
	if (r == 1) {
		blkid_free_probe(pr);
		return 0;
	}
	if (r == -2) {                 /* ambivalent: several signatures. Something, for sure. */
		*kind = CSI_PROBE_OTHER;
		snprintf(type, len, "several signatures");
		blkid_free_probe(pr);
		return 0;
	}
	if (r < 0) {
		blkid_free_probe(pr);
		return -EIO;
	}
	if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0) {
		const char *usage = NULL;
		blkid_probe_lookup_value(pr, "USAGE", &usage, NULL);
		*kind = usage && !strcmp(usage, "filesystem") ? CSI_PROBE_FS : CSI_PROBE_OTHER;
		snprintf(type, len, "%s", v);
	} else if (blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL) == 0) {
		*kind = CSI_PROBE_OTHER;
		snprintf(type, len, "a %s partition table", v);
	} else {
		*kind = CSI_PROBE_OTHER;
		snprintf(type, len, "an unknown signature");
	}
	blkid_free_probe(pr);
	return 0;
}

int csi_zeros(const char *device, size_t n)
{
	_cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
	uint8_t buf[65536];

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < n;) {
		ssize_t k = pread(fd, buf, sizeof(buf) < n - off ? sizeof(buf) : n - off, (off_t)off);
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i])
				return 0;
		off += (size_t)k;
	}
	return 1;
}

int csi_zero_start(const char *device, size_t n)
{
	_cleanup_close_ int fd = open(device, O_WRONLY | O_CLOEXEC);
	static const uint8_t zero[65536];

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < n;) {
		ssize_t k = pwrite(fd, zero, sizeof(zero) < n - off ? sizeof(zero) : n - off, (off_t)off);
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		off += (size_t)k;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

int csi_run(char *const argv[], char *msg, size_t len)
{
	posix_spawn_file_actions_t fa;
	int p[2], status, r;
	char out[4096];
	size_t used = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return bw_errf(msg, len, -r, "cannot run %s: %s", argv[0], strerror(r));
	}
	for (;;) {                     /* keep the tail of the output for the message */
		ssize_t k = read(p[0], out + used, sizeof(out) - 1 - used);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			break;
		}
		used += (size_t)k;
		if (used == sizeof(out) - 1) {
			memmove(out, out + used / 2, used - used / 2);
			used -= used / 2;
		}
	}
	close(p[0]);
	out[used] = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (used && (out[used - 1] == '\n' || out[used - 1] == ' '))
		out[--used] = 0;
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ' ';
	bw_errf(msg, len, 0, "%s failed (%s %d): %s", argv[0], WIFEXITED(status) ? "exit" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), used > 300 ? out + used - 300 : out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int csi_dev_size(const char *device, uint64_t *size)
{
	_cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
}
