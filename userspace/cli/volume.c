// SPDX-License-Identifier: GPL-2.0-only
/* bulwark volume <verb>: encrypted volumes for CSI node plugins (storage/README.md). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <json-c/json.h>
#include "bulwark/storage.h"
#include "cli/cli.h"
#include "common/common.h"

struct opts {
	const char *id, *device, *key_file;
	bool integrity, json;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option all[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "device", required_argument, NULL, 'd' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "integrity", no_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "", all, NULL)) != -1) {
		switch (c) {
		case 'i': o->id = optarg; break;
		case 'd': o->device = optarg; break;
		case 'k': o->key_file = optarg; break;
		case 'I': o->integrity = true; break;
		case 'j': o->json = true; break;
		default: return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

/* Failures print a message (or a JSON object) and exit with the CSI code's number. */
static int fail(const struct opts *o, int r, const char *msg)
{
	enum bw_vol_code c = bw_vol_code(r);

	if (o->json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "error", json_object_new_string(msg));
		json_object_object_add(j, "code", json_object_new_string(bw_vol_code_name(c)));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	}
	fprintf(stderr, "bulwark: %s (%s)\n", msg, bw_vol_code_name(c));
	return c;
}

static int progress(uint64_t done, uint64_t total, void *ctx)
{
	const struct opts *o = ctx;
	static uint64_t last;

	if (done - last < (64ull << 20) && done != total)
		return 0;
	last = done;
	if (o->json)
		fprintf(stderr, "{\"wipe_done\":%llu,\"wipe_total\":%llu}\n", (unsigned long long)done, (unsigned long long)total);
	else
		fprintf(stderr, "bulwark: integrity wipe %llu/%llu MiB\n", (unsigned long long)(done >> 20),
			(unsigned long long)(total >> 20));
	return 0;
}

static int cmd_stage(int argc, char **argv)
{
	struct opts o;
	_cleanup_secret_ struct bw_secret key = { 0 };
	char path[128], err[512];
	int r;

	if (parse(argc, argv, &o) < 0 || !o.id || !o.device || !o.key_file) {
		fprintf(stderr, "usage: bulwark volume stage --id ID --device DEV --key-file FILE [--integrity] [--json]\n");
		return BW_EXIT_USAGE;
	}
	r = bw_read_key_file(o.key_file, BW_VOL_KEY_LEN, &key);
	if (r < 0) {
		snprintf(err, sizeof(err), "key file %s: %s", o.key_file,
			 r == -EPERM ? "must be owned by us and mode 0600 (no group/other access)"
			 : r == -EINVAL ? "must be a regular file of exactly 32 bytes" : strerror(-r));
		return fail(&o, r == -EPERM ? -EINVAL : r, err);
	}
	struct bw_vol_stage_opts so = { o.id, o.device, o.integrity, key.data, progress, &o };
	r = bw_vol_stage(&so, path, sizeof(path), err, sizeof(err));
	if (r < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{\"path\":\"%s\"}\n", path);
	else
		printf("%s\n", path);
	return 0;
}

static int cmd_unstage(int argc, char **argv)
{
	struct opts o;
	char err[512];
	int r;

	if (parse(argc, argv, &o) < 0 || !o.id) {
		fprintf(stderr, "usage: bulwark volume unstage --id ID [--json]\n");
		return BW_EXIT_USAGE;
	}
	if ((r = bw_vol_unstage(o.id, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{}\n");
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct bw_vol_status st;
	char err[512];
	int r;

	if (parse(argc, argv, &o) < 0 || !o.id) {
		fprintf(stderr, "usage: bulwark volume status --id ID [--json]\n");
		return BW_EXIT_USAGE;
	}
	if ((r = bw_vol_status(o.id, &st, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "id", json_object_new_string(o.id));
		json_object_object_add(j, "name", json_object_new_string(st.name));
		json_object_object_add(j, "path", json_object_new_string(st.path));
		json_object_object_add(j, "active", json_object_new_boolean(st.active));
		if (st.active) {
			json_object_object_add(j, "size_bytes", json_object_new_uint64(st.size_bytes));
			json_object_object_add(j, "cipher", json_object_new_string(st.cipher));
			json_object_object_add(j, "sector_size", json_object_new_int64(st.sector_size));
			json_object_object_add(j, "integrity", json_object_new_boolean(st.integrity));
			json_object_object_add(j, "integrity_mismatches", json_object_new_uint64(st.integrity_mismatches));
			json_object_object_add(j, "backing_device", json_object_new_string(st.backing));
		}
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (!st.active) {
		printf("%s: not staged\n", o.id);
	} else {
		printf("%s: %s, %llu bytes, %s, %u-byte sectors, integrity %s (%llu mismatches), on %s\n", o.id, st.path,
		       (unsigned long long)st.size_bytes, st.cipher, st.sector_size, st.integrity ? "hmac(sha256)" : "off",
		       (unsigned long long)st.integrity_mismatches, st.backing);
	}
	return 0;
}

static const struct bw_cli_verb verbs[] = {
	{ "stage", "NodeStage: format a blank device or open a validated one: --id --device --key-file [--integrity]", cmd_stage },
	{ "unstage", "NodeUnstage: close the volume (idempotent): --id", cmd_unstage },
	{ "status", "mapping, size, cipher, integrity, backing device: --id [--json]", cmd_status },
	{ 0 },
};

const struct bw_cli_area bw_cli_volume = { "volume", "encrypted volumes for CSI (dm-crypt + dm-integrity)", verbs };
