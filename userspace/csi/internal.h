/* SPDX-License-Identifier: GPL-2.0-only */
/* bulwark-csi internals: mounts (libmount), filesystem probing (libblkid), mkfs/grow helpers. */
#ifndef BULWARK_CSI_INTERNAL_H
#define BULWARK_CSI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What is mounted at exactly path (the top mount), if anything. */
struct csi_mnt {
	bool mounted;
	bool ro;                     /* the mount at path is read-only */
	dev_t st_dev;                /* stat(path).st_dev: the filesystem's device */
	dev_t st_rdev;               /* stat(path).st_rdev: for a bound device node */
	mode_t mode;                 /* stat(path).st_mode */
};
/* 0 (m filled; m->mounted false when path exists but nothing is mounted there), -ENOENT, -errno. */
int csi_mnt_at(const char *path, struct csi_mnt *m);

/* mount(8) semantics through libmount, without helpers: source on target with fstype and options
 * ("bind,ro", "noatime"...). msg receives libmount's explanation on failure. */
int csi_mount(const char *source, const char *target, const char *fstype, const char *options, char *msg,
	      size_t len);
/* Unmount every mount stacked on path; 0 when nothing (more) is mounted there. */
int csi_umount(const char *path, char *msg, size_t len);

/* libblkid: what the device holds. kind: 0 nothing found, 1 a filesystem (type), 2 something else
 * (partition table, RAID/LVM/crypto member... named in type). */
enum csi_probe { CSI_PROBE_NOTHING, CSI_PROBE_FS, CSI_PROBE_OTHER };
int csi_probe(const char *device, enum csi_probe *kind, char *type, size_t len);
/* The first n bytes of device read as zeros: 1, else 0; -errno on read errors. */
int csi_zeros(const char *device, size_t n);
/* Write n zero bytes at the start of device and flush. */
int csi_zero_start(const char *device, size_t n);

/* Run argv[0] (looked up in PATH) with stdin /dev/null; its stderr (last lines) into msg. Returns
 * the exit status (0 = success) or -errno when it could not run. */
int csi_run(char *const argv[], char *msg, size_t len);

/* Block device size in bytes. */
int csi_dev_size(const char *device, uint64_t *size);

#endif
