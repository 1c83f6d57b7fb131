// SPDX-License-Identifier: GPL-2.0-only
/* Loading the programs and attaching them to uplinks with tc (clsact), replace-in-place. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "common/common.h"
#include "datapath/internal.h"
#include "bw_uplink.skel.h"

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	bw_log(level == LIBBPF_WARN ? BW_LOG_WARN : BW_LOG_DEBUG, "libbpf: %s", msg);
	return 0;
}

void bw_dp_log_init(void)
{
	libbpf_set_print(libbpf_log);
}

/* Replace a program pin: operators find the running programs under <pin>/progs. */
static int repin(struct bpf_program *prog, const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/progs/%s", dir, name);
	unlink(path);
	return bpf_program__pin(prog, path);
}

static int tc_attach(int ifindex, enum bpf_tc_attach_point where, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BW_TC_HANDLE, .priority = BW_TC_PRIORITY,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	libbpf_print_fn_t old = libbpf_set_print(NULL); /* "exists" is the usual answer */
	int r = bpf_tc_hook_create(&hook);

	libbpf_set_print(old);
	if (r < 0 && r != -EEXIST)
		return r;
	/* BPF_TC_F_REPLACE swaps the program of our existing filter atomically. */
	return bpf_tc_attach(&hook, &opts);
}

/* The flow cache's switch (BW_CFG_FLOW_CACHE) comes from the configuration, when one is applied. */
static int set_wg_ifindex(struct bw_dp *dp, int wg_ifindex)
{
	struct bw_config cfg;
	int r = bw_dp_config_get(dp, &cfg);

	if (r < 0)
		return r;
	cfg.wg_ifindex = (__u32)wg_ifindex;
	return bw_dp_config_set(dp, &cfg);
}

/*
 * The flow-cache maps are one set: entries are only meaningful against the generation they were
 * made under. A pin directory from an older build has none of them (libbpf creates them when
 * loading); one with only some of them (a pin removed by hand, an interrupted purge) gets all of
 * them recreated, so no surviving entry can meet a new generation counter that restarts at 0.
 */
/* An older build's bw_stats has fewer reasons (or no directions, no labels): the new programs
 * cannot share it. */
static bool stats_outdated(const char *dir, struct bw_notes *notes)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	char path[512];
	int fd;
	bool old;

	snprintf(path, sizeof(path), "%s/bw_stats", dir);
	if ((fd = bpf_obj_get(path)) < 0)
		return false;
	old = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && (info.max_entries != BW_STAT_ENTRIES || info.value_size != sizeof(struct bw_stat));
	close(fd);
	if (old)
		bw_note(notes, "pin directory %s: bw_stats has %u slots of %u bytes, this build %u of %zu: counters restart",
			dir, info.max_entries, info.value_size, (unsigned)BW_STAT_ENTRIES, sizeof(struct bw_stat));
	return old;
}

static int unlink_stats(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/bw_stats", dir);
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int bw_dp_pins_prepare(const char *dir, struct bw_dp_peer_prefix **old, size_t *n_old, struct bw_notes *notes)
{
	char path[512];
	int present = 0, n = BW_MAP_END_CACHE - BW_MAP_FIRST_CACHE;

	*old = NULL;
	*n_old = 0;
	for (int i = BW_MAP_FIRST_CACHE; i < BW_MAP_END_CACHE; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, bw_dp_map_names[i]);
		present += access(path, F_OK) == 0;
	}
	if (stats_outdated(dir, notes) && unlink_stats(dir) < 0)
		return -errno;
	if (present != 0 && present != n) {
		bw_note(notes, "pin directory %s has a partial flow cache: recreating it", dir);
		for (int i = BW_MAP_FIRST_CACHE; i < BW_MAP_END_CACHE; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, bw_dp_map_names[i]);
			if (unlink(path) < 0 && errno != ENOENT)
				return -errno;
		}
	}
	/* Last: once the old tries are unpinned, their entries live only in *old. */
	return bw_dp_peers_take_old(dir, old, n_old, notes);
}

int bw_dp_attach(const char *pin_dir, const char *const *uplinks, size_t n_uplinks,
		 const char *wg_dev, const struct bw_dp_desired *d, struct bw_notes *notes, char *err, size_t len)
{
	const char *dir = bw_pin_dir(pin_dir);
	char progs[512], lens[512];
	struct bw_uplink *up = NULL;
	struct bw_dp *dp = NULL;
	_cleanup_free_ struct bw_dp_peer_prefix *old_peers = NULL;
	size_t n_old_peers = 0;
	bool lens_pinned;
	int wg_ifindex, r;
	int ifindex[64];

	if (n_uplinks == 0 || n_uplinks > ARRAY_SIZE(ifindex))
		return -EINVAL;
	/* Resolve every name before touching anything: a typo must not half-attach. */
	for (size_t i = 0; i < n_uplinks; i++)
		if (!(ifindex[i] = (int)if_nametoindex(uplinks[i])))
			return bw_errf(err, len, -ENODEV, "uplink %s: no such network device", uplinks[i]);
	/* A WireGuard device that does not exist yet (boot, before bulwarkd) is index 0: the
	 * programs then drop protected traffic (dropped-no-device / dropped-no-peer). */
	wg_ifindex = (int)if_nametoindex(wg_dev);
	snprintf(progs, sizeof(progs), "%s/progs", dir);
	if ((r = bw_dp_bpffs_ensure(dir, notes, err, len)) < 0 || (r = bw_mkdir_p(progs, 0700)) < 0 ||
	    (r = bw_dp_pins_prepare(dir, &old_peers, &n_old_peers, notes)) < 0)
		return r;
	/* Without it, this load creates the length index next to peer maps that may hold entries. */
	snprintf(lens, sizeof(lens), "%s/%s", dir, bw_dp_map_names[BW_MAP_PEER_LENS]);
	lens_pinned = access(lens, F_OK) == 0;

	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = dir);
	up = bw_uplink__open_opts(&opts);
	if (!up) {
		r = -errno ? -errno : -ENOMEM;
		goto out;
	}
	/* Loading reuses maps already pinned in dir: counters, peers and config survive. */
	if ((r = bw_uplink__load(up)) < 0)
		goto out;
	if ((r = bw_dp_open(dir, &dp)) < 0 || (r = bw_dp_stats_label(bpf_map__fd(up->maps.bw_stats))) < 0)
		goto out;
	/*
	 * Entries cached before now may predate map changes made by a build that did not keep the
	 * generation (a downgrade and back): none of them may survive into the new programs.
	 */
	if ((r = bw_dp_flow_invalidate(dp)) < 0)
		goto out;
	if ((r = bw_dp_peers_restore(dp, old_peers, n_old_peers, !lens_pinned)) < 0)
		goto out;
	if (d && (r = bw_dp_apply(dp, d)) < 0)
		goto out;
	if ((r = set_wg_ifindex(dp, wg_ifindex)) < 0)
		goto out;
	for (size_t i = 0; i < n_uplinks; i++) {
		if ((r = tc_attach(ifindex[i], BPF_TC_EGRESS, bpf_program__fd(up->progs.bw_egress))) < 0 ||
		    (r = tc_attach(ifindex[i], BPF_TC_INGRESS, bpf_program__fd(up->progs.bw_ingress))) < 0) {
			bw_errf(err, len, r, "attaching to %s: %s", uplinks[i], strerror(-r));
			goto out;
		}
	}
	if ((r = repin(up->progs.bw_egress, dir, "bw_egress")) < 0 ||
	    (r = repin(up->progs.bw_ingress, dir, "bw_ingress")) < 0)
		goto out;
	r = 0;
out:
	/* The filters hold the programs and the pins hold the maps: enforcement outlives us. */
	bw_dp_close(dp);
	bw_uplink__destroy(up);
	return r;
}

int bw_dp_set_wg_device(const char *pin_dir, const char *wg_dev)
{
	struct bw_dp *dp = NULL;
	int r = bw_dp_open(pin_dir, &dp);

	if (r == 0)
		r = set_wg_ifindex(dp, (int)if_nametoindex(wg_dev));
	bw_dp_close(dp);
	return r;
}

int bw_dp_reattach(const char *pin_dir, const char *uplink)
{
	const char *dir = bw_pin_dir(pin_dir);
	char path[512];
	int ifindex = (int)if_nametoindex(uplink), eg, in, r;

	if (!ifindex)
		return -ENODEV;
	snprintf(path, sizeof(path), "%s/progs/bw_egress", dir);
	if ((eg = bpf_obj_get(path)) < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	snprintf(path, sizeof(path), "%s/progs/bw_ingress", dir);
	if ((in = bpf_obj_get(path)) < 0) {
		r = errno == ENOENT ? -ENOENT : -errno;
		close(eg);
		return r;
	}
	if ((r = tc_attach(ifindex, BPF_TC_EGRESS, eg)) == 0)
		r = tc_attach(ifindex, BPF_TC_INGRESS, in);
	close(eg);
	close(in);
	return r;
}

static uint32_t query_prog(int ifindex, enum bpf_tc_attach_point where)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BW_TC_HANDLE, .priority = BW_TC_PRIORITY);

	return bpf_tc_query(&hook, &opts) == 0 ? opts.prog_id : 0;
}

int bw_dp_attachments(struct bw_dp_attachment *out, size_t max)
{
	struct if_nameindex *ifs = if_nameindex();
	libbpf_print_fn_t old;
	size_t n = 0;

	if (!ifs)
		return -errno;
	/* Most devices have no clsact qdisc; libbpf would log each miss as an error. */
	old = libbpf_set_print(NULL);
	for (struct if_nameindex *i = ifs; i->if_index && n < max; i++) {
		struct bw_dp_attachment a = { .ifindex = (int)i->if_index };

		a.egress_prog_id = query_prog(a.ifindex, BPF_TC_EGRESS);
		a.ingress_prog_id = query_prog(a.ifindex, BPF_TC_INGRESS);
		if (!a.egress_prog_id && !a.ingress_prog_id)
			continue;
		snprintf(a.ifname, sizeof(a.ifname), "%s", i->if_name);
		out[n++] = a;
	}
	libbpf_set_print(old);
	if_freenameindex(ifs);
	return (int)n;
}

static int tc_detach(int ifindex, enum bpf_tc_attach_point where)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BW_TC_HANDLE, .priority = BW_TC_PRIORITY);
	int r = bpf_tc_detach(&hook, &opts);

	return r == -ENOENT ? 0 : r;
}

int bw_dp_detach(const char *pin_dir, bool purge)
{
	struct bw_dp_attachment att[256];
	const char *dir = bw_pin_dir(pin_dir);
	char path[512];
	int n = bw_dp_attachments(att, ARRAY_SIZE(att)), r;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		if ((r = tc_detach(att[i].ifindex, BPF_TC_EGRESS)) < 0 ||
		    (r = tc_detach(att[i].ifindex, BPF_TC_INGRESS)) < 0)
			return r;
	if (!purge)
		return n;
	for (int i = 0; i < BW_MAP_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, bw_dp_map_names[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/bw_ratelimit", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/progs/bw_egress", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/progs/bw_ingress", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/progs", dir);
	rmdir(path);
	rmdir(dir);
	return n;
}
