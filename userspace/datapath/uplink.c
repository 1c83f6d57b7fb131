// SPDX-License-Identifier: GPL-2.0-only
/*
 * Is bulwark's verdict final on an uplink? For each direction: our filter (handle 0xb0a, pref 1,
 * kind bpf, running our pinned program) is on the clsact hook, no other filter of chain 0 comes
 * before it in the kernel's evaluation order (the filter dump lists filters in that order), and no
 * tcx program is attached (tcx programs run before every clsact filter, and one that returns a
 * verdict other than "next" skips the filters: bulwark would never see the packet).
 * Filters are read with an rtnetlink RTM_GETTFILTER dump (libmnl); tcx with BPF_PROG_QUERY.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <bpf/bpf.h>
#include "datapath/internal.h"

/* tcx attach types (Linux 6.6); the build's UAPI headers may predate them. */
#define BW_ATTACH_TCX_INGRESS 46
#define BW_ATTACH_TCX_EGRESS 47

const char *bw_dp_uplink_state_name(enum bw_uplink_state s)
{
	static const char *const names[] = {
		[BW_UPLINK_ENFORCED] = "enforced",
		[BW_UPLINK_MISSING] = "device-missing",
		[BW_UPLINK_NOT_ATTACHED] = "not-attached",
		[BW_UPLINK_NOT_OURS] = "foreign-program-in-our-filter",
		[BW_UPLINK_PRECEDED] = "foreign-filter-before-ours",
	};
	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static uint32_t pinned_prog_id(const char *pin_dir, const char *name)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/progs/%s", bw_pin_dir(pin_dir), name);
	if ((fd = bpf_obj_get(path)) < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		info.id = 0;
	close(fd);
	return info.id;
}

struct dump {
	struct bw_dp_uplink_dir *d;
	bool seen_ours;
};

static int bpf_opt_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, TCA_BPF_MAX) > 0)
		tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int tca_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, TCA_MAX) > 0)
		tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int filter_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump *dm = data;
	const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[TCA_MAX + 1] = { 0 }, *opt[TCA_BPF_MAX + 1] = { 0 };
	unsigned prio = TC_H_MAJ(tcm->tcm_info) >> 16;
	const char *kind;
	uint32_t prog_id = 0;

	if (nlh->nlmsg_type != RTM_NEWTFILTER)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*tcm), tca_cb, tb);
	/* Each filter protocol instance (prio) is listed once without a handle, then its filters. */
	if (!tcm->tcm_handle || (tb[TCA_CHAIN] && mnl_attr_get_u32(tb[TCA_CHAIN]) != 0))
		return MNL_CB_OK;
	kind = tb[TCA_KIND] ? mnl_attr_get_str(tb[TCA_KIND]) : "?";
	if (tb[TCA_OPTIONS]) {
		mnl_attr_parse_nested(tb[TCA_OPTIONS], bpf_opt_cb, opt);
		if (!strcmp(kind, "bpf") && opt[TCA_BPF_ID])
			prog_id = mnl_attr_get_u32(opt[TCA_BPF_ID]);
	}
	if (!dm->seen_ours && tcm->tcm_handle == BW_TC_HANDLE && prio == BW_TC_PRIORITY && !strcmp(kind, "bpf")) {
		dm->seen_ours = true;
		dm->d->prog_id = prog_id;
		return MNL_CB_OK;
	}
	dm->d->filters++;
	if (!dm->seen_ours) {
		if (!dm->d->n_before) {
			int l = snprintf(dm->d->before, sizeof(dm->d->before), "tc filter pref %u handle 0x%x %s", prio,
					 tcm->tcm_handle, kind);
			if (prog_id && l > 0 && (size_t)l < sizeof(dm->d->before))
				snprintf(dm->d->before + l, sizeof(dm->d->before) - (size_t)l, " program id %u", prog_id);
		}
		dm->d->n_before++;
	}
	return MNL_CB_OK;
}

static int dump_filters(struct mnl_socket *nl, int ifindex, bool egress, struct bw_dp_uplink_dir *d)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct tcmsg *tcm;
	struct dump dm = { d, false };
	unsigned seq = (unsigned)time(NULL), port = mnl_socket_get_portid(nl);
	int r;

	nlh->nlmsg_type = RTM_GETTFILTER;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = ifindex;
	tcm->tcm_parent = TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	while ((r = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		r = mnl_cb_run(buf, (size_t)r, seq, port, filter_cb, &dm);
		if (r <= MNL_CB_STOP)
			break;
	}
	if (r < 0)
		return errno == ENODEV ? -ENODEV : -(errno ? errno : EIO);
	return 0;
}

/* tcx programs on the hook: they run before any clsact filter. 0 on kernels without tcx. */
static unsigned tcx_count(int ifindex, bool egress, uint32_t *first_id)
{
	__u32 ids[8];
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = (__u32)ifindex; /* target_ifindex for tcx: the same field */
	attr.query.attach_type = egress ? BW_ATTACH_TCX_EGRESS : BW_ATTACH_TCX_INGRESS;
	attr.query.prog_ids = (__u64)(unsigned long)ids;
	attr.query.prog_cnt = ARRAY_SIZE(ids);
	if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) < 0 && errno != ENOSPC)
		return 0;
	if (attr.query.prog_cnt && first_id)
		*first_id = ids[0];
	return attr.query.prog_cnt;
}

int bw_dp_uplink_check(const char *pin_dir, const char *name, struct bw_dp_uplink *u)
{
	static const char *const prog_names[2] = { "bw_egress", "bw_ingress" };
	struct mnl_socket *nl;
	int r = 0;

	memset(u, 0, sizeof(*u));
	snprintf(u->name, sizeof(u->name), "%s", name);
	if (!(u->ifindex = (int)if_nametoindex(name))) {
		u->state = BW_UPLINK_MISSING;
		return 0;
	}
	if (!(nl = mnl_socket_open(NETLINK_ROUTE)))
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	u->state = BW_UPLINK_ENFORCED;
	for (int i = 0; i < 2; i++) {
		struct bw_dp_uplink_dir *d = &u->dir[i];
		uint32_t want = pinned_prog_id(pin_dir, prog_names[i]), tcx_id = 0;
		enum bw_uplink_state s = BW_UPLINK_ENFORCED;

		if ((r = dump_filters(nl, u->ifindex, i == 0, d)) < 0) {
			if (r == -ENODEV) { /* gone between the name lookup and the dump */
				u->state = BW_UPLINK_MISSING;
				r = 0;
			}
			goto out;
		}
		d->tcx = tcx_count(u->ifindex, i == 0, &tcx_id);
		if (d->tcx && !d->n_before)
			snprintf(d->before, sizeof(d->before), "tcx program id %u", tcx_id);
		d->n_before += d->tcx;
		if (!d->prog_id)
			s = BW_UPLINK_NOT_ATTACHED;
		else if (!want || d->prog_id != want)
			s = BW_UPLINK_NOT_OURS;
		else if (d->n_before)
			s = BW_UPLINK_PRECEDED;
		d->state = s;
		/* The worst direction names the uplink's state. */
		if (u->state == BW_UPLINK_ENFORCED || (s != BW_UPLINK_ENFORCED && s < u->state))
			u->state = s;
	}
out:
	mnl_socket_close(nl);
	return r;
}

int bw_dp_uplinks_check(const char *pin_dir, const char *const *names, size_t n, struct bw_dp_uplink *out)
{
	int bad = 0, r;

	for (size_t i = 0; i < n; i++) {
		if ((r = bw_dp_uplink_check(pin_dir, names[i], &out[i])) < 0)
			return r;
		bad += out[i].state != BW_UPLINK_ENFORCED;
	}
	return bad;
}
