// SPDX-License-Identifier: GPL-2.0-only
/*
 * Is enforcement complete on this node? Shared by `bulwark status`, `net status` and `datapath
 * status`, so that the three agree: every uplink has bulwark's filters, running the pinned
 * programs, with nothing before them. The uplinks come from the configuration; without one, from
 * the devices our filters are on (none at all is "not enforced").
 */
#include <errno.h>
#include <string.h>
#include <json-c/json.h>
#include "cli/cli.h"
#include "datapath/datapath.h"

static int code_of(enum bw_uplink_state s)
{
	switch (s) {
	case BW_UPLINK_ENFORCED: return BW_EXIT_OK;
	case BW_UPLINK_PRECEDED: return BW_EXIT_NOT_FINAL;
	default: return BW_EXIT_NOT_ENFORCED;
	}
}

/* The worse of two status codes: not enforced (3) is worse than every other degraded state. */
int bw_cli_worse(int a, int b)
{
	if (a == BW_EXIT_OK)
		return b;
	if (b == BW_EXIT_OK)
		return a;
	return a < b ? a : b;
}

static struct json_object *dir_json(const struct bw_dp_uplink_dir *d)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "state", json_object_new_string(bw_dp_uplink_state_name(d->state)));
	json_object_object_add(e, "prog_id", json_object_new_int64(d->prog_id));
	json_object_object_add(e, "before", json_object_new_int(d->n_before));
	json_object_object_add(e, "tcx_programs", json_object_new_int(d->tcx));
	if (d->n_before)
		json_object_object_add(e, "first_before", json_object_new_string(d->before));
	return e;
}

int bw_cli_enforcement(const char *pin_dir, const char *const *uplinks, size_t n, struct json_object *j,
		       FILE *text)
{
	struct bw_dp_attachment att[64];
	const char *names[64];
	struct bw_dp_uplink u;
	struct bw_dp *dp = NULL;
	struct json_object *arr = j ? json_object_new_array() : NULL;
	int code = BW_EXIT_OK, r;
	bool pinned;

	pinned = bw_dp_open(pin_dir, &dp) == 0;
	bw_dp_close(dp);
	if (!uplinks || !n) {
		int k = bw_dp_attachments(att, ARRAY_SIZE(att));

		for (int i = 0; i < k; i++)
			names[i] = att[i].ifname;
		n = k > 0 ? (size_t)k : 0;
		uplinks = names;
		if (!n)
			code = BW_EXIT_NOT_ENFORCED;
	}
	if (!pinned)
		code = BW_EXIT_NOT_ENFORCED;
	if (text && !pinned)
		fprintf(text, "datapath: NOT ENFORCED: no datapath pinned under %s\n", bw_pin_dir(pin_dir));
	else if (text && !n)
		fprintf(text, "datapath: NOT ENFORCED: bulwark's filters are on no device\n");
	for (size_t i = 0; i < n && i < 64; i++) {
		if ((r = bw_dp_uplink_check(pin_dir, uplinks[i], &u)) < 0) {
			if (text)
				fprintf(text, "uplink %s: cannot check: %s\n", uplinks[i], strerror(-r));
			code = bw_cli_worse(code, BW_EXIT_NOT_ENFORCED);
			continue;
		}
		code = bw_cli_worse(code, code_of(u.state));
		if (arr) {
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "device", json_object_new_string(u.name));
			json_object_object_add(e, "ifindex", json_object_new_int(u.ifindex));
			json_object_object_add(e, "enforced", json_object_new_boolean(u.state == BW_UPLINK_ENFORCED));
			json_object_object_add(e, "state", json_object_new_string(bw_dp_uplink_state_name(u.state)));
			json_object_object_add(e, "egress", dir_json(&u.dir[0]));
			json_object_object_add(e, "ingress", dir_json(&u.dir[1]));
			json_object_array_add(arr, e);
		}
		if (!text)
			continue;
		if (u.state == BW_UPLINK_ENFORCED) {
			fprintf(text, "uplink %s: enforced (egress prog %u, ingress prog %u)\n", u.name, u.dir[0].prog_id,
				u.dir[1].prog_id);
			continue;
		}
		fprintf(text, "uplink %s: NOT ENFORCED: %s", u.name, bw_dp_uplink_state_name(u.state));
		for (int d = 0; d < 2 && u.state != BW_UPLINK_MISSING; d++) {
			fprintf(text, "; %s %s", d ? "ingress" : "egress", bw_dp_uplink_state_name(u.dir[d].state));
			if (u.dir[d].n_before)
				fprintf(text, " (%s runs first)", u.dir[d].before);
		}
		fprintf(text, "\n");
	}
	if (j) {
		json_object_object_add(j, "uplinks", arr);
		json_object_object_add(j, "datapath_pinned", json_object_new_boolean(pinned));
		json_object_object_add(j, "enforced", json_object_new_boolean(code == BW_EXIT_OK));
	}
	return code;
}
