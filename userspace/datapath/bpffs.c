// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpffs under the pin directory. On a freshly booted machine /sys/fs/bpf is a plain sysfs
 * directory until something mounts bpffs there (systemd does on most distributions, not all);
 * pinning into it then fails with a bare ENOENT. Like cilium-agent, we mount it ourselves.
 *
 * Only at its conventional place, and not in a mount namespace made just for us: a bpffs
 * mounted in one -- `ip netns exec` makes one and remounts /sys -- is a new, empty instance that
 * dies with that namespace, taking the pins (and so the maps the operator and the next run
 * expect) with it. There we refuse and say why.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/libbpf.h>
#include "common/common.h"
#include "datapath/datapath.h"

#define BPFFS_ROOT "/sys/fs/bpf"

/* The file system the nearest existing ancestor of path (path included) lives on. */
static int fs_of(const char *path, char *nearest, size_t len, struct statfs *st)
{
	char *slash;

	if (snprintf(nearest, len, "%s", path) >= (int)len)
		return -ENAMETOOLONG;
	while (statfs(nearest, st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		slash = strrchr(nearest, '/');
		if (!slash)
			return -ENOENT;
		if (slash == nearest)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return 0;
}

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *end;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	/* "pid (comm) state ppid ...": comm may hold anything, so parse after its last ')'. */
	if (fgets(buf, sizeof(buf), f) && (end = strrchr(buf, ')')))
		sscanf(end + 1, " %*c %d", &ppid);
	fclose(f);
	return ppid;
}

/*
 * Were we started into a mount namespace made for us (`ip netns exec`, `unshare -m CMD`), one
 * that a visible ancestor of ours is not in? PID 1's namespace alone is not enough of a
 * reference: it is often not readable (no CAP_SYS_PTRACE, hidepid). A service manager, a
 * container's init (its own ancestors are invisible from inside) or a shell in the same namespace
 * all share ours. Ancestors we cannot look at are taken to share it.
 */
static bool own_mount_ns(void)
{
	struct stat self, anc;
	char path[64];
	pid_t pid = getppid();

	if (stat("/proc/self/ns/mnt", &self) < 0)
		return false;
	for (int depth = 0; pid > 1 && depth < 64; depth++, pid = parent_of(pid)) {
		snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
		if (stat(path, &anc) < 0)
			continue;
		if (self.st_ino != anc.st_ino || self.st_dev != anc.st_dev)
			return true;
	}
	return false;
}

int bw_dp_bpffs_ensure(const char *pin_dir, struct bw_notes *notes, char *err, size_t len)
{
	const char *dir = bw_pin_dir(pin_dir);
	size_t n = strlen(BPFFS_ROOT);
	char nearest[512];
	struct statfs st;
	int r;

	if ((r = fs_of(dir, nearest, sizeof(nearest), &st)) < 0)
		return bw_errf(err, len, r, "pin directory %s: %s", dir, strerror(-r));
	if (st.f_type == BPF_FS_MAGIC)
		return 0;
	if (strncmp(dir, BPFFS_ROOT, n) || (dir[n] && dir[n] != '/')) {
		return bw_errf(err, len, -ENOTSUP, "pin directory %s is not on a bpffs (%s is not one): mount bpffs there "
			       "(mount -t bpf bpf DIR) or pin under " BPFFS_ROOT, dir, nearest);
	}
	if (own_mount_ns()) {
		return bw_errf(err, len, -ENOENT, BPFFS_ROOT " is not a bpffs mount in this mount namespace, a private one made for us "
			       "(`ip netns exec` makes one and remounts /sys): pins made here would vanish with it. "
			       "Mount bpffs on the host (mount -t bpf bpf " BPFFS_ROOT ") or enter only the network "
			       "namespace (nsenter --net=/run/netns/NAME)");
	}
	if (mount("bpf", BPFFS_ROOT, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
		r = -errno;
		return bw_errf(err, len, r, BPFFS_ROOT " is not a bpffs mount and mounting one there failed: %s", strerror(-r));
	}
	bw_note(notes, "mounted bpffs on " BPFFS_ROOT " (it was not mounted), for pin directory %s", dir);
	return 0;
}

