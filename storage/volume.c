// SPDX-License-Identifier: GPL-2.0-only
/*
 * Stage, unstage, format, expand: format only blank devices, activate only validated header
 * copies. The flow of one stage (storage/README.md has the picture):
 *
 *   probe(device) --blank--> format: header + token "prepared", keyslot, token "formatted"
 *        |                                       |
 *        +--LUKS2--> copy the header to tmpfs, validate the copy, load the copy
 *                    -> wipe (integrity; resumable) -> activate from the copy -> token "ready"
 *        +--anything else--> refuse, untouched
 */
#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "bulwark/storage.h"
#include "common/common.h"
#include "storage/internal.h"

#define WIPE_BLOCK (1u << 20)
/* Flush and record wipe progress in the token every 1/8 of the device, at least 8 MiB apart, and
 * after a minute without a record: a record costs a flush of the whole stack and a header write
 * with its own flushes. With 1/64 a 1 GiB wipe made 63 of them and took 2.2x cryptsetup's time on
 * a virtio disk (BENCHMARKS.md); a resume redoes at most 1/8 of the device or one minute. */
#define WIPE_SAVE_MIN (8ull << 20)
#define WIPE_SAVE_PARTS 8
#define WIPE_SAVE_SECONDS 60
#define ZERO_CHECK 65536
#define MIN_DEVICE (17u << 20)             /* a blank device also has zeros at its start */

static const uint8_t zero_sector[BW_VOL_SECTOR];

int bw_vol_name(const char *id, char *out, size_t len)
{
	unsigned char md[32];
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > BW_VOL_ID_MAX || len < 36)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return -EINVAL;
	if (!EVP_Digest(id, n, md, NULL, EVP_sha256(), NULL))
		return -EINVAL;
	strcpy(out, "bw-");
	bw_hex_encode(md, 16, out + 3);
	return 0;
}

/* One operation on one volume: its names, its key (fetched once, locked, wiped) and messages. */
struct op {
	const struct bw_vol_opts *o;
	const char *id;
	char name[64];
	char hdr[192];               /* the detached header copy */
	struct bw_secret key;
	struct bw_secret vk;         /* the volume key: made by format, or read once from the keyslot */
	struct bw_secret mac_key;    /* the token's MAC key, derived from the volume key */
	bool fresh;                  /* formatted by this operation: nothing on it to protect */
	char *err;
	size_t len;
};

static void op_done(struct op *op)
{
	bw_secret_free(&op->key);
	bw_secret_free(&op->vk);
	bw_secret_free(&op->mac_key);
	if (op->hdr[0])
		unlink(op->hdr);
}

static int op_init(struct op *op, const struct bw_vol_opts *o, const char *def_id, const char *def_name,
		   char *err, size_t len)
{
	memset(op, 0, sizeof(*op));
	op->o = o;
	op->id = o->id ?: def_id;
	op->err = err;
	op->len = len;
	if (bw_vol_name(op->id, op->name, sizeof(op->name)) < 0)
		return bw_errf(err, len, -EINVAL, "volume id must be 1-%d printable ASCII characters", BW_VOL_ID_MAX);
	if (o->name ?: def_name) {
		const char *n = o->name ?: def_name;
		if (strlen(n) >= 48 || strchr(n, '/') || !n[0])
			return bw_errf(err, len, -EINVAL, "mapping name '%s' is invalid", n);
		snprintf(op->name, sizeof(op->name), "%s", n);
	}
	return 0;
}

static int get_key(struct op *op)
{
	int r;

	if (op->key.data)
		return 0;
	if (!op->o->keys || !op->o->keys->get)
		return bw_errf(op->err, op->len, -EINVAL, "no key source");
	if ((r = bw_secret_new(&op->key, BW_VOL_KEY_LEN)) < 0)
		return bw_errf(op->err, op->len, r, "locking memory for the key: %s", strerror(-r));
	r = op->o->keys->get(op->o->keys->ctx, op->id, op->key.data, op->err, op->len);
	if (r < 0)
		bw_secret_free(&op->key);
	return r;
}

/*
 * libcryptsetup answers -EINVAL/-ENOTSUP (and -EPERM/-ENOENT for what a header lacks) for a header
 * it will not take: for the caller that is a refused header (FAILED_PRECONDITION), not a
 * malformed request. Other errors (device-mapper, I/O, memory) keep their own code.
 */
static int refused_by_lib(int r)
{
	return r == -EINVAL || r == -ENOTSUP || r == -EPERM || r == -ENOENT ? -EMEDIUMTYPE : r;
}

static int wrong_key(struct op *op)
{
	return bw_errf(op->err, op->len, -EKEYREJECTED, "wrong key: no keyslot of volume '%s' opens with the %s's key",
		   op->id, op->o->keys->name ?: "key source");
}

/* The token's MAC key from the volume key in op->vk. */
static int derive_mac_key(struct crypt_device *cd, struct op *op)
{
	int r;

	if ((r = bw_secret_new(&op->mac_key, 32)) < 0)
		return bw_errf(op->err, op->len, r, "locking memory for the key: %s", strerror(-r));
	if ((r = bw_vol_token_key(op->vk.data, op->vk.len, crypt_get_uuid(cd) ?: "", op->mac_key.data)) < 0) {
		bw_secret_free(&op->mac_key);
		return bw_errf(op->err, op->len, r, "deriving the token key: %s", strerror(-r));
	}
	return 0;
}

/*
 * Open a keyslot with the key, once per operation: the volume key it yields (locked) serves every
 * later activation and the token's MAC key. A keyslot open costs the PBKDF and the AF merge (the
 * bulk of `cryptsetup open`); activating by volume key only checks the key's digest.
 */
static int unlock(struct crypt_device *cd, struct op *op)
{
	size_t n = BW_VOL_VK_INTEGRITY;
	int r;

	if (op->vk.data)
		return 0;
	if ((r = get_key(op)) < 0)
		return r;
	if ((r = bw_secret_new(&op->vk, n)) < 0)
		return bw_errf(op->err, op->len, r, "locking memory for the key: %s", strerror(-r));
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)op->vk.data, &n, (const char *)op->key.data, BW_VOL_KEY_LEN);
	if (r < 0) {
		bw_secret_free(&op->vk);
		if (r == -EPERM || r == -ENOENT)
			return wrong_key(op);
		return bw_errf(op->err, op->len, refused_by_lib(r), "opening the keyslot: %s", strerror(-r));
	}
	op->vk.len = n;
	return derive_mac_key(cd, op);
}

/* Map the volume (or the wipe's temporary mapping) with the volume key unlock() read. */
static int activate(struct crypt_device *cd, struct op *op, const char *name, uint32_t flags)
{
	int r = crypt_activate_by_volume_key(cd, name, (const char *)op->vk.data, op->vk.len, flags);

	if (r == -EPERM) /* the digest disagrees: not this header's volume key */
		return wrong_key(op);
	if (r < 0)
		return bw_errf(op->err, op->len, refused_by_lib(r), "activating %s: %s", name, strerror(-r));
	return 0;
}

/* ---- device inspection ---- */

enum kind { BLANK, LUKS2, OTHER };

static int zeros_at_start(const char *device, char *what, size_t len)
{
	_cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
	unsigned char buf[ZERO_CHECK];
	ssize_t n;

	if (fd < 0)
		return -errno;
	if ((n = read(fd, buf, sizeof(buf))) < 0)
		return -errno;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i]) {
			snprintf(what, len, "data without a known signature (non-zero byte at offset %zd)", i);
			return 0;
		}
	return 1;
}

/*
 * libblkid decides: LUKS version 2, nothing at all (and zeros at the start), or something else.
 * A failure is reported in op's message.
 */
static int probe(struct op *op, enum kind *k, char *what, size_t len)
{
	const char *device = op->o->device, *type = NULL, *ver = NULL;
	blkid_probe pr = blkid_new_probe_from_filename(device);
	int r;

	if (!pr) {
		r = errno ? -errno : -ENODEV;
		return bw_errf(op->err, op->len, r, "probing %s: %s", device, strerror(-r));
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
	blkid_probe_enable_partitions(pr, 1);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0)
			blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL);
		blkid_probe_lookup_value(pr, "VERSION", &ver, NULL);
		*k = type && ver && !strcmp(type, "crypto_LUKS") && !strcmp(ver, "2") ? LUKS2 : OTHER;
		snprintf(what, len, "a '%s'%s%s signature", type ?: "unknown", ver ? " version " : "", ver ?: "");
	} else if (r == -2) {
		*k = OTHER;
		snprintf(what, len, "several conflicting signatures");
	}
	blkid_free_probe(pr);
	if (r == 1) {
		r = zeros_at_start(device, what, len);
		if (r >= 0)
			*k = r ? BLANK : OTHER;
	}
	if (r < 0 && r != -2)
		return bw_errf(op->err, op->len, -EIO, "probing %s: %s", device, strerror(EIO));
	return 0;
}

/*
 * Does the device start with a LUKS2 primary header's magic and version? The stage of an existing
 * volume takes this instead of the full probe: what follows reads and validates the whole header
 * anyway, and the probe's 70 small reads and ioctls cost stage more than all else it does beyond
 * `cryptsetup open` (BENCHMARKS.md). Nothing is formatted on this answer alone: a header that no
 * key opens goes through probe() before it is formatted again.
 */
static int luks2_magic(const char *device)
{
	_cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
	uint8_t m[8];
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, m, sizeof(m), 0);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(m) && !memcmp(m, LUKS2_MAGIC, sizeof(m));
}

/* The backing device of an active mapping is this device (same dev_t)? */
static int backing_matches(const char *name, const char *device)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	struct stat a, b;
	const char *dev;

	if (crypt_init_by_name(&cd, name) < 0 || !(dev = crypt_get_device_name(cd)))
		return -ENODEV;
	if (stat(dev, &a) < 0 || stat(device, &b) < 0)
		return -errno;
	return S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode) && a.st_rdev == b.st_rdev;
}

static bool is_active(const char *name)
{
	crypt_status_info s = crypt_status(NULL, name);
	return s == CRYPT_ACTIVE || s == CRYPT_BUSY;
}

/* ---- the header copy: one read of the disk, then only the copy is used ---- */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int pread_all(int fd, void *buf, size_t n, off_t off)
{
	for (size_t done = 0; done < n;) {
		ssize_t k = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		done += (size_t)k;
	}
	return 0;
}

/*
 * Write the header copy: both metadata areas (validated, from memory) and the keyslot areas
 * they name, read once from the disk; the rest up to the data offset stays a hole.
 */
static int write_copy(struct op *op, int dev, uint8_t *meta, size_t mlen)
{
	_cleanup_close_ int out = open(op->hdr, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	_cleanup_free_ uint8_t *areas = NULL;
	uint64_t hs = be64(meta + 8), end, data;
	const char *json = (const char *)meta + LUKS2_BIN_SIZE;
	int r;

	if (out < 0)
		return -errno;
	if ((r = bw_vol_luks2_extent(json, strnlen(json, hs - LUKS2_BIN_SIZE), &end, &data)) < 0)
		return r;
	/* Both headers go to the copy as validated, with the checksums bw_vol_check_luks2_header()
	 * just verified: libcryptsetup takes them as they are and never scans for others. */
	if (end > mlen) {
		if (!(areas = malloc(end - mlen)))
			return -ENOMEM;
		if ((r = pread_all(dev, areas, end - mlen, (off_t)mlen)) < 0)
			return r;
	}
	errno = 0;
	if (pwrite(out, meta, mlen, 0) != (ssize_t)mlen ||
	    (areas && pwrite(out, areas, end - mlen, (off_t)mlen) != (ssize_t)(end - mlen)) ||
	    ftruncate(out, (off_t)(data > mlen ? data : mlen)) < 0)
		return errno ? -errno : -EIO;
	return 0;
}

/*
 * One read of the disk's header into memory, validated there, written to a private tmpfs file
 * and loaded by libcryptsetup from that file: from here on only the copy is used, and
 * libcryptsetup never parses the on-disk header before the allow-list has seen it.
 */
static void sweep_copies(struct op *op);
static int copy_header(struct op *op, struct crypt_device **copy, bool *integrity)
{
	_cleanup_close_ int dev = open(op->o->device, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *meta = NULL;
	uint8_t bin[LUKS2_BIN_SIZE];
	uint64_t hs;
	int r;

	if (dev < 0)
		return bw_errf(op->err, op->len, -errno, "opening %s: %s", op->o->device, strerror(errno));
	if ((r = pread_all(dev, bin, sizeof(bin), 0)) < 0)
		return bw_errf(op->err, op->len, r, "reading the header of %s: %s", op->o->device, strerror(-r));
	hs = be64(bin + 8);
	if (hs < LUKS2_HDR_MIN || hs > LUKS2_HDR_MAX)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the header's hdr_size %llu is invalid", (unsigned long long)hs);
	if (!(meta = malloc(2 * hs)))
		return -ENOMEM;
	if ((r = pread_all(dev, meta, 2 * hs, 0)) < 0)
		return bw_errf(op->err, op->len, r, "reading the header of %s: %s", op->o->device, strerror(-r));
	if ((r = bw_vol_check_luks2_header(meta, 2 * hs, op->id, integrity, op->err, op->len)) < 0)
		return r;
	mkdir(BW_VOL_RUN_DIR, 0700);
	mkdir(BW_VOL_HDR_DIR, 0700);
	snprintf(op->hdr, sizeof(op->hdr), BW_VOL_HDR_DIR "/%s.%d", op->name, (int)getpid());
	unlink(op->hdr);
	if ((r = write_copy(op, dev, meta, 2 * hs)) < 0)
		return bw_errf(op->err, op->len, r, "writing the header copy: %s", strerror(-r));
	if ((r = crypt_init_data_device(copy, op->hdr, op->o->device)) < 0 || (r = crypt_load(*copy, CRYPT_LUKS2, NULL)) < 0)
		return bw_errf(op->err, op->len, refused_by_lib(r), "libcryptsetup refused the validated header copy: %s",
			   strerror(-r));
	return 0;
}

/*
 * Header copies are private to one operation; one whose operation was killed stays behind (up to
 * 136 MiB of tmpfs). Called under this volume's lock: a copy of another volume is only removed
 * while its lock is free too, so a live operation never loses its copy.
 */
static void sweep_copies(struct op *op)
{
	DIR *d = opendir(BW_VOL_HDR_DIR);
	struct dirent *e;
	size_t nl = strlen(op->name);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char lock[300], *dot = strrchr(e->d_name, '.');
		int fd;

		if (e->d_name[0] == '.' || !dot || dot == e->d_name)
			continue;
		if ((size_t)(dot - e->d_name) == nl && !strncmp(e->d_name, op->name, nl)) {
			if (atoi(dot + 1) != (int)getpid())
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		snprintf(lock, sizeof(lock), BW_VOL_LOCK_DIR "/%.*s.lock", (int)(dot - e->d_name), e->d_name);
		fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
		else if (fd < 0 && errno == ENOENT)
			unlinkat(dirfd(d), e->d_name, 0);
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
}

/*
 * What libcryptsetup actually loaded from the copy must pass the same allow-list: its own JSON
 * (crypt_dump_json), then its getters. Any disagreement between our parser and libcryptsetup's
 * ends here, before a key is asked for.
 */
static int check_loaded(struct crypt_device *cd, bool integrity, struct op *op)
{
	struct crypt_params_integrity ip = { 0 };
	const char *c = crypt_get_cipher(cd), *m = crypt_get_cipher_mode(cd), *json = NULL;
	uint64_t mdsize = 0, kssize = 0;
	char why[BW_ERR_LEN] = "";
	bool integ = false;
	int r;

	if (crypt_dump_json(cd, &json, 0) < 0 || !json || crypt_get_metadata_size(cd, &mdsize, &kssize) < 0)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "libcryptsetup's view of the header copy is unreadable");
	if ((r = bw_vol_check_luks2_json_hs(json, strlen(json), mdsize, op->id, &integ, why, sizeof(why))) < 0)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the header libcryptsetup loaded is refused: %s", why);
	if (integ != integrity || crypt_get_data_offset(cd) != BW_VOL_DATA_OFFSET / 512 || crypt_get_iv_offset(cd) != 0)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the header libcryptsetup loaded differs from the validated one");
	if (!c || !m || strcmp(c, "aes") || strcmp(m, "xts-plain64") || crypt_get_sector_size(cd) != BW_VOL_SECTOR ||
	    crypt_get_volume_key_size(cd) != (integrity ? BW_VOL_VK_INTEGRITY : BW_VOL_VK_PLAIN))
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the loaded header is not %s with %d-byte sectors",
			   BW_VOL_CIPHER, BW_VOL_SECTOR);
	if (crypt_get_integrity_info(cd, &ip) < 0 || (integrity != (ip.integrity != NULL)) ||
	    (integrity && strcmp(ip.integrity, BW_VOL_INTEGRITY)))
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the loaded header's integrity is not %s",
			   integrity ? BW_VOL_INTEGRITY : "none");
	return 0;
}

/*
 * The token lives on the disk: write it there. This is the only write to an existing header;
 * it never feeds activation (a later open validates a fresh copy again). The disk must still
 * hold the header we validated (same UUID), else someone swapped it: stop.
 */
static int open_disk(struct op *op, struct crypt_device *copy, struct crypt_device **disk)
{
	const char *u;
	int r;

	if ((r = crypt_init(disk, op->o->device)) < 0 || (r = crypt_load(*disk, CRYPT_LUKS2, NULL)) < 0)
		return bw_errf(op->err, op->len, refused_by_lib(r), "reloading the header to record state: %s", strerror(-r));
	u = crypt_get_uuid(*disk);
	if (!u || strcmp(u, crypt_get_uuid(copy) ?: ""))
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the header on %s changed under us (UUID %s): refusing",
			   op->o->device, u ?: "none");
	return 0;
}

static int write_state(struct op *op, struct crypt_device *disk, const struct bw_vol_token *t)
{
	int r = bw_vol_token_write(disk, op->id, t, op->mac_key.data);

	if (r < 0)
		return bw_errf(op->err, op->len, r, "recording state '%s' in the token: %s", bw_vol_state_name(t->state),
			   strerror(-r));
	return 0;
}

static int save_token(struct op *op, struct crypt_device *copy, const struct bw_vol_token *t)
{
	_cleanup_crypt_ struct crypt_device *disk = NULL;
	int r = open_disk(op, copy, &disk);

	return r < 0 ? r : write_state(op, disk, t);
}

/* ---- the integrity wipe: resumable, progress in the token ---- */

struct wipe_ctx {
	struct op *op;
	struct crypt_device *disk;   /* loaded once per wipe: each record only writes */
	struct bw_vol_token *t;
	const char *path;
	uint64_t saved;
	int fail;
	struct timespec last;        /* of the last record (or the wipe's start) */
};

/* Data first, then the record: a flushed wipe up to offset is what the token claims. */
static int wipe_save(struct wipe_ctx *w, uint64_t done)
{
	_cleanup_close_ int fd = open(w->path, O_RDWR | O_CLOEXEC);

	if (fd < 0 || fdatasync(fd) < 0)
		return -errno;
	w->t->wipe_offset = done;
	w->saved = done;
	clock_gettime(CLOCK_MONOTONIC, &w->last);
	return write_state(w->op, w->disk, w->t);
}

static int wipe_progress(uint64_t size, uint64_t offset, void *p)
{
	struct wipe_ctx *w = p;
	const struct bw_vol_opts *o = w->op->o;

	uint64_t every = size / WIPE_SAVE_PARTS > WIPE_SAVE_MIN ? size / WIPE_SAVE_PARTS : WIPE_SAVE_MIN;
	struct timespec now;
	bool due;

	clock_gettime(CLOCK_MONOTONIC, &now);
	due = offset - w->saved >= every || (offset - w->saved >= WIPE_SAVE_MIN && now.tv_sec - w->last.tv_sec >= WIPE_SAVE_SECONDS);
	if (due && offset < size && (w->fail = wipe_save(w, offset)) < 0)
		return 1;
	if (o->progress && o->progress(offset, size, o->progress_ctx))
		return 1;
	return 0;
}

/*
 * A resumed wipe never destroys what the key already protects. The token is host-writable and a
 * genuine old one (say "wiping at 16 MiB") can be replayed after the volume went into use; its
 * MAC still verifies. Before a wipe that this operation did not start on a blank device, every
 * block from the offset on is read through the wipe mapping: a sector that authenticates and is
 * not zero was written by a holder of the key after the wipe, so the token lies: refuse, write
 * nothing. Sectors that fail their tag (never wiped) or read as zeros are what a resume expects.
 */
static int wipe_guard(struct op *op, const char *path, uint64_t from, uint64_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	uint8_t *buf = NULL;
	int r = 0;

	if (fd < 0)
		return bw_errf(op->err, op->len, -errno, "opening %s: %s", path, strerror(errno));
	if (posix_memalign((void **)&buf, 4096, WIPE_BLOCK))
		return -ENOMEM;
	for (uint64_t off = from; off < size && r == 0;) {
		size_t n = size - off < WIPE_BLOCK ? (size_t)(size - off) : WIPE_BLOCK;
		ssize_t k = pread(fd, buf, n, (off_t)off);
		uint64_t bad = UINT64_MAX;

		if (k == (ssize_t)n) {
			for (size_t i = 0; i < n && bad == UINT64_MAX; i += BW_VOL_SECTOR)
				if (memcmp(buf + i, zero_sector, BW_VOL_SECTOR))
					bad = off + i;
		} else if (k < 0 && (errno == EILSEQ || errno == EIO)) {
			/* some sector of the block fails its tag: look at each one */
			for (size_t i = 0; i < n && bad == UINT64_MAX && r == 0; i += BW_VOL_SECTOR) {
				ssize_t q = pread(fd, buf, BW_VOL_SECTOR, (off_t)(off + i));
				if (q == BW_VOL_SECTOR && memcmp(buf, zero_sector, BW_VOL_SECTOR))
					bad = off + i;
				else if (q != BW_VOL_SECTOR && (q >= 0 || (errno != EILSEQ && errno != EIO)))
					r = bw_errf(op->err, op->len, q < 0 ? -errno : -EIO, "reading %s: %s", path, strerror(errno));
			}
		} else {
			r = bw_errf(op->err, op->len, k < 0 ? -errno : -EIO, "reading %s: %s", path, k < 0 ? strerror(errno) : "short read");
		}
		if (r == 0 && bad != UINT64_MAX)
			r = bw_errf(op->err, op->len, -EMEDIUMTYPE, "the token of volume '%s' says '%s' (wipe from %llu) but the volume "
				"holds data written with its key at offset %llu: the token was rolled back; refusing to wipe",
				op->id, bw_vol_state_name(ST_WIPING), (unsigned long long)from, (unsigned long long)bad);
		off += n;
	}
	free(buf);
	return r;
}

/*
 * Zero the whole integrity device once so every sector has a valid tag (an unwritten sector
 * fails to read with EIO, and mkfs reads some). A temporary private mapping without journal
 * does it, as cryptsetup luksFormat does; progress is flushed and recorded in the token, so a
 * crash, SIGKILL or CSI timeout resumes at the last record instead of formatting again.
 */
static int wipe(struct op *op, struct crypt_device *copy, struct bw_vol_token *t, enum bw_vol_state done)
{
	_cleanup_crypt_ struct crypt_device *disk = NULL;
	struct crypt_active_device ad;
	char tmp[80], path[160];
	struct wipe_ctx w = { op, NULL, t, path, t->wipe_offset, 0, { 0, 0 } };
	bool started = false;
	int r;

	snprintf(tmp, sizeof(tmp), "%s-wipe", op->name);
	snprintf(path, sizeof(path), "%s/%s", crypt_get_dir(), tmp);
	if (is_active(tmp))
		crypt_deactivate_by_name(NULL, tmp, CRYPT_DEACTIVATE_FORCE); /* left by a killed run */
	if ((r = open_disk(op, copy, &disk)) < 0)
		return r;
	w.disk = disk;
	if ((r = activate(copy, op, tmp, CRYPT_ACTIVATE_PRIVATE | CRYPT_ACTIVATE_NO_JOURNAL)) < 0)
		return r;
	if ((r = crypt_get_active_device(copy, tmp, &ad)) < 0)
		r = bw_errf(op->err, op->len, r, "inspecting %s: %s", tmp, strerror(-r));
	else if (t->wipe_offset > ad.size * 512)
		r = bw_errf(op->err, op->len, -EMEDIUMTYPE, "the token's wipe_offset %llu lies beyond the volume's %llu bytes",
			(unsigned long long)t->wipe_offset, (unsigned long long)ad.size * 512);
	else if (!op->fresh)
		r = wipe_guard(op, path, t->wipe_offset, ad.size * 512);
	if (r == 0 && t->state == ST_WIPING) {
		started = true; /* the token already says so, at this offset (format writes "wiping" at 0) */
	} else if (r == 0) {
		t->state = ST_WIPING;
		started = (r = write_state(op, disk, t)) == 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &w.last);
	if (r == 0)
		r = crypt_wipe(copy, path, CRYPT_WIPE_ZERO, t->wipe_offset, 0, WIPE_BLOCK, 0, wipe_progress, &w);
	if (r == 0) {
		_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
		r = fd < 0 || fdatasync(fd) < 0 ? -errno : 0;
	}
	crypt_deactivate(copy, tmp);
	if (!started)
		return r; /* refused or failed before the wipe started; the message is set */
	if (r < 0 || w.fail < 0)
		return bw_errf(op->err, op->len, w.fail < 0 ? w.fail : r == -EINTR ? -EINTR : r,
			   "integrity wipe stopped at %llu bytes (resumes there): %s", (unsigned long long)t->wipe_offset,
			   strerror(-(w.fail < 0 ? w.fail : r)));
	t->state = done;
	t->wipe_offset = 0;
	return write_state(op, disk, t);
}

/* ---- format: blank devices only ---- */

/* The LUKS2 header and keyslots take 16 MiB; leave at least 1 MiB of data behind them. */
static int big_enough(struct op *op)
{
	_cleanup_close_ int fd = open(op->o->device, O_RDONLY | O_CLOEXEC);
	off_t size;

	if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0)
		return bw_errf(op->err, op->len, -errno, "device %s: %s", op->o->device, strerror(errno));
	if (size < (off_t)MIN_DEVICE)
		return bw_errf(op->err, op->len, -EINVAL, "device %s has %lld bytes: at least %u MiB are needed",
			   op->o->device, (long long)size, MIN_DEVICE >> 20);
	return 0;
}

static int format(struct op *op, bool integrity)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	/* The passphrase is 32 random bytes, not a password: a slow KDF adds nothing against
	 * guessing 2^256 keys, so PBKDF2 at libcryptsetup's floor (1000) keeps opening fast. */
	struct crypt_pbkdf_type pbkdf = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
					  .flags = CRYPT_PBKDF_NO_BENCHMARK };
	struct crypt_params_luks2 p = { .sector_size = BW_VOL_SECTOR, .integrity = integrity ? BW_VOL_INTEGRITY : NULL };
	struct bw_vol_token t = { .state = ST_PREPARED, .integrity = integrity };
	int r;

	size_t vk_len = integrity ? BW_VOL_VK_INTEGRITY : BW_VOL_VK_PLAIN;

	if ((r = big_enough(op)) < 0 || (r = get_key(op)) < 0)
		return r;
	/* The volume key is made here (locked memory, OpenSSL's DRBG) rather than by crypt_format,
	 * so that nothing after the format has to open the keyslot again to learn it. */
	bw_secret_free(&op->vk);
	bw_secret_free(&op->mac_key);
	if ((r = bw_secret_new(&op->vk, vk_len)) < 0)
		return bw_errf(op->err, op->len, r, "locking memory for the key: %s", strerror(-r));
	if (RAND_priv_bytes(op->vk.data, (int)vk_len) != 1)
		return bw_errf(op->err, op->len, -EIO, "no random volume key: the random generator failed");
	if ((r = crypt_init(&cd, op->o->device)) < 0 || (r = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
	    (r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *)op->vk.data, vk_len, &p)) < 0)
		return bw_errf(op->err, op->len, r, "formatting %s: %s", op->o->device, strerror(-r));
	op->fresh = true; /* from here on the device holds only what this operation wrote */
	/* prepared: a crash before the keyslot leaves a header no key opens, which is formatted again */
	if ((r = bw_vol_token_write(cd, op->id, &t, NULL)) < 0 ||
	    (r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *)op->vk.data, vk_len,
						 (const char *)op->key.data, BW_VOL_KEY_LEN)) < 0)
		return bw_errf(op->err, op->len, r, "writing the token and keyslot: %s", strerror(-r));
	if ((r = derive_mac_key(cd, op)) < 0)
		return r;
	/* An integrity volume goes straight to "wiping" at 0: what a resume of "formatted" does
	 * anyway, and the wipe need not record its start in another header write. */
	t.state = integrity ? ST_WIPING : ST_FORMATTED;
	if ((r = bw_vol_token_write(cd, op->id, &t, op->mac_key.data)) < 0)
		return bw_errf(op->err, op->len, r, "recording state '%s': %s", bw_vol_state_name(t.state), strerror(-r));
	return 0;
}

/* ---- open: validated copy, resume the lifecycle, activate ---- */

static int open_copy(struct op *op, bool map)
{
	_cleanup_crypt_ struct crypt_device *copy = NULL;
	uint32_t flags = CRYPT_ACTIVATE_NO_READ_WORKQUEUE | CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE;
	struct bw_vol_token t;
	bool integrity = false;
	int r;

	if ((r = copy_header(op, &copy, &integrity)) < 0 || (r = check_loaded(copy, integrity, op)) < 0)
		return r;
	if ((r = bw_vol_token_read(copy, &t)) < 0)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the '" BW_VOL_TOKEN_TYPE "' token's state is unreadable");
	if (t.integrity != integrity)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the token's integrity flag disagrees with segment 0");
	if ((r = unlock(copy, op)) < 0)
		return r;
	/* From "formatted" on, only a holder of the key moved the lifecycle; "prepared" with a
	 * keyslot (a format cut short after the keyslot) carries no MAC yet and resumes as
	 * "formatted", under the wipe's guard like every resume. */
	if (t.state != ST_PREPARED && bw_vol_token_verify(&t, crypt_get_uuid(copy) ?: "", op->id, op->mac_key.data) < 0)
		return bw_errf(op->err, op->len, -EMEDIUMTYPE, "the '" BW_VOL_TOKEN_TYPE "' token (state '%s') does not "
			   "authenticate under volume '%s''s key: tampered with; refusing", bw_vol_state_name(t.state), op->id);
	if (t.state == ST_PREPARED)
		t.wipe_offset = 0;
	/* A volume left closed (format) goes from the wipe straight to "ready" in one header write;
	 * one that is mapped here is "wiped" until the mapping exists. */
	if (t.state < ST_WIPED && integrity && (r = wipe(op, copy, &t, map ? ST_WIPED : ST_READY)) < 0)
		return r;
	if (!integrity)
		flags |= CRYPT_ACTIVATE_ALLOW_DISCARDS; /* dm-integrity cannot pass discards through */
	if (map && (r = activate(copy, op, op->name, flags)) < 0)
		return r;
	if (t.state != ST_READY) {
		t.state = ST_READY;
		t.wipe_offset = 0;
		if ((r = save_token(op, copy, &t)) < 0) {
			/* never leave a mapping behind a failed stage: a retry would take it as staged */
			if (map)
				crypt_deactivate_by_name(NULL, op->name, CRYPT_DEACTIVATE_FORCE);
			return r;
		}
	}
	return 0;
}

static int stage_locked(struct op *op, bool allow_open, bool integrity)
{
	char what[160] = "";
	enum kind k = OTHER;
	bool quick;
	int r;

	if (allow_open && is_active(op->name)) {
		r = backing_matches(op->name, op->o->device);
		if (r == 0)
			return bw_errf(op->err, op->len, -EEXIST, "volume '%s' is already staged from another device", op->id);
		return r < 0 ? bw_errf(op->err, op->len, r, "inspecting %s: %s", op->name, strerror(-r)) : 0;
	}
	quick = luks2_magic(op->o->device) > 0;
	if (quick)
		k = LUKS2;
	else if ((r = probe(op, &k, what, sizeof(what))) < 0)
		return r;
	if (k == LUKS2) {
		r = open_copy(op, true);
		if (r != -ENOKEY)
			return r;
		/* A LUKS2 header without any keyslot: a format cut short; no key opens it, no data
		 * can be lost by formatting it again -- unless another signature shares the device,
		 * which only the full probe sees. */
		if (op->err && op->len)
			op->err[0] = 0;
		if (quick && (r = probe(op, &k, what, sizeof(what))) < 0)
			return r;
	}
	if (k == OTHER)
		return bw_errf(op->err, op->len, -ENOTEMPTY, "device %s holds %s: refusing to touch it", op->o->device, what);
	if ((r = format(op, integrity)) < 0)
		return r;
	return open_copy(op, true);
}

static int with_lock(struct op *op, int (*fn)(struct op *, void *), void *arg)
{
	int lock = bw_vol_lock(op->name, op->o->lock_timeout_ms), r;

	if (lock < 0)
		return bw_errf(op->err, op->len, lock, lock == -EBUSY ? "another operation on volume '%s' is in progress"
							     : "locking volume '%s' failed", op->id);
	bw_vol_lock_global();
	sweep_copies(op);
	r = fn(op, arg);
	bw_vol_unlock_global();
	bw_vol_unlock(lock);
	return r;
}

static int need_device(struct op *op)
{
	struct stat st;

	if (!op->o->device)
		return bw_errf(op->err, op->len, -EINVAL, "a device is required");
	if (access(op->o->device, R_OK | W_OK) < 0)
		return bw_errf(op->err, op->len, errno == ENOENT ? -ENOENT : -errno, "device %s: %s", op->o->device,
			   strerror(errno));
	/* a regular file would go through an automatic loop device that no later call can match */
	if (stat(op->o->device, &st) < 0 || !S_ISBLK(st.st_mode))
		return bw_errf(op->err, op->len, -EINVAL, "device %s is not a block device", op->o->device);
	return 0;
}

static int do_stage(struct op *op, void *arg) { (void)arg; return stage_locked(op, true, op->o->integrity); }

static int stage_common(const struct bw_vol_opts *o, const char *def_id, const char *def_name, char *path,
			size_t path_len, char *err, size_t len)
{
	struct op op;
	int r = op_init(&op, o, def_id, def_name, err, len);

	if (r == 0 && (r = need_device(&op)) == 0 && (r = with_lock(&op, do_stage, NULL)) == 0 && path)
		snprintf(path, path_len, "%s/%s", crypt_get_dir(), op.name);
	op_done(&op);
	return r;
}

int bw_vol_stage(const struct bw_vol_opts *o, char *path, size_t path_len, char *err, size_t len)
{
	return stage_common(o, NULL, NULL, path, path_len, err, len);
}

int bw_statedisk_open(const struct bw_vol_opts *o, char *path, size_t path_len, char *err, size_t len)
{
	struct bw_vol_opts so = *o;

	so.integrity = true; /* the state disk is always authenticated */
	return stage_common(&so, BW_STATEDISK_ID, BW_STATEDISK_NAME, path, path_len, err, len);
}

static int do_format(struct op *op, void *arg)
{
	char what[160] = "";
	enum kind k = OTHER;
	int r;

	(void)arg;
	if ((r = probe(op, &k, what, sizeof(what))) < 0)
		return r;
	if (k != BLANK)
		return bw_errf(op->err, op->len, -ENOTEMPTY, "device %s holds %s: format only takes blank devices",
			   op->o->device, what);
	if ((r = format(op, op->o->integrity)) < 0)
		return r;
	return open_copy(op, false); /* wipe (integrity), record "ready", leave it closed */
}

int bw_vol_format(const struct bw_vol_opts *o, char *err, size_t len)
{
	struct op op;
	int r = op_init(&op, o, NULL, NULL, err, len);

	if (r == 0 && (r = need_device(&op)) == 0)
		r = with_lock(&op, do_format, NULL);
	op_done(&op);
	return r;
}

static int do_unstage(struct op *op, void *arg)
{
	char tmp[80];
	int r;

	(void)arg;
	/* A stage killed mid-wipe leaves its temporary mapping holding the device: drop it too. */
	snprintf(tmp, sizeof(tmp), "%s-wipe", op->name);
	if (is_active(tmp) && (r = crypt_deactivate_by_name(NULL, tmp, CRYPT_DEACTIVATE_FORCE)) < 0)
		return bw_errf(op->err, op->len, r, "deactivating %s: %s", tmp, strerror(-r));
	if (!is_active(op->name))
		return 0; /* idempotent: nothing staged */
	r = crypt_deactivate(NULL, op->name); /* takes the _dif device with it */
	if (r == -EBUSY)
		return bw_errf(op->err, op->len, -EBUSY, "deactivating %s: still in use (mounted?)", op->name);
	if (r < 0)
		return bw_errf(op->err, op->len, r, "deactivating %s: %s", op->name, strerror(-r));
	return 0;
}

int bw_vol_unstage(const struct bw_vol_opts *o, char *err, size_t len)
{
	struct op op;
	int r = op_init(&op, o, NULL, NULL, err, len);

	if (r == 0)
		r = with_lock(&op, do_unstage, NULL);
	op_done(&op);
	return r;
}

/*
 * Resize needs the volume key in this context (the kernel holds it in its keyring): verify the
 * passphrase against the validated copy first, as cryptsetup resize does.
 */
static int do_expand(struct op *op, void *arg)
{
	_cleanup_crypt_ struct crypt_device *copy = NULL;
	struct crypt_active_device ad;
	bool integrity = false;
	uint64_t *size = arg;
	int r;

	if (!is_active(op->name))
		return bw_errf(op->err, op->len, -ENOENT, "volume '%s' is not staged", op->id);
	if ((r = backing_matches(op->name, op->o->device)) <= 0)
		return bw_errf(op->err, op->len, r < 0 ? r : -EEXIST, "volume '%s' is not staged from %s", op->id, op->o->device);
	if ((r = copy_header(op, &copy, &integrity)) < 0 || (r = check_loaded(copy, integrity, op)) < 0)
		return r;
	if (integrity)
		return bw_errf(op->err, op->len, -ENOTSUP, "volume '%s' has integrity protection: expanding it is not supported"
			   " (dm-integrity cannot be resized)", op->id);
	if ((r = get_key(op)) < 0)
		return r;
	r = crypt_activate_by_passphrase(copy, NULL, CRYPT_ANY_SLOT, (const char *)op->key.data, BW_VOL_KEY_LEN,
					 CRYPT_ACTIVATE_KEYRING_KEY);
	if (r == -EPERM || r == -ENOENT)
		return wrong_key(op);
	if (r < 0)
		return bw_errf(op->err, op->len, refused_by_lib(r), "checking the key: %s", strerror(-r));
	if ((r = crypt_resize(copy, op->name, 0)) < 0)
		return bw_errf(op->err, op->len, r, "resizing %s: %s", op->name, strerror(-r));
	if (crypt_get_active_device(copy, op->name, &ad) == 0)
		*size = ad.size * 512;
	return 0;
}

int bw_vol_expand(const struct bw_vol_opts *o, uint64_t *new_size, char *err, size_t len)
{
	struct op op;
	uint64_t size = 0;
	int r = op_init(&op, o, NULL, NULL, err, len);

	if (r == 0 && (r = need_device(&op)) == 0)
		r = with_lock(&op, do_expand, &size);
	op_done(&op);
	if (r == 0 && new_size)
		*new_size = size;
	return r;
}

enum bw_vol_code bw_vol_code(int e)
{
	switch (e) {
	case 0: return BW_VOL_OK;
	case -EINVAL: return BW_VOL_INVALID_ARGUMENT;
	case -ENOENT: case -ENODEV: case -ENXIO: return BW_VOL_NOT_FOUND;
	case -EBUSY: case -EINTR: return BW_VOL_ABORTED;
	case -EEXIST: case -ENOTEMPTY: case -EMEDIUMTYPE: case -EKEYREJECTED: case -ENOKEY: case -ENOTSUP:
	case -EPERM: case -EACCES:
		return BW_VOL_FAILED_PRECONDITION;
	default: return BW_VOL_INTERNAL;
	}
}

const char *bw_vol_code_name(enum bw_vol_code c)
{
	switch (c) {
	case BW_VOL_OK: return "OK";
	case BW_VOL_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
	case BW_VOL_NOT_FOUND: return "NOT_FOUND";
	case BW_VOL_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
	case BW_VOL_ABORTED: return "ABORTED";
	default: return "INTERNAL";
	}
}
