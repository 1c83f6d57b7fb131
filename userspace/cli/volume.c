// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark volume <verb> and bulwark statedisk open: encrypted volumes for CSI node plugins and
 * the node's state disk (storage/README.md). Failures exit with the CSI (gRPC) code's number and
 * print a message (with --json also {"error":..., "code":...} on stdout).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "bulwark/storage.h"
#include "cli/cli.h"
#include "common/common.h"
#include "kbs/kbs.h"

#define PROGRESS_EVERY (8ull << 20)

struct opts {
	const char *id, *device, *key_file, *name;
	bool integrity, json, progress_started;
	int lock_timeout_ms;
	uint64_t last_progress;
	struct bw_kbs_client_opts kbs; /* --key-service URL --attester NAME [--ca --tcti --ak-handle] */
	const char *node;              /* statedisk: resource bulwark/statedisk/<node> */
	char resource_prefix[32];
};

/* The key source options: --key-file, or the key service and its attester. */
#define KEY_OPTS "key-file key-service attester ca tcti ak-handle"

/* The options in accepts (bw_cli_getopt) of the one table every volume and statedisk verb shares. */
static int parse(int argc, char **argv, struct opts *o, const char *area, const char *accepts)
{
	static const struct option all[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "device", required_argument, NULL, 'd' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "integrity", no_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'j' },
		{ "lock-timeout", required_argument, NULL, 't' },
		{ "key-service", required_argument, NULL, 'S' },
		{ "attester", required_argument, NULL, 'a' },
		{ "ca", required_argument, NULL, 'C' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "ak-handle", required_argument, NULL, 'H' },
		{ "node", required_argument, NULL, 'N' },
		{ 0 },
	};
	char *end, what[64];
	int c;

	snprintf(what, sizeof(what), "%s %s", area, argv[0]);
	memset(o, 0, sizeof(*o));
	o->lock_timeout_ms = -1;
	o->kbs.attester = "tpm";
	o->kbs.aopts.ak_handle = 0x81010002;
	o->kbs.log = bw_log_hook; /* handshake retries, at debug level */
	optind = 1;
	while ((c = bw_cli_getopt(argc, argv, all, accepts, what)) != -1) {
		switch (c) {
		case 'i': o->id = optarg; break;
		case 'd': o->device = optarg; break;
		case 'k': o->key_file = optarg; break;
		case 'I': o->integrity = true; break;
		case 'S': o->kbs.url = optarg; break;
		case 'a': o->kbs.attester = optarg; break;
		case 'C': o->kbs.ca_file = optarg; break;
		case 'T': o->kbs.aopts.tcti = optarg; break;
		case 'H': o->kbs.aopts.ak_handle = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': o->node = optarg; break;
		case 'j': o->json = true; break;
		case 't':
			o->lock_timeout_ms = (int)(strtod(optarg, &end) * 1000);
			if (*end || end == optarg || o->lock_timeout_ms < 0)
				return -EINVAL;
			break;
		default: return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

/* Failures print a message (and a JSON object) and exit with the CSI code's number. */
static int fail(const struct opts *o, int r, const char *msg)
{
	enum bw_vol_code c = bw_vol_code(r);

	if (o->json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "error", json_object_new_string(msg));
		json_object_object_add(j, "code", json_object_new_string(bw_vol_code_name(c)));
		bw_cli_print_json(j);
	}
	fprintf(stderr, "bulwark: %s (%s)\n", msg, bw_vol_code_name(c));
	return c;
}

static int usage(const char *u)
{
	return bw_cli_error(bw_cli_json, BW_EXIT_USAGE, "usage: bulwark %s", u);
}

/* Progress lines on stderr (JSON lines with --json): where the wipe starts (0, or where a resumed
 * one picks up), then about every 8 MiB, and at the end. */
static int progress(uint64_t done, uint64_t total, void *ctx)
{
	struct opts *o = ctx;

	if (o->progress_started && done - o->last_progress < PROGRESS_EVERY && done != total)
		return 0;
	o->progress_started = true;
	o->last_progress = done;
	if (o->json)
		fprintf(stderr, "{\"wipe_done\":%" PRIu64 ",\"wipe_total\":%" PRIu64 "}\n", done, total);
	else
		fprintf(stderr, "bulwark: integrity wipe %" PRIu64 "/%" PRIu64 " MiB\n", done >> 20, total >> 20);
	return 0;
}

/* The attested key service as key source: bulwark/volume/<id>, or bulwark/statedisk/<node>. */
static int service_get(void *ctx, const char *id, uint8_t *key, char *err, size_t len)
{
	const struct opts *o = ctx;
	char path[300];

	snprintf(path, sizeof(path), "%s/%s", o->resource_prefix, o->node ? o->node : id);
	if (!bw_kbs_resource_path_valid(path)) {
		snprintf(err, len, "'%s' cannot name a key-service resource (only [A-Za-z0-9._-])", o->node ? o->node : id);
		return -EINVAL;
	}
	return bw_kbs_fetch_key(&o->kbs, path, key, BW_VOL_KEY_LEN, err, len);
}

/* The key source: --key-file, or --key-service URL --attester NAME (exactly one). */
static int key_source(struct opts *o, struct bw_vol_key_source *ks)
{
	if (!!o->key_file == !!o->kbs.url)
		return -EINVAL;
	if (o->key_file) {
		bw_vol_key_file_source(ks, o->key_file);
		return 0;
	}
	if (!o->resource_prefix[0])
		strcpy(o->resource_prefix, "bulwark/volume");
	*ks = (struct bw_vol_key_source){ .name = "key service", .get = service_get, .ctx = o };
	return 0;
}

static void vol_opts(struct opts *o, const struct bw_vol_key_source *ks, struct bw_vol_opts *vo)
{
	*vo = (struct bw_vol_opts){ .id = o->id, .device = o->device, .integrity = o->integrity, .keys = ks,
				    .progress = progress, .progress_ctx = o, .lock_timeout_ms = o->lock_timeout_ms };
}

static int print_path(const struct opts *o, const char *path)
{
	if (o->json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "path", json_object_new_string(path));
		bw_cli_print_json(j);
	} else {
		printf("%s\n", path);
	}
	return 0;
}

#define KEY_USAGE "(--key-file FILE | --key-service URL --attester NAME [--ca FILE] [--tcti T] [--ak-handle H])"
#define STAGE_USAGE "volume stage --id ID --device DEV " KEY_USAGE " [--integrity] [--lock-timeout S] [--json]"
static int cmd_stage(int argc, char **argv)
{
	struct bw_vol_key_source ks;
	struct bw_vol_opts vo;
	struct opts o;
	char path[128], err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "volume", "id device " KEY_OPTS " integrity lock-timeout json") < 0 || !o.id || !o.device || key_source(&o, &ks) < 0)
		return usage(STAGE_USAGE);
	vol_opts(&o, &ks, &vo);
	if ((r = bw_vol_stage(&vo, path, sizeof(path), err, sizeof(err))) < 0)
		return fail(&o, r, err);
	return print_path(&o, path);
}

#define FORMAT_USAGE "volume format --id ID --device DEV " KEY_USAGE " [--integrity] [--json]"
static int cmd_format(int argc, char **argv)
{
	struct bw_vol_key_source ks;
	struct bw_vol_opts vo;
	struct opts o;
	char err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "volume", "id device " KEY_OPTS " integrity json") < 0 || !o.id || !o.device || key_source(&o, &ks) < 0)
		return usage(FORMAT_USAGE);
	vol_opts(&o, &ks, &vo);
	if ((r = bw_vol_format(&vo, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{}\n");
	return 0;
}

static int cmd_unstage(int argc, char **argv)
{
	struct bw_vol_opts vo;
	struct opts o;
	char err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "volume", "id lock-timeout json") < 0 || !o.id)
		return usage("volume unstage --id ID [--lock-timeout S] [--json]");
	vol_opts(&o, NULL, &vo);
	if ((r = bw_vol_unstage(&vo, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{}\n");
	return 0;
}

static int cmd_expand(int argc, char **argv)
{
	struct bw_vol_key_source ks;
	struct bw_vol_opts vo;
	struct opts o;
	uint64_t size = 0;
	char err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "volume", "id device " KEY_OPTS " json") < 0 || !o.id || !o.device || key_source(&o, &ks) < 0)
		return usage("volume expand --id ID --device DEV " KEY_USAGE " [--json]");
	vol_opts(&o, &ks, &vo);
	if ((r = bw_vol_expand(&vo, &size, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{\"size_bytes\":%" PRIu64 "}\n", size);
	else
		printf("%" PRIu64 "\n", size);
	return 0;
}

static struct json_object *status_json(const char *id, const struct bw_vol_status *st)
{
	struct json_object *j = json_object_new_object();

	if (id || st->id[0])
		json_object_object_add(j, "id", json_object_new_string(id ?: st->id));
	json_object_object_add(j, "name", json_object_new_string(st->name));
	json_object_object_add(j, "path", json_object_new_string(st->path));
	json_object_object_add(j, "active", json_object_new_boolean(st->active));
	if (!st->active)
		return j;
	json_object_object_add(j, "size_bytes", json_object_new_uint64(st->size_bytes));
	json_object_object_add(j, "cipher", json_object_new_string(st->cipher));
	json_object_object_add(j, "sector_size", json_object_new_int64(st->sector_size));
	json_object_object_add(j, "integrity", json_object_new_boolean(st->integrity));
	if (st->wipe) /* left by a killed integrity wipe; unstage --id removes it */
		json_object_object_add(j, "wipe", json_object_new_boolean(true));
	json_object_object_add(j, "backing_device", json_object_new_string(st->backing));
	json_object_object_add(j, "table", json_object_new_string(st->table));
	json_object_object_add(j, "dm_uuid", json_object_new_string(st->dm_uuid));
	return j;
}

static void status_text(const char *id, const struct bw_vol_status *st)
{
	if (!st->active) {
		printf("%s: not staged\n", id ?: st->name);
		return;
	}
	printf("%s: %s, %" PRIu64 " bytes, %s, %u-byte sectors, integrity %s, on %s%s\n",
	       id ?: st->id[0] ? st->id : st->name, st->path, st->size_bytes, st->cipher, st->sector_size,
	       st->integrity ? "hmac(sha256)" : "off", st->backing,
	       st->wipe ? " (left by an interrupted integrity wipe: unstage the volume to remove it)" : "");
}

static int status_all(const struct opts *o)
{
	char names[256][64], err[BW_ERR_LEN];
	struct json_object *arr = json_object_new_array();
	struct bw_vol_status st;
	size_t n;
	int r;

	if ((r = bw_vol_list(names, 256, &n)) < 0) {
		json_object_put(arr);
		return fail(o, r, "listing device-mapper devices failed");
	}
	for (size_t i = 0; i < n; i++) {
		if (bw_vol_status(NULL, names[i], &st, err, sizeof(err)) < 0)
			continue;
		if (o->json)
			json_object_array_add(arr, status_json(NULL, &st));
		else
			status_text(NULL, &st);
	}
	if (o->json)
		bw_cli_print_json(arr);
	else
		json_object_put(arr);
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	struct bw_vol_status st;
	struct opts o;
	char err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "volume", "id json") < 0)
		return usage("volume status [--id ID] [--json]");
	if (!o.id)
		return status_all(&o);
	if ((r = bw_vol_status(o.id, NULL, &st, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		bw_cli_print_json(status_json(o.id, &st));
	else
		status_text(o.id, &st);
	return 0;
}

static const struct bw_cli_verb verbs[] = {
	{ "stage", "NodeStageVolume: format a blank device or open a validated one (idempotent)", cmd_stage, STAGE_USAGE + 13 },
	{ "unstage", "NodeUnstageVolume: close the volume (idempotent)", cmd_unstage, "--id ID [--lock-timeout S] [--json]" },
	{ "expand", "NodeExpandVolume: grow a staged volume without integrity to its device", cmd_expand, "--id ID --device DEV " KEY_USAGE " [--json]" },
	{ "status", "mapping, size, cipher, integrity, backing device [--id ID] [--json]", cmd_status, "[--id ID] [--json]" },
	{ "format", "format a blank device only (wipes integrity volumes), leave it closed", cmd_format, FORMAT_USAGE + 14 },
	{ 0 },
};

const struct bw_cli_area bw_cli_volume = { "volume", "encrypted volumes for CSI (dm-crypt + dm-integrity)", verbs,
					    NULL, true };

static int cmd_statedisk_open(int argc, char **argv)
{
	struct bw_vol_key_source ks;
	struct bw_vol_opts vo;
	struct opts o;
	char path[128], err[BW_ERR_LEN], host[65] = "";
	int r = parse(argc, argv, &o, "statedisk", "device " KEY_OPTS " node id json");

	/* The state disk's key is the node's: bulwark/statedisk/<--node, default the host name>. */
	if (r == 0 && o.kbs.url) {
		strcpy(o.resource_prefix, "bulwark/statedisk");
		if (!o.node && gethostname(host, sizeof(host) - 1) == 0)
			o.node = host;
	}
	if (r < 0 || !o.device || key_source(&o, &ks) < 0)
		return usage("statedisk open --device DEV (--key-file FILE | --key-service URL --attester NAME\n"
			     "         [--ca FILE] [--tcti T] [--ak-handle H] [--node NAME]) [--id ID] [--json]");
	vol_opts(&o, &ks, &vo);
	if ((r = bw_statedisk_open(&vo, path, sizeof(path), err, sizeof(err))) < 0)
		return fail(&o, r, err);
	return print_path(&o, path);
}

static int cmd_statedisk_close(int argc, char **argv)
{
	struct bw_vol_opts vo;
	struct opts o;
	char err[BW_ERR_LEN];
	int r;

	if (parse(argc, argv, &o, "statedisk", "json") < 0)
		return usage("statedisk close [--json]");
	vol_opts(&o, NULL, &vo);
	vo.id = BW_STATEDISK_ID;
	vo.name = BW_STATEDISK_NAME;
	if ((r = bw_vol_unstage(&vo, err, sizeof(err))) < 0)
		return fail(&o, r, err);
	if (o.json)
		printf("{}\n");
	return 0;
}

static const struct bw_cli_verb statedisk_verbs[] = {
	{ "open", "first boot: format with integrity; later boots: open (resumes an interrupted setup)", cmd_statedisk_open,
	  "--device DEV (--key-file FILE | --key-service URL --attester NAME [--ca FILE] [--tcti T] [--ak-handle H] "
	  "[--node NAME]) [--id ID] [--json]" },
	{ "close", "close the state disk (idempotent)", cmd_statedisk_close, "[--json]" },
	{ 0 },
};

const struct bw_cli_area bw_cli_statedisk = { "statedisk", "the node's encrypted, authenticated state disk",
					       statedisk_verbs, NULL, true };
