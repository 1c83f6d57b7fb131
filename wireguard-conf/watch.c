// SPDX-License-Identifier: GPL-2.0-only
/*
 * Watching the node file and the peers directory, including kubelet's ConfigMap/Secret volumes.
 * kubelet updates such a volume by writing a new hidden timestamped directory and renaming the
 * `..data` symlink onto it; the visible names are symlinks through `..data`. A watch added on a
 * path that goes through a symlink watches the directory the link pointed to at that moment, which
 * kubelet deletes on the next update: that watch is dead afterwards. So, besides the directories
 * themselves, every directory that holds a symlink on the way to them (the volume root, where
 * `..data` is renamed) is watched for entries appearing and moving, and the whole set is re-armed
 * after each event, before the configuration is read again: an update made after the re-arm is an
 * event, one made before it is already on disk when the configuration is read.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include "wireguard-conf/conf.h"

#define DIR_EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB | \
		    IN_DELETE_SELF | IN_MOVE_SELF)
#define LINK_EVENTS (IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

int bw_conf_watch_init(struct bw_conf_watch *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return w->fd < 0 ? -errno : 0;
}

static int add(struct bw_conf_watch *w, const char *path, uint32_t mask)
{
	int wd = inotify_add_watch(w->fd, path, mask);

	if (wd < 0)
		return -errno;
	for (size_t i = 0; i < w->n; i++)
		if (w->wd[i] == wd)
			return 0; /* the same inode again: inotify merged the masks */
	if (w->n >= BW_CONF_WATCH_MAX) {
		inotify_rm_watch(w->fd, wd);
		return -E2BIG;
	}
	w->wd[w->n++] = wd;
	return 0;
}

/* Every directory holding a symlink on the way to path (path itself included). */
static int add_link_parents(struct bw_conf_watch *w, const char *path)
{
	char buf[PATH_MAX], parent[PATH_MAX];
	struct stat st;
	int r;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + strlen(buf); p > buf; ) {
		if (!lstat(buf, &st) && S_ISLNK(st.st_mode)) {
			snprintf(parent, sizeof(parent), "%s", buf);
			if ((r = add(w, dirname(parent), LINK_EVENTS)) < 0)
				return r;
		}
		while (p > buf && *p != '/')
			p--;
		*p = '\0';
	}
	return 0;
}

int bw_conf_watch_arm(struct bw_conf_watch *w, const char *node_file, const char *peers_dir)
{
	char dir[PATH_MAX];
	int r, first = 0;

	for (size_t i = 0; i < w->n; i++)
		inotify_rm_watch(w->fd, w->wd[i]);
	w->n = 0;
	/* The peers directory first: its error is the one reported. */
	first = add(w, peers_dir, DIR_EVENTS);
	snprintf(dir, sizeof(dir), "%s", peers_dir);
	if ((r = add(w, dirname(dir), LINK_EVENTS)) < 0 && !first)
		first = r;
	snprintf(dir, sizeof(dir), "%s", node_file);
	if ((r = add(w, dirname(dir), DIR_EVENTS)) < 0 && !first)
		first = r;
	if ((r = add_link_parents(w, peers_dir)) < 0 && !first)
		first = r;
	if ((r = add_link_parents(w, node_file)) < 0 && !first)
		first = r;
	return first;
}

int bw_conf_watch_read(struct bw_conf_watch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	int any = 0;
	ssize_t n;

	while ((n = read(w->fd, buf, sizeof(buf))) > 0)
		any = 1;
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	return any;
}

void bw_conf_watch_close(struct bw_conf_watch *w)
{
	if (w->fd > 0)
		close(w->fd);
	w->fd = -1;
	w->n = 0;
}
