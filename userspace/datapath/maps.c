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
/* A peer map key: the prefix with its host bits zero, as the programs' probes build it. */
static int peer_key(const struct bw_cidr *cidr, union bw_lpm_key *k)
{
	struct bw_cidr c = *cidr;

	if ((c.family != 4 && c.family != 6) || c.len > (c.family == 4 ? 32 : 128))
		return -EINVAL;
	for (unsigned i = c.len; i < 128; i++)
		c.addr[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
	bw_lpm_from_cidr(&c, k);
	return 0;
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

int bw_dp_stats_dir(struct bw_dp *dp, struct bw_stat out[2][BW_REASON_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	_cleanup_free_ struct bw_stat *per = NULL;

	if (ncpu < 0)
		return ncpu;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
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
	int ncpu = libbpf_num_possible_cpus();
	_cleanup_free_ struct bw_stat *per = NULL;

	if (ncpu < 0)
		return ncpu;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
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

/* ---- apply: add/update everything desired, then delete what is not ---- */

static bool cidr_in(const struct bw_cidr *c, const void *list, size_t n, size_t stride)
{
	for (size_t i = 0; i < n; i++)
		if (bw_cidr_eq(c, (const void *)((const char *)list + i * stride)))
			return true;
	return false;
}

/* The writer of bw_protect_v4/v6 (LPM tries). */
static int protect_put(struct bw_dp *dp, const struct bw_cidr *c, const void *class)
{
	union bw_lpm_key k;

	bw_lpm_from_cidr(c, &k);
	return bpf_map_update_elem(dp->fd[c->family == 4 ? BW_MAP_PROTECT4 : BW_MAP_PROTECT6], &k, class,
				   BPF_ANY) ? -errno : 0;
}

/*
 * Sync one prefix map pair; entries are (cidr, value) records of size stride with value at voff,
 * written by put (the map's one writer).
 */
static int sync_lpm_entries(struct bw_dp *dp, int map4, int map6, const void *list, size_t n,
			    size_t stride, size_t voff,
			    int (*put)(struct bw_dp *, const struct bw_cidr *, const void *))
{
	for (size_t i = 0; i < n; i++) {
		const struct bw_cidr *c = (const void *)((const char *)list + i * stride);
		int r = put(dp, c, (const char *)c + voff);

		if (r < 0)
			return r;
	}
	for (int family = 4; family <= 6; family += 2) {
		int fd = dp->fd[family == 4 ? map4 : map6];
		_cleanup_free_ union bw_lpm_key *keys = NULL;
		size_t nk;
		int r = lpm_keys(fd, family, &keys, &nk);

		if (r < 0)
			return r;
		for (size_t i = 0; i < nk; i++) {
			struct bw_cidr c;

			bw_cidr_from_lpm(family, &keys[i], &c);
			if (!cidr_in(&c, list, n, stride) && bpf_map_delete_elem(fd, &keys[i]) && errno != ENOENT)
				return -errno;
		}
	}
	return 0;
}

static int sync_lpm(struct bw_dp *dp, int map4, int map6, const void *list, size_t n,
		    size_t stride, size_t voff,
		    int (*put)(struct bw_dp *, const struct bw_cidr *, const void *))
{
	return changed(dp, sync_lpm_entries(dp, map4, map6, list, n, stride, voff, put));
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
	if ((r = sync_lpm(dp, BW_MAP_PEER4, BW_MAP_PEER6, d->peers, d->n_peers,
			  sizeof(*d->peers), offsetof(struct bw_dp_peer_prefix, peer), peer_put)) < 0)
		return r;
	if ((r = sync_lpm(dp, BW_MAP_PROTECT4, BW_MAP_PROTECT6, d->protect, d->n_protect,
			  sizeof(*d->protect), offsetof(struct bw_dp_prefix, class), protect_put)) < 0)
		return r;
	if ((r = sync_allow(dp, d->allow, d->n_allow)) < 0)
		return r;
	return bw_dp_config_set(dp, &cfg);
}

/* ---- peer maps from an older build (LPM tries) ---- */

int bw_dp_peers_take_old(const char *dir, struct bw_dp_peer_prefix **out, size_t *n_out)
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
		bw_info("pin directory %s: %zu peer prefixes moved from an older build's tries", dir, n);
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
