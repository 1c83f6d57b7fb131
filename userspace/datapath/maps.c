// SPDX-License-Identifier: GPL-2.0-only
/* The pinned maps: open, read, and make equal to a desired state. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "common/common.h"
#include "datapath/internal.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's "operation not supported" for a map type */
#endif

const char *const bw_dp_map_names[BW_MAP_COUNT] = {
	"bw_config", "bw_protect_v4", "bw_protect_v6", "bw_peer_v4", "bw_peer_v6",
	"bw_allow", "bw_stats", "bw_events", "bw_flow_v4", "bw_flow_v6", "bw_flow_gen",
	"bw_peer_lens",
};

/* The one-entry mmap-able maps (bw_flow_gen, bw_peer_lens): written with atomics, not syscalls. */
static int map_mmap(int fd, void **out)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int bw_dp_flow_invalidate(struct bw_dp *dp)
{
	if (dp->gen) {
		/* Atomic: two writers must never both store the same successor. */
		__atomic_add_fetch(&dp->gen->gen, 1, __ATOMIC_SEQ_CST);
		return 0;
	}
	/* A cache without its generation cannot be invalidated: `attach` rebuilds the set. */
	if (dp->fd[BW_MAP_FLOW4] >= 0 || dp->fd[BW_MAP_FLOW6] >= 0)
		return -ENOENT;
	return 0;
}

uint64_t bw_dp_flow_gen(struct bw_dp *dp)
{
	return dp->gen ? __atomic_load_n(&dp->gen->gen, __ATOMIC_SEQ_CST) : 0;
}

bool bw_dp_flow_pinned(struct bw_dp *dp)
{
	return dp->gen && dp->fd[BW_MAP_FLOW4] >= 0 && dp->fd[BW_MAP_FLOW6] >= 0;
}

/* Bump after a change that succeeded; report the change's error first. */
static int changed(struct bw_dp *dp, int r)
{
	int g = bw_dp_flow_invalidate(dp);

	return r < 0 ? r : g;
}

int bw_dp_open(const char *pin_dir, struct bw_dp **out)
{
	struct bw_dp *dp = calloc(1, sizeof(*dp));
	char path[512];
	int r = 0;

	if (!dp)
		return -ENOMEM;
	for (int i = 0; i < BW_MAP_COUNT; i++)
		dp->fd[i] = -1;
	for (int i = 0; i < BW_MAP_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", bw_pin_dir(pin_dir), bw_dp_map_names[i]);
		dp->fd[i] = bpf_obj_get(path);
		if (dp->fd[i] < 0 && !(errno == ENOENT && i >= BW_MAP_FIRST_CACHE)) {
			r = -errno;
			break;
		}
	}
	if (r == 0 && dp->fd[BW_MAP_FLOW_GEN] >= 0)
		r = map_mmap(dp->fd[BW_MAP_FLOW_GEN], (void **)&dp->gen);
	if (r == 0 && dp->fd[BW_MAP_PEER_LENS] >= 0)
		r = map_mmap(dp->fd[BW_MAP_PEER_LENS], (void **)&dp->lens);
	if (r < 0) {
		bw_dp_close(dp);
		return r;
	}
	*out = dp;
	return 0;
}

void bw_dp_close(struct bw_dp *dp)
{
	if (!dp)
		return;
	if (dp->gen)
		munmap(dp->gen, (size_t)sysconf(_SC_PAGESIZE));
	if (dp->lens)
		munmap(dp->lens, (size_t)sysconf(_SC_PAGESIZE));
	for (int i = 0; i < BW_MAP_COUNT; i++)
		if (dp->fd[i] >= 0)
			close(dp->fd[i]);
	free(dp);
}

void bw_lpm_from_cidr(const struct bw_cidr *c, union bw_lpm_key *k)
{
	memset(k, 0, sizeof(*k));
	if (c->family == 4) {
		k->v4.prefixlen = c->len;
		memcpy(k->v4.addr, c->addr, 4);
	} else {
		k->v6.prefixlen = c->len;
		memcpy(k->v6.addr, c->addr, 16);
	}
}

void bw_cidr_from_lpm(int family, const void *key, struct bw_cidr *c)
{
	memset(c, 0, sizeof(*c));
	c->family = family;
	if (family == 4) {
		const struct bw_lpm_v4 *k = key;
		c->len = k->prefixlen;
		memcpy(c->addr, k->addr, 4);
	} else {
		const struct bw_lpm_v6 *k = key;
		c->len = k->prefixlen;
		memcpy(c->addr, k->addr, 16);
	}
}

int bw_dp_config_get(struct bw_dp *dp, struct bw_config *cfg)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(dp->fd[BW_MAP_CONFIG], &zero, cfg) ? -errno : 0;
}

int bw_dp_config_set(struct bw_dp *dp, const struct bw_config *cfg)
{
	__u32 zero = 0;
	return changed(dp, bpf_map_update_elem(dp->fd[BW_MAP_CONFIG], &zero, cfg, BPF_ANY) ? -errno : 0);
}

static int peer_fd(struct bw_dp *dp, int family)
{
	return dp->fd[family == 4 ? BW_MAP_PEER4 : BW_MAP_PEER6];
}

/* A prefix length's bit in bw_peer_lens (bulwark_abi.h); an older build's pins have none. */
static void peer_len_add(struct bw_dp *dp, int family, unsigned len)
{
	if (!dp->lens)
		return;
	if (family == 4)
		__atomic_fetch_or(&dp->lens->v4, 1ull << (32 - len), __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_or(&dp->lens->v6[(128 - len) / 64], 1ull << ((128 - len) % 64), __ATOMIC_SEQ_CST);
}

/*
 * The one writer of bw_peer_v4/v6 (a hash per prefix: the key's host bits are zero, as the
 * programs' probes make them). The length's bit goes in first, so the entry is found as soon as
 * it exists.
 */
/* A peer prefix as the map holds it: host bits zero, as the programs' probes build the key. */
static int peer_cidr(struct bw_cidr *c)
{
	unsigned whole;

	if ((c->family != 4 && c->family != 6) || c->len > (c->family == 4 ? 32 : 128))
		return -EINVAL;
	/* Bytes, not bits: this runs for every prefix of every sync. */
	whole = c->len / 8;
	if (c->len % 8)
		c->addr[whole++] &= (uint8_t)(0xff00 >> (c->len % 8));
	memset(c->addr + whole, 0, sizeof(c->addr) - whole);
	return 0;
}

/* A peer map key: the prefix with its host bits zero. */
static int peer_key(const struct bw_cidr *cidr, union bw_lpm_key *k)
{
	struct bw_cidr c = *cidr;
	int r = peer_cidr(&c);

	if (r == 0)
		bw_lpm_from_cidr(&c, k);
	return r;
}

static int peer_put(struct bw_dp *dp, const struct bw_cidr *cidr, const void *peer)
{
	union bw_lpm_key k;
	int r = peer_key(cidr, &k);

	if (r < 0)
		return r;
	peer_len_add(dp, cidr->family, cidr->len);
	return bpf_map_update_elem(peer_fd(dp, cidr->family), &k, peer, BPF_ANY) ? -errno : 0;
}

int bw_dp_peer_set(struct bw_dp *dp, const struct bw_cidr *cidr, const struct bw_peer *peer)
{
	return changed(dp, peer_put(dp, cidr, peer));
}

int bw_dp_peer_del(struct bw_dp *dp, const struct bw_cidr *cidr)
{
	union bw_lpm_key k;
	int r = peer_key(cidr, &k);

	if (r == 0 && bpf_map_delete_elem(peer_fd(dp, cidr->family), &k) && errno != ENOENT)
		r = -errno;
	return changed(dp, r);
}

/* Walk an LPM trie; keys are collected first because deleting while iterating restarts walks. */
static int lpm_keys(int fd, int family, union bw_lpm_key **out, size_t *n)
{
	size_t ksz = family == 4 ? sizeof(struct bw_lpm_v4) : sizeof(struct bw_lpm_v6);
	union bw_lpm_key cur, next, *keys = NULL;
	size_t cap = 0, cnt = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (cnt == cap) {
			union bw_lpm_key *nk = realloc(keys, (cap = cap ? cap * 2 : 256) * sizeof(*keys));
			if (!nk) {
				free(keys);
				return -ENOMEM;
			}
			keys = nk;
		}
		memset(&keys[cnt], 0, sizeof(keys[cnt]));
		memcpy(&keys[cnt++], &next, ksz);
		memcpy(&cur, &next, ksz);
		prev = &cur;
	}
	if (errno != ENOENT) {
		free(keys);
		return -errno;
	}
	*out = keys;
	*n = cnt;
	return 0;
}

int bw_dp_peers_foreach(struct bw_dp *dp, bw_dp_peer_cb cb, void *ctx)
{
	for (int family = 4; family <= 6; family += 2) {
		_cleanup_free_ union bw_lpm_key *keys = NULL;
		size_t n;
		int r = lpm_keys(peer_fd(dp, family), family, &keys, &n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			struct bw_peer v;
			struct bw_cidr c;

			if (bpf_map_lookup_elem(peer_fd(dp, family), &keys[i], &v))
				continue; /* removed meanwhile */
			bw_cidr_from_lpm(family, &keys[i], &c);
			if ((r = cb(&c, &v, ctx)))
				return r;
		}
	}
	return 0;
}

int bw_dp_protect_foreach(struct bw_dp *dp, bw_dp_prefix_cb cb, void *ctx)
{
	for (int family = 4; family <= 6; family += 2) {
		int fd = dp->fd[family == 4 ? BW_MAP_PROTECT4 : BW_MAP_PROTECT6];
		_cleanup_free_ union bw_lpm_key *keys = NULL;
		size_t n;
		int r = lpm_keys(fd, family, &keys, &n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			struct bw_prefix v;
			struct bw_cidr c;

			if (bpf_map_lookup_elem(fd, &keys[i], &v))
				continue;
			bw_cidr_from_lpm(family, &keys[i], &c);
			if ((r = cb(&c, v.class, ctx)))
				return r;
		}
	}
	return 0;
}

/* A buffer for one bw_stats slot on every CPU; returns the CPU count or a negative errno. */
static int stats_percpu(struct bw_stat **per)
{
	int ncpu = libbpf_num_possible_cpus();

	if (ncpu < 0)
		return ncpu;
	*per = calloc((size_t)ncpu, sizeof(**per));
	return *per ? ncpu : -ENOMEM;
}

int bw_dp_stats_dir(struct bw_dp *dp, struct bw_stat out[2][BW_REASON_MAX])
{
	_cleanup_free_ struct bw_stat *per = NULL;
	int ncpu = stats_percpu(&per);

	if (ncpu < 0)
		return ncpu;
	for (__u32 d = 0; d < 2; d++)
		for (__u32 r = 0; r < BW_REASON_MAX; r++) {
			__u32 key = BW_STAT_KEY(r, d);

			out[d][r] = (struct bw_stat){ .reason = r, .dir = d };
			if (bpf_map_lookup_elem(dp->fd[BW_MAP_STATS], &key, per))
				return -errno;
			for (int c = 0; c < ncpu; c++) {
				out[d][r].packets += per[c].packets;
				out[d][r].bytes += per[c].bytes;
			}
		}
	return 0;
}

int bw_dp_stats(struct bw_dp *dp, struct bw_stat out[BW_REASON_MAX])
{
	struct bw_stat both[2][BW_REASON_MAX];
	int r = bw_dp_stats_dir(dp, both);

	for (unsigned i = 0; r == 0 && i < BW_REASON_MAX; i++)
		out[i] = (struct bw_stat){ .packets = both[0][i].packets + both[1][i].packets,
					   .bytes = both[0][i].bytes + both[1][i].bytes, .reason = i };
	return r;
}

int bw_dp_stats_label(int fd)
{
	_cleanup_free_ struct bw_stat *per = NULL;
	int ncpu = stats_percpu(&per);

	if (ncpu < 0)
		return ncpu;
	for (__u32 d = 0; d < 2; d++)
		for (__u32 r = 0; r < BW_REASON_MAX; r++) {
			__u32 key = BW_STAT_KEY(r, d);
			bool same = true;

			if (bpf_map_lookup_elem(fd, &key, per))
				return -errno;
			for (int c = 0; c < ncpu; c++) {
				same &= per[c].reason == r && per[c].dir == d;
				per[c].reason = r;
				per[c].dir = d;
			}
			if (!same && bpf_map_update_elem(fd, &key, per, BPF_EXIST))
				return -errno;
		}
	return 0;
}

/* ---- the diff engine: an LPM map pair := a list of (cidr, value) ---- */

#define BATCH_MAX 1024 /* entries per BPF_MAP_*_BATCH call */

/* A desired or current entry: cidr and a pointer to its value bytes. */
struct lpm_ent {
	struct bw_cidr cidr;
	const void *val;
	size_t pos; /* input order: of two entries for one prefix the later one wins */
};

static int cidr_cmp(const struct bw_cidr *x, const struct bw_cidr *y)
{
	int d = x->family - y->family;

	if (!d)
		d = memcmp(x->addr, y->addr, 16);
	return d ? d : x->len - y->len;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct lpm_ent *x = a, *y = b;
	int d = cidr_cmp(&x->cidr, &y->cidr);

	return d ? d : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Sorted by prefix, one entry per prefix (the last given). */
static size_t ents_sort(struct lpm_ent *v, size_t n)
{
	size_t k = 0;

	if (n)
		qsort(v, n, sizeof(*v), ent_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && !cidr_cmp(&v[k - 1].cidr, &v[i].cidr))
			k--;
		v[k++] = v[i];
	}
	return k;
}

static const struct lpm_ent *ents_find(const struct lpm_ent *v, size_t n, const struct bw_cidr *c)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = cidr_cmp(&v[mid].cidr, c);

		if (!d)
			return &v[mid];
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Entries of a caller's array of records (cidr at 0, value at voff). */
static struct lpm_ent *ents_from(const void *list, size_t n, size_t stride, size_t voff)
{
	struct lpm_ent *v = calloc(n + 1, sizeof(*v));

	for (size_t i = 0; v && i < n; i++) {
		const char *rec = (const char *)list + i * stride;
		v[i] = (struct lpm_ent){ *(const struct bw_cidr *)rec, rec + voff, i };
	}
	return v;
}

static bool batch_unsupported(int e);

/* Both maps read with BPF_MAP_LOOKUP_BATCH (a syscall per 1024 entries, not two per entry);
 * -EOPNOTSUPP when the kernel has no batch lookup for the map type. */
static int lpm_read_batch(struct bw_dp *dp, int map4, int map6, size_t vsize, struct lpm_ent **out,
			  size_t *nout, char **store)
{
	size_t cap = 0, n = 0;
	struct lpm_ent *v = NULL;
	char *vals = NULL;
	union bw_lpm_key *keys = NULL;
	int r = 0;

	for (int family = 4; family <= 6 && r == 0; family += 2) {
		int fd = dp->fd[family == 4 ? map4 : map6];
		size_t ksz = family == 4 ? sizeof(struct bw_lpm_v4) : sizeof(struct bw_lpm_v6);
		union bw_lpm_key token;
		bool first = true, done = false;

		while (!done && r == 0) {
			LIBBPF_OPTS(bpf_map_batch_opts, opts);
			__u32 cnt = BATCH_MAX;

			if (n + BATCH_MAX > cap) {
				size_t nc = cap ? cap * 2 : 2 * BATCH_MAX;
				struct lpm_ent *nv = realloc(v, nc * sizeof(*v));
				char *nvals = nv ? realloc(vals, nc * vsize) : NULL;

				if (nv)
					v = nv;
				if (!nv || !nvals) {
					r = -ENOMEM;
					break;
				}
				vals = nvals, cap = nc;
			}
			if (!keys && !(keys = calloc(BATCH_MAX, sizeof(*keys)))) {
				r = -ENOMEM;
				break;
			}
			if (bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys, vals + n * vsize, &cnt, &opts)) {
				if (errno != ENOENT) {
					r = batch_unsupported(errno) && first ? -EOPNOTSUPP : -errno;
					break;
				}
				done = true; /* the last (possibly empty) batch */
			}
			first = false;
			for (__u32 i = 0; i < cnt; i++, n++) {
				bw_cidr_from_lpm(family, (const char *)keys + i * ksz, &v[n].cidr);
				v[n].pos = n;
			}
		}
	}
	free(keys);
	if (r < 0) {
		free(v);
		free(vals);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		v[i].val = vals + i * vsize; /* after the last realloc */
	*out = v, *nout = n, *store = vals;
	return 0;
}

/* The map pair's entries as they are; values in *store (vsize bytes each). */
static int ents_read(struct bw_dp *dp, int map4, int map6, size_t vsize, struct lpm_ent **out,
		     size_t *nout, char **store)
{
	union bw_lpm_key *k4 = NULL, *k6 = NULL;
	size_t n4 = 0, n6 = 0, n = 0;
	struct lpm_ent *v = NULL;
	char *vals = NULL;
	int r;

	if ((r = lpm_read_batch(dp, map4, map6, vsize, out, nout, store)) != -EOPNOTSUPP)
		return r;
	r = 0;
	if ((r = lpm_keys(dp->fd[map4], 4, &k4, &n4)) < 0 || (r = lpm_keys(dp->fd[map6], 6, &k6, &n6)) < 0)
		goto out;
	v = calloc(n4 + n6 + 1, sizeof(*v));
	vals = calloc(n4 + n6 + 1, vsize);
	if (!v || !vals) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n4 + n6; i++) {
		int family = i < n4 ? 4 : 6;
		union bw_lpm_key *k = i < n4 ? &k4[i] : &k6[i - n4];

		if (bpf_map_lookup_elem(dp->fd[family == 4 ? map4 : map6], k, vals + n * vsize))
			continue; /* removed meanwhile */
		bw_cidr_from_lpm(family, k, &v[n].cidr);
		v[n].val = vals + n * vsize;
		v[n].pos = n;
		n++;
	}
out:
	free(k4);
	free(k6);
	if (r < 0) {
		free(v);
		free(vals);
		return r;
	}
	*out = v, *nout = n, *store = vals;
	return 0;
}

/*
 * A batch of updates or deletions for one map: BPF_MAP_{UPDATE,DELETE}_BATCH (one syscall for
 * many entries) where the kernel has it for the map type, one syscall per entry otherwise.
 */
struct batch {
	int fd;
	bool del;
	size_t ksz, vsz, n;
	char *keys, *vals;
};

static bool batch_unsupported(int e)
{
	return e == EINVAL || e == ENOTSUPP || e == EOPNOTSUPP || e == ENOSYS;
}

static int batch_flush(struct batch *b)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	__u32 cnt = (__u32)b->n;
	size_t done = 0;
	int r = 0;

	if (!b->n)
		return 0;
	r = b->del ? bpf_map_delete_batch(b->fd, b->keys, &cnt, &opts)
		   : bpf_map_update_batch(b->fd, b->keys, b->vals, &cnt, &opts);
	if (r == 0) {
		b->n = 0;
		return 0;
	}
	r = -errno;
	/* Without batch support nothing was done; after a real error cnt says how far it got. */
	if (!batch_unsupported(-r) && (!b->del || r != -ENOENT))
		return r;
	done = batch_unsupported(-r) ? 0 : cnt;
	for (size_t i = done; i < b->n; i++) {
		const void *k = b->keys + i * b->ksz;

		if (b->del ? bpf_map_delete_elem(b->fd, k) && errno != ENOENT
			   : bpf_map_update_elem(b->fd, k, b->vals + i * b->vsz, BPF_ANY) != 0)
			return -errno;
	}
	b->n = 0;
	return 0;
}

static int batch_add(struct batch *b, const struct bw_cidr *c, const void *val)
{
	union bw_lpm_key k;

	bw_lpm_from_cidr(c, &k);
	memcpy(b->keys + b->n * b->ksz, &k, b->ksz);
	if (val)
		memcpy(b->vals + b->n * b->vsz, val, b->vsz);
	return ++b->n == BATCH_MAX ? batch_flush(b) : 0;
}

static int batch_init(struct batch *b, int fd, int family, size_t vsz, bool del)
{
	*b = (struct batch){ .fd = fd, .del = del, .vsz = vsz,
			     .ksz = family == 4 ? sizeof(struct bw_lpm_v4) : sizeof(struct bw_lpm_v6) };
	b->keys = calloc(BATCH_MAX, b->ksz);
	b->vals = del ? NULL : calloc(BATCH_MAX, vsz);
	return b->keys && (del || b->vals) ? 0 : -ENOMEM;
}

static void batch_free(struct batch *b)
{
	free(b->keys);
	free(b->vals);
}

/*
 * Make the map pair hold want[nw] (sorted, unique): changed and new entries first, then the
 * stale ones (in cur, sorted, unique, not in want); the flow cache is invalidated after each.
 */
static int lpm_sync(struct bw_dp *dp, int map4, int map6, size_t vsize, bool peer, const struct lpm_ent *want,
		    size_t nw, const struct lpm_ent *cur, size_t nc, size_t *written, size_t *deleted)
{
	struct batch b[2] = { 0 };
	size_t nwr = 0, ndel = 0;
	int r;

	for (int pass = 0; pass < 2; pass++) {
		bool del = pass == 1;

		if ((r = batch_init(&b[0], dp->fd[map4], 4, vsize, del)) < 0 ||
		    (r = batch_init(&b[1], dp->fd[map6], 6, vsize, del)) < 0)
			goto out;
		for (size_t i = 0; !del && i < nw && r == 0; i++) {
			const struct lpm_ent *e = ents_find(cur, nc, &want[i].cidr);

			if (!e || memcmp(e->val, want[i].val, vsize)) {
				if (peer) /* the length's bit before the entry: found as soon as it exists */
					peer_len_add(dp, want[i].cidr.family, want[i].cidr.len);
				r = batch_add(&b[want[i].cidr.family == 4 ? 0 : 1], &want[i].cidr, want[i].val);
				nwr++;
			}
		}
		for (size_t i = 0; del && i < nc && r == 0; i++)
			if (!ents_find(want, nw, &cur[i].cidr)) {
				r = batch_add(&b[cur[i].cidr.family == 4 ? 0 : 1], &cur[i].cidr, NULL);
				ndel++;
			}
		if (r == 0)
			r = batch_flush(&b[0]);
		if (r == 0)
			r = batch_flush(&b[1]);
		if ((del ? ndel : nwr) || r < 0)
			r = changed(dp, r);
out:
		batch_free(&b[0]);
		batch_free(&b[1]);
		b[0] = b[1] = (struct batch){ 0 };
		if (r < 0)
			return r;
	}
	if (written)
		*written = nwr;
	if (deleted)
		*deleted = ndel;
	return 0;
}

/* One LPM map pair := list[n] (records of stride bytes, cidr first, value at voff), read from the
 * map (cur NULL) or trusting cur[ncur] (same record layout). */
static int sync_lpm(struct bw_dp *dp, int map4, int map6, bool peer, const void *list, size_t n, const void *cur,
		    size_t ncur, size_t stride, size_t voff, size_t vsize, size_t *written, size_t *deleted)
{
	_cleanup_free_ struct lpm_ent *want = ents_from(list, n, stride, voff);
	_cleanup_free_ struct lpm_ent *have = NULL;
	_cleanup_free_ char *store = NULL;
	size_t nh = 0;
	int r;

	if (!want)
		return -ENOMEM;
	if (cur) {
		if (!(have = ents_from(cur, ncur, stride, voff)))
			return -ENOMEM;
		nh = ncur;
	} else if ((r = ents_read(dp, map4, map6, vsize, &have, &nh, &store)) < 0) {
		return r;
	}
	/* Peer maps are hashes keyed by the prefix with its host bits zero (bulwark_abi.h). */
	for (size_t i = 0; peer && i < n; i++)
		if ((r = peer_cidr(&want[i].cidr)) < 0)
			return r;
	for (size_t i = 0; peer && i < nh; i++)
		if ((r = peer_cidr(&have[i].cidr)) < 0)
			return r;
	n = ents_sort(want, n);
	nh = ents_sort(have, nh);
	return lpm_sync(dp, map4, map6, vsize, peer, want, n, have, nh, written, deleted);
}

int bw_dp_peers_sync(struct bw_dp *dp, const struct bw_dp_peer_prefix *want, size_t n,
		     const struct bw_dp_peer_prefix *cur, size_t ncur, size_t *written, size_t *deleted)
{
	return sync_lpm(dp, BW_MAP_PEER4, BW_MAP_PEER6, true, want, n, cur, ncur, sizeof(*want),
			offsetof(struct bw_dp_peer_prefix, peer), sizeof(struct bw_peer), written, deleted);
}

static int sync_allow(struct bw_dp *dp, const struct bw_allow_key *allow, size_t n)
{
	struct bw_allow_key cur, next, *prev = NULL;
	struct bw_allow v = { 0 };
	int fd = dp->fd[BW_MAP_ALLOW];

	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &allow[i], &v, BPF_NOEXIST) && errno != EEXIST)
			return -errno;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		bool keep = false;

		for (size_t i = 0; i < n && !keep; i++)
			keep = !memcmp(&allow[i], &next, sizeof(next));
		if (!keep && bpf_map_delete_elem(fd, &next) == 0) {
			prev = NULL; /* restart: the deleted key can no longer anchor the walk */
			continue;
		}
		cur = next;
		prev = &cur;
	}
	return changed(dp, 0);
}

void bw_dp_desired_free(struct bw_dp_desired *d)
{
	free((void *)d->protect);
	free((void *)d->peers);
	free((void *)d->allow);
	memset(d, 0, sizeof(*d));
}

int bw_dp_apply(struct bw_dp *dp, const struct bw_dp_desired *d)
{
	struct bw_config cfg = d->config;
	struct bw_config old;
	int r;

	if ((r = bw_dp_config_get(dp, &old)) < 0)
		return r;
	if (!cfg.wg_ifindex)
		cfg.wg_ifindex = old.wg_ifindex;
	/*
	 * Order matters for fail-closed: peers (where traffic may go) before protected prefixes
	 * (what must be encrypted), so a newly protected prefix never meets a missing peer entry
	 * that was about to be added; config last.
	 */
	if ((r = bw_dp_peers_sync(dp, d->peers, d->n_peers, NULL, 0, NULL, NULL)) < 0)
		return r;
	if ((r = sync_lpm(dp, BW_MAP_PROTECT4, BW_MAP_PROTECT6, false, d->protect, d->n_protect, NULL, 0,
			  sizeof(*d->protect), offsetof(struct bw_dp_prefix, class), sizeof(struct bw_prefix),
			  NULL, NULL)) < 0)
		return r;
	if ((r = sync_allow(dp, d->allow, d->n_allow)) < 0)
		return r;
	return bw_dp_config_set(dp, &cfg);
}

/* ---- peer maps from an older build (LPM tries) ---- */

int bw_dp_peers_take_old(const char *dir, struct bw_dp_peer_prefix **out, size_t *n_out, struct bw_notes *notes)
{
	struct bw_dp_peer_prefix *all = NULL;
	size_t n = 0;
	char path[2][512];
	int fd[2] = { -1, -1 }, r = 0;

	*out = NULL;
	*n_out = 0;
	for (int f = 0; f < 2; f++) {
		struct bpf_map_info info = { 0 };
		__u32 len = sizeof(info);

		snprintf(path[f], sizeof(path[f]), "%s/%s", dir, bw_dp_map_names[f ? BW_MAP_PEER6 : BW_MAP_PEER4]);
		if ((fd[f] = bpf_obj_get(path[f])) < 0 && errno != ENOENT) {
			r = -errno;
			goto out;
		}
		if (fd[f] >= 0 && (bpf_obj_get_info_by_fd(fd[f], &info, &len) ||
				   info.type != BPF_MAP_TYPE_LPM_TRIE)) {
			close(fd[f]); /* this build's map (or unreadable: loading will say) */
			fd[f] = -1;
		}
	}
	for (int f = 0; f < 2; f++) {
		_cleanup_free_ union bw_lpm_key *keys = NULL;
		size_t nk;

		if (fd[f] < 0)
			continue;
		if ((r = lpm_keys(fd[f], f ? 6 : 4, &keys, &nk)) < 0)
			goto out;
		struct bw_dp_peer_prefix *na = realloc(all, (n + nk + 1) * sizeof(*all));
		if (!na) {
			r = -ENOMEM;
			goto out;
		}
		all = na;
		for (size_t i = 0; i < nk; i++) {
			if (bpf_map_lookup_elem(fd[f], &keys[i], &all[n].peer))
				continue;
			bw_cidr_from_lpm(f ? 6 : 4, &keys[i], &all[n].cidr);
			n++;
		}
	}
	for (int f = 0; f < 2; f++)
		if (fd[f] >= 0 && unlink(path[f]) < 0 && errno != ENOENT) {
			r = -errno;
			goto out;
		}
	if (n)
		bw_note(notes, "pin directory %s: %zu peer prefixes moved from an older build's tries", dir, n);
out:
	for (int f = 0; f < 2; f++)
		if (fd[f] >= 0)
			close(fd[f]);
	if (r < 0) {
		free(all);
		return r;
	}
	*out = all;
	*n_out = n;
	return 0;
}

static int peer_lens_of_map(struct bw_dp *dp, int family)
{
	_cleanup_free_ union bw_lpm_key *keys = NULL;
	size_t n;
	int r = lpm_keys(peer_fd(dp, family), family, &keys, &n);

	for (size_t i = 0; r == 0 && i < n; i++)
		peer_len_add(dp, family, family == 4 ? keys[i].v4.prefixlen : keys[i].v6.prefixlen);
	return r;
}

int bw_dp_peers_restore(struct bw_dp *dp, const struct bw_dp_peer_prefix *old, size_t n_old, bool rescan)
{
	int r = 0;

	for (size_t i = 0; i < n_old && r == 0; i++)
		r = peer_put(dp, &old[i].cidr, &old[i].peer);
	if (r == 0 && rescan)
		r = peer_lens_of_map(dp, 4);
	if (r == 0 && rescan)
		r = peer_lens_of_map(dp, 6);
	return n_old || rescan ? changed(dp, r) : r;
}
