// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark-csi: the Identity and Node services. Requests are decoded with protobuf-c, checked
 * field by field (INVALID_ARGUMENT names the field), and mapped onto the storage library:
 *
 *   NodeStageVolume    bw_vol_stage on volume_context["device"]; mount access: mkfs on first use
 *                      (never over anything blkid recognises, never over non-zero data), mount at
 *                      the staging path
 *   NodePublishVolume  bind mount of the staging mount (mount) or of the mapped device node onto a
 *                      file (block); read-only when asked
 *   NodeUnpublish/Unstage  unmount, remove what publish created, bw_vol_unstage
 *   NodeExpandVolume   bw_vol_expand + resize2fs / xfs_growfs (integrity: FAILED_PRECONDITION)
 *
 * All of them are idempotent and stateless across restarts (mountinfo and device-mapper are the
 * truth); the one file written, <state dir>/<mapping>.json, records what stage used (device, key
 * source, no key) for NodeExpandVolume, whose request carries neither. Keys come from the
 * node-stage secrets ("key": base64 or hex of 32 bytes) or the attested key service (resource
 * bulwark/volume/<volume id>) and are never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include "bulwark/storage.h"
#include "common/common.h"
#include "csi/csi.h"
#include "csi/internal.h"
#include "kbs/kbs.h"
#include "userspace/csi/csi.pb-c.h"

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif

#define ZERO_CHECK (1u << 20)      /* mkfs only over a volume whose first MiB reads as zeros */
#define MAP_MAX 64                 /* entries in a request map */
#define STR_MAX 1024               /* map values, fs types, flags */

enum {                             /* gRPC status codes */
	OK = 0, CANCELLED = 1, INVALID_ARGUMENT = 3, NOT_FOUND = 5, ALREADY_EXISTS = 6,
	FAILED_PRECONDITION = 9, ABORTED = 10, OUT_OF_RANGE = 11, UNIMPLEMENTED = 12, INTERNAL = 13,
};

/* One call: the answer's bytes and the status message. */
struct call {
	const struct bw_csi_config *cfg;
	uint8_t *out;
	size_t outlen;
	char *msg;
	size_t msglen;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct call *x, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->msg, x->msglen, fmt, ap);
	va_end(ap);
	return code;
}

static int reply(struct call *x, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	x->out = malloc(n ? n : 1);
	if (!x->out)
		return fail(x, INTERNAL, "out of memory");
	x->outlen = protobuf_c_message_pack(m, x->out);
	return OK;
}

/* ---- request fields ---- */

/* Every generated map entry is { base, key, value }. */
struct kv {
	ProtobufCMessage base;
	char *key;
	char *value;
};

/* Last one wins, as in proto3 maps. */
static const char *map_get(size_t n, void *entries, const char *key)
{
	struct kv **e = entries;
	const char *v = NULL;

	for (size_t i = 0; i < n; i++)
		if (e[i]->key && !strcmp(e[i]->key, key))
			v = e[i]->value;
	return v;
}

static void map_wipe(size_t n, void *entries)
{
	struct kv **e = entries;

	for (size_t i = 0; i < n; i++)
		if (e[i]->value && e[i]->value[0])
			OPENSSL_cleanse(e[i]->value, strlen(e[i]->value));
}

static int check_maps(struct call *x, const char *name, size_t n, void *entries)
{
	struct kv **e = entries;

	if (n > MAP_MAX)
		return fail(x, INVALID_ARGUMENT, "%s: more than %d entries", name, MAP_MAX);
	for (size_t i = 0; i < n; i++)
		if (strlen(e[i]->key) > 256 || strlen(e[i]->value) > STR_MAX)
			return fail(x, INVALID_ARGUMENT, "%s: an entry is too long", name);
	return OK;
}

static int need_id(struct call *x, const char *id, char *name, size_t len)
{
	if (!id || !id[0])
		return fail(x, INVALID_ARGUMENT, "volume_id is required");
	if (bw_vol_name(id, name, len) < 0)
		return fail(x, INVALID_ARGUMENT, "volume_id must be 1-%d printable ASCII characters without spaces",
			    BW_VOL_ID_MAX);
	return OK;
}

/* An absolute, normalised path (no "." or ".." components, no "//"), shorter than PATH_MAX. */
static int need_path(struct call *x, const char *field, const char *p)
{
	if (!p || !p[0])
		return fail(x, INVALID_ARGUMENT, "%s is required", field);
	if (p[0] != '/' || strlen(p) >= PATH_MAX - 64)
		return fail(x, INVALID_ARGUMENT, "%s must be an absolute path", field);
	for (const char *c = p; *c; c++) {
		if ((unsigned char)*c < 0x20)
			return fail(x, INVALID_ARGUMENT, "%s holds a control character", field);
		if (c[0] == '/' && (c[1] == '/' || (c[1] == '.' && (c[2] == '/' || !c[2] ||
				     (c[2] == '.' && (c[3] == '/' || !c[3]))))))
			return fail(x, INVALID_ARGUMENT, "%s must be a normalised path (no '.', '..' or '//')", field);
	}
	return OK;
}

enum access { ACCESS_BLOCK, ACCESS_MOUNT };
struct cap {
	enum access access;
	bool reader_only;
	const char *fs_type;         /* mount: "ext4" (default) or "xfs" */
	char flags[STR_MAX];         /* mount: mount_flags joined with ',' */
};

static bool flag_ok(const char *f)
{
	static const char *const refused[] = { "bind", "rbind", "move", "remount", "make-", "X-", "x-", "helper",
					       "loop", "offset", "sizelimit", "owner", "user", "users", "group" };

	if (!f[0] || strlen(f) > 128 || strchr(f, ','))
		return false;
	for (const char *c = f; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == '"' || *c == '\'' || *c == '\\')
			return false;
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (!strncmp(f, refused[i], strlen(refused[i])))
			return false;
	return true;
}

static int need_cap(struct call *x, const Csi__V1__VolumeCapability *vc, struct cap *c)
{
	memset(c, 0, sizeof(*c));
	if (!vc)
		return fail(x, INVALID_ARGUMENT, "volume_capability is required");
	if (!vc->access_mode)
		return fail(x, INVALID_ARGUMENT, "volume_capability.access_mode is required");
	switch (vc->access_mode->mode) {
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER:
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER:
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER:
		break;
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY:
		c->reader_only = true;
		break;
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN:
		return fail(x, INVALID_ARGUMENT, "volume_capability.access_mode.mode is required");
	default:
		return fail(x, FAILED_PRECONDITION, "access mode %d: a bulwark volume is node-local (single node only)",
			    vc->access_mode->mode);
	}
	if (vc->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK) {
		c->access = ACCESS_BLOCK;
		return OK;
	}
	if (vc->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT || !vc->mount)
		return fail(x, INVALID_ARGUMENT, "volume_capability needs an access type (block or mount)");
	c->access = ACCESS_MOUNT;
	c->fs_type = vc->mount->fs_type[0] ? vc->mount->fs_type : "ext4";
	if (strcmp(c->fs_type, "ext4") && strcmp(c->fs_type, "xfs"))
		return fail(x, INVALID_ARGUMENT, "fs_type '%.32s' is not supported (ext4 or xfs)", c->fs_type);
	if (vc->mount->volume_mount_group[0])
		return fail(x, INVALID_ARGUMENT, "volume_mount_group is not supported (VOLUME_MOUNT_GROUP not offered)");
	if (vc->mount->n_mount_flags > 32)
		return fail(x, INVALID_ARGUMENT, "too many mount_flags");
	for (size_t i = 0; i < vc->mount->n_mount_flags; i++) {
		const char *f = vc->mount->mount_flags[i];
		if (!flag_ok(f))
			return fail(x, INVALID_ARGUMENT, "mount flag '%.64s' is not allowed", f);
		if (strlen(c->flags) + strlen(f) + 2 >= sizeof(c->flags))
			return fail(x, INVALID_ARGUMENT, "mount_flags too long");
		if (c->flags[0])
			strcat(c->flags, ",");
		strcat(c->flags, f);
	}
	return OK;
}

/* ---- volumes in flight: a second call for the same volume gets ABORTED (CSI "operation pending") ---- */

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static char busy[BW_CSI_MAX_CALLS * 4][64];

static int busy_enter(struct call *x, const char *name, const char *id)
{
	int r = -1;

	pthread_mutex_lock(&busy_lock);
	for (size_t i = 0; i < ARRAY_SIZE(busy); i++)
		if (!strcmp(busy[i], name)) {
			pthread_mutex_unlock(&busy_lock);
			return fail(x, ABORTED, "an operation on volume '%s' is in progress", id);
		}
	for (size_t i = 0; i < ARRAY_SIZE(busy) && r < 0; i++)
		if (!busy[i][0]) {
			snprintf(busy[i], sizeof(busy[i]), "%s", name);
			r = 0;
		}
	pthread_mutex_unlock(&busy_lock);
	return r < 0 ? fail(x, ABORTED, "too many operations in progress") : OK;
}

static void busy_leave(const char *name)
{
	pthread_mutex_lock(&busy_lock);
	for (size_t i = 0; i < ARRAY_SIZE(busy); i++)
		if (!strcmp(busy[i], name))
			busy[i][0] = 0;
	pthread_mutex_unlock(&busy_lock);
}

/* ---- keys ---- */

struct keysrc {
	const char *secret;          /* secrets["key"]: base64 or hex of 32 bytes */
	struct bw_kbs_client_opts kbs;
};

static int secret_key(const char *s, uint8_t *key, char *err, size_t len)
{
	size_t n = strlen(s);

	_Static_assert(BW_VOL_KEY_LEN == BW_KEY_LEN, "volume keys are 32-byte keys");
	/* Decoded straight into the caller's locked buffer, in constant time. */
	if (n == 2 * BW_VOL_KEY_LEN)
		return bw_hex_decode(s, key, BW_VOL_KEY_LEN) < 0 ? bw_errf(err, len, -EINVAL, "secret 'key' is not hex") : 0;
	if (n == BW_KEY_B64_LEN)
		return bw_key_from_base64(s, key) < 0 ? bw_errf(err, len, -EINVAL, "secret 'key' is not valid base64") : 0;
	return bw_errf(err, len, -EINVAL, "secret 'key' must hold 32 bytes as base64 (44 characters) or hex (64)");
}

static int key_get(void *ctx, const char *id, uint8_t *key, char *err, size_t len)
{
	const struct keysrc *k = ctx;
	char path[300];

	if (k->secret)
		return secret_key(k->secret, key, err, len);
	snprintf(path, sizeof(path), "bulwark/volume/%s", id);
	if (!bw_kbs_resource_path_valid(path))
		return bw_errf(err, len, -EINVAL, "volume id '%s' cannot name a key-service resource (only [A-Za-z0-9._-])", id);
	return bw_kbs_fetch_key(&k->kbs, path, key, BW_VOL_KEY_LEN, err, len);
}

/* Secrets first; else the key service from the volume's attributes, else the plugin's defaults. */
static int key_source(struct call *x, const char *secret, const char *url, const char *attester, const char *ca,
		      const char *tcti, struct keysrc *k, struct bw_vol_key_source *ks)
{
	memset(k, 0, sizeof(*k));
	if (secret) {
		k->secret = secret;
		*ks = (struct bw_vol_key_source){ .name = "node-stage secret", .get = key_get, .ctx = k };
		return OK;
	}
	k->kbs.url = url && url[0] ? url : x->cfg->key_service;
	k->kbs.attester = attester && attester[0] ? attester : x->cfg->attester ? x->cfg->attester : "tpm";
	k->kbs.ca_file = ca && ca[0] ? ca : x->cfg->ca_file;
	k->kbs.aopts.tcti = tcti && tcti[0] ? tcti : x->cfg->tcti;
	k->kbs.aopts.ak_handle = x->cfg->ak_handle ? x->cfg->ak_handle : 0x81010002;
	k->kbs.log = bw_log_hook; /* handshake retries, at debug level */
	if (!k->kbs.url)
		return fail(x, INVALID_ARGUMENT, "no key: give secrets[\"key\"] (node-stage secret) or a key service "
			    "(volume attribute keyService or the plugin's --key-service)");
	if (strncmp(k->kbs.url, "https://", 8) || strlen(k->kbs.url) > 255)
		return fail(x, INVALID_ARGUMENT, "keyService must be an https:// URL");
	if (!bw_attester_find(k->kbs.attester))
		return fail(x, INVALID_ARGUMENT, "attester '%.32s' is unknown (%s)", k->kbs.attester, bw_attester_names());
	*ks = (struct bw_vol_key_source){ .name = "key service", .get = key_get, .ctx = k };
	return OK;
}

/* ---- the state file: what stage used, for expand ---- */

static void state_path(struct call *x, const char *name, char *p, size_t len)
{
	snprintf(p, len, "%s/%s.json", x->cfg->state_dir ? x->cfg->state_dir : BW_CSI_STATE_DIR, name);
}

static void state_save(struct call *x, const char *name, const char *id, const char *device, bool integrity,
		       const struct keysrc *k)
{
	struct json_object *j = json_object_new_object();
	char p[PATH_MAX], dir[PATH_MAX];
	const char *s;

	json_object_object_add(j, "volume_id", json_object_new_string(id));
	json_object_object_add(j, "device", json_object_new_string(device));
	json_object_object_add(j, "integrity", json_object_new_boolean(integrity));
	json_object_object_add(j, "key_source", json_object_new_string(k->secret ? "secret" : "key-service"));
	if (!k->secret) {
		json_object_object_add(j, "key_service", json_object_new_string(k->kbs.url));
		json_object_object_add(j, "attester", json_object_new_string(k->kbs.attester));
		if (k->kbs.ca_file)
			json_object_object_add(j, "ca", json_object_new_string(k->kbs.ca_file));
		if (k->kbs.aopts.tcti)
			json_object_object_add(j, "tcti", json_object_new_string(k->kbs.aopts.tcti));
	}
	s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	snprintf(dir, sizeof(dir), "%s", x->cfg->state_dir ? x->cfg->state_dir : BW_CSI_STATE_DIR);
	mkdir("/run/bulwark", 0700);
	mkdir(dir, 0700);
	state_path(x, name, p, sizeof(p));
	if (bw_write_file_atomic(p, s, strlen(s), 0600) < 0)
		bw_warn("csi: cannot record %s (NodeExpandVolume will not find the volume)", p);
	json_object_put(j);
}

static struct json_object *state_load(struct call *x, const char *name)
{
	char p[PATH_MAX], *text = NULL;
	size_t n;
	struct json_object *j;

	state_path(x, name, p, sizeof(p));
	if (bw_read_file(p, 16384, &text, &n) < 0)
		return NULL;
	j = json_tokener_parse(text);
	free(text);
	if (j && !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		j = NULL;
	}
	return j;
}

static const char *jstr(struct json_object *j, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(j, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* ---- helpers ---- */

/* Integrity wipe progress, logged about every 8 MiB (the wipe resumes after a crash). */
struct progress {
	const char *id;
	uint64_t last;
	bool started;
};

static int on_progress(uint64_t done, uint64_t total, void *ctx)
{
	struct progress *p = ctx;

	if (p->started && done - p->last < (8u << 20) && done != total)
		return 0;
	p->started = true;
	p->last = done;
	bw_info("csi: volume '%s': integrity wipe %" PRIu64 "/%" PRIu64 " MiB", p->id, done >> 20, total >> 20);
	return 0;
}

static void mapped_path(const char *name, char *p, size_t len)
{
	snprintf(p, len, "/dev/mapper/%s", name);
}

/* rdev of the mapped device; -ENOENT when the volume is not staged. */
static int mapped_dev(const char *name, dev_t *dev)
{
	char p[96];
	struct stat st;

	mapped_path(name, p, sizeof(p));
	if (stat(p, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	*dev = st.st_rdev;
	return 0;
}

static int lib_code(int r)
{
	return (int)bw_vol_code(r); /* the storage library's CSI codes are gRPC's numbers */
}

static int lock_ms(struct call *x)
{
	return x->cfg->lock_timeout_ms > 0 ? x->cfg->lock_timeout_ms : 10000;
}

/* ---- Identity ---- */

static int get_plugin_info(struct call *x, const ProtobufCMessage *in)
{
	Csi__V1__GetPluginInfoResponse r = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;

	(void)in;
	r.name = (char *)(x->cfg->driver_name ? x->cfg->driver_name : BW_CSI_DRIVER_NAME);
	r.vendor_version = (char *)BULWARK_VERSION;
	return reply(x, &r.base);
}

static int get_plugin_capabilities(struct call *x, const ProtobufCMessage *in)
{
	Csi__V1__GetPluginCapabilitiesResponse r = CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability c = CSI__V1__PLUGIN_CAPABILITY__INIT, *cs[] = { &c };
	Csi__V1__PluginCapability__VolumeExpansion ve = CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__INIT;

	(void)in;
	/* No CONTROLLER_SERVICE: a node-only plugin. Plain volumes grow while in use. */
	ve.type = CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__TYPE__ONLINE;
	c.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
	c.volume_expansion = &ve;
	r.n_capabilities = 1;
	r.capabilities = cs;
	return reply(x, &r.base);
}

static int probe(struct call *x, const ProtobufCMessage *in)
{
	Csi__V1__ProbeResponse r = CSI__V1__PROBE_RESPONSE__INIT;
	Google__Protobuf__BoolValue ready = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;

	(void)in;
	if (access("/dev/mapper/control", R_OK | W_OK) < 0)
		return fail(x, FAILED_PRECONDITION, "device-mapper is not available (/dev/mapper/control: %s)", strerror(errno));
	ready.value = true;
	r.ready = &ready;
	return reply(x, &r.base);
}

/* ---- Node ---- */

static int node_get_capabilities(struct call *x, const ProtobufCMessage *in)
{
	static const Csi__V1__NodeServiceCapability__RPC__Type types[] = {
		CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__STAGE_UNSTAGE_VOLUME,
		CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__EXPAND_VOLUME,
		CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS,
	};
	Csi__V1__NodeGetCapabilitiesResponse r = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__NodeServiceCapability c[3], *cs[3];
	Csi__V1__NodeServiceCapability__RPC rpc[3];

	(void)in;
	for (size_t i = 0; i < 3; i++) {
		csi__v1__node_service_capability__init(&c[i]);
		csi__v1__node_service_capability__rpc__init(&rpc[i]);
		rpc[i].type = types[i];
		c[i].type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
		c[i].rpc = &rpc[i];
		cs[i] = &c[i];
	}
	r.n_capabilities = 3;
	r.capabilities = cs;
	return reply(x, &r.base);
}

static int node_get_info(struct call *x, const ProtobufCMessage *in)
{
	Csi__V1__NodeGetInfoResponse r = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;

	(void)in;
	r.node_id = (char *)x->cfg->node_id;
	r.max_volumes_per_node = x->cfg->max_volumes > 0 ? x->cfg->max_volumes : 0;
	return reply(x, &r.base);
}

/* The block device named by the volume's attributes: an absolute path under /dev. */
static int stage_device(struct call *x, const Csi__V1__NodeStageVolumeRequest *q, const char **dev)
{
	struct stat st;

	*dev = map_get(q->n_volume_context, q->volume_context, "device");
	if (!*dev)
		*dev = map_get(q->n_publish_context, q->publish_context, "device");
	if (!*dev || !(*dev)[0])
		return fail(x, INVALID_ARGUMENT, "volume_context[\"device\"] is required (a /dev/disk/by-... path)");
	if (need_path(x, "volume_context[\"device\"]", *dev) != OK)
		return INVALID_ARGUMENT;
	if (strncmp(*dev, "/dev/", 5))
		return fail(x, INVALID_ARGUMENT, "device %.200s is not under /dev", *dev);
	if (stat(*dev, &st) < 0)
		return fail(x, NOT_FOUND, "volume '%s': device %.200s: %s", q->volume_id, *dev, strerror(errno));
	if (!S_ISBLK(st.st_mode))
		return fail(x, FAILED_PRECONDITION, "device %.200s is not a block device", *dev);
	return OK;
}

static int parse_bool(struct call *x, const char *name, const char *v, bool *out)
{
	*out = false;
	if (!v || !strcmp(v, "false") || !strcmp(v, ""))
		return OK;
	if (!strcmp(v, "true")) {
		*out = true;
		return OK;
	}
	return fail(x, INVALID_ARGUMENT, "volume_context[\"%s\"] must be \"true\" or \"false\"", name);
}

/* Mount access, after the volume is mapped: filesystem on first use, then mount at staging. */
static int stage_mount(struct call *x, const char *id, const char *dev, const struct cap *c, bool fresh,
		       bool integrity, const char *staging)
{
	enum csi_probe kind;
	char type[64], opts[STR_MAX + 8], why[BW_ERR_LEN] = "";
	int r;

	if ((r = csi_probe(dev, &kind, type, sizeof(type))) < 0)
		return fail(x, INTERNAL, "probing %s: %s", dev, strerror(-r));
	if (kind == CSI_PROBE_OTHER)
		return fail(x, FAILED_PRECONDITION, "volume '%s' holds %s, not a filesystem: refusing to format it", id, type);
	if (kind == CSI_PROBE_FS && strcmp(type, c->fs_type))
		return fail(x, FAILED_PRECONDITION, "volume '%s' holds %s, the capability asks for %s: not reformatting",
			    id, type, c->fs_type);
	if (kind == CSI_PROBE_NOTHING) {
		/* A plain volume formatted by this very call decrypts the old disk content to noise:
		 * clear its start, so a retry after a crash sees zeros too. */
		if (fresh && !integrity && (r = csi_zero_start(dev, ZERO_CHECK)) < 0)
			return fail(x, INTERNAL, "clearing the start of %s: %s", dev, strerror(-r));
		if ((r = csi_zeros(dev, ZERO_CHECK)) <= 0)
			return r < 0 ? fail(x, INTERNAL, "reading %s: %s", dev, strerror(-r))
				     : fail(x, FAILED_PRECONDITION, "volume '%s' holds data without a filesystem signature "
					    "(used as a block volume?): refusing to format it", id);
		char *ext4[] = { "mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
				 (char *)dev, NULL };
		char *xfs[] = { "mkfs.xfs", "-q", "-K", (char *)dev, NULL };
		if ((r = csi_run(strcmp(c->fs_type, "xfs") ? ext4 : xfs, why, sizeof(why))) != 0)
			return fail(x, INTERNAL, "making %s on volume '%s': %s", c->fs_type, id, why);
		bw_info("csi: volume '%s': made %s", id, c->fs_type);
	}
	snprintf(opts, sizeof(opts), "%s%s%s", c->reader_only ? "ro" : "", c->reader_only && c->flags[0] ? "," : "",
		 c->flags);
	if ((r = csi_mount(dev, staging, c->fs_type, opts, why, sizeof(why))) < 0)
		return fail(x, r == -EINVAL ? INVALID_ARGUMENT : INTERNAL, "%s", why);
	return OK;
}

static int stage_locked(struct call *x, const Csi__V1__NodeStageVolumeRequest *q, const char *name,
			const struct cap *c, const char *dev, bool integrity)
{
	const char *staging = q->staging_target_path;
	struct bw_vol_key_source ks;
	struct keysrc k;
	struct csi_mnt m;
	char path[128], err[BW_ERR_LEN] = "";
	enum csi_probe kind;
	dev_t mdev = 0;
	bool fresh;
	int r;

	if ((r = csi_mnt_at(staging, &m)) == -ENOENT) {
		if (mkdir(staging, 0750) < 0 && errno != EEXIST)
			return fail(x, INVALID_ARGUMENT, "staging_target_path: %s", strerror(errno));
		r = csi_mnt_at(staging, &m);
	}
	if (r < 0)
		return fail(x, INVALID_ARGUMENT, "staging_target_path: %s", strerror(-r));
	if (!S_ISDIR(m.mode))
		return fail(x, INVALID_ARGUMENT, "staging_target_path is not a directory");
	if (m.mounted) {
		/* Idempotent: our filesystem already mounted there with the same capability. */
		if (c->access == ACCESS_MOUNT && mapped_dev(name, &mdev) == 0 && m.st_dev == mdev) {
			char type[64] = "";
			mapped_path(name, path, sizeof(path));
			if (csi_probe(path, &kind, type, sizeof(type)) == 0 && !strcmp(type, c->fs_type) &&
			    m.ro == c->reader_only)
				return OK;
		}
		return fail(x, ALREADY_EXISTS, "volume '%s': staging_target_path already holds a mount incompatible "
			    "with the capability", q->volume_id);
	}
	/* What the device held before: a blank device gets formatted by this call. */
	fresh = csi_probe(dev, &kind, NULL, 0) == 0 && kind == CSI_PROBE_NOTHING && csi_zeros(dev, 65536) == 1;

	if ((r = key_source(x, map_get(q->n_secrets, q->secrets, "key"),
			    map_get(q->n_volume_context, q->volume_context, "keyService"),
			    map_get(q->n_volume_context, q->volume_context, "attester"),
			    map_get(q->n_volume_context, q->volume_context, "keyServiceCA"),
			    map_get(q->n_volume_context, q->volume_context, "tcti"), &k, &ks)) != OK)
		return r;
	struct progress pr = { .id = q->volume_id };
	struct bw_vol_opts o = { .id = q->volume_id, .device = dev, .integrity = integrity, .keys = &ks,
				 .lock_timeout_ms = lock_ms(x), .progress = on_progress, .progress_ctx = &pr };
	if ((r = bw_vol_stage(&o, path, sizeof(path), err, sizeof(err))) < 0)
		return fail(x, lib_code(r), "%s", err);
	state_save(x, name, q->volume_id, dev, integrity, &k);
	if (c->access == ACCESS_BLOCK)
		return OK;
	return stage_mount(x, q->volume_id, path, c, fresh, integrity, staging);
}

static int node_stage(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodeStageVolumeRequest *q = (const void *)in;
	Csi__V1__NodeStageVolumeResponse resp = CSI__V1__NODE_STAGE_VOLUME_RESPONSE__INIT;
	char name[64];
	const char *dev;
	struct cap c;
	bool integrity;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "staging_target_path", q->staging_target_path)) != OK ||
	    (r = need_cap(x, q->volume_capability, &c)) != OK ||
	    (r = check_maps(x, "secrets", q->n_secrets, q->secrets)) != OK ||
	    (r = check_maps(x, "volume_context", q->n_volume_context, q->volume_context)) != OK ||
	    (r = check_maps(x, "publish_context", q->n_publish_context, q->publish_context)) != OK ||
	    (r = parse_bool(x, "integrity", map_get(q->n_volume_context, q->volume_context, "integrity"), &integrity)) != OK ||
	    (r = stage_device(x, q, &dev)) != OK)
		return r;
	if ((r = busy_enter(x, name, q->volume_id)) != OK)
		return r;
	r = stage_locked(x, q, name, &c, dev, integrity);
	busy_leave(name);
	return r == OK ? reply(x, &resp.base) : r;
}

static int node_unstage(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodeUnstageVolumeRequest *q = (const void *)in;
	Csi__V1__NodeUnstageVolumeResponse resp = CSI__V1__NODE_UNSTAGE_VOLUME_RESPONSE__INIT;
	struct bw_vol_opts o = { .id = q->volume_id, .lock_timeout_ms = lock_ms(x) };
	char name[64], err[BW_ERR_LEN] = "", sp[PATH_MAX];
	struct csi_mnt m;
	dev_t mdev;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "staging_target_path", q->staging_target_path)) != OK)
		return r;
	if ((r = busy_enter(x, name, q->volume_id)) != OK)
		return r;
	r = csi_mnt_at(q->staging_target_path, &m);
	if (r == 0 && m.mounted) {
		if (mapped_dev(name, &mdev) < 0 || m.st_dev != mdev) {
			r = fail(x, FAILED_PRECONDITION, "staging_target_path holds a mount that is not volume '%s'",
				 q->volume_id);
			goto out;
		}
		if (csi_umount(q->staging_target_path, err, sizeof(err)) < 0) {
			r = fail(x, INTERNAL, "%s", err);
			goto out;
		}
	} else if (r < 0 && r != -ENOENT) {
		r = fail(x, INVALID_ARGUMENT, "staging_target_path: %s", strerror(-r));
		goto out;
	}
	if ((r = bw_vol_unstage(&o, err, sizeof(err))) < 0) {
		r = fail(x, lib_code(r), "%s", err);
		goto out;
	}
	state_path(x, name, sp, sizeof(sp));
	unlink(sp);
	r = OK;
out:
	busy_leave(name);
	return r == OK ? reply(x, &resp.base) : r;
}

static int node_publish(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodePublishVolumeRequest *q = (const void *)in;
	Csi__V1__NodePublishVolumeResponse resp = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
	const char *target = q->target_path;
	char name[64], dev[96], why[BW_ERR_LEN] = "";
	struct csi_mnt m, sm;
	struct cap c;
	bool ro;
	dev_t mdev;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "target_path", target)) != OK ||
	    (r = need_cap(x, q->volume_capability, &c)) != OK)
		return r;
	if (!q->staging_target_path[0])
		return fail(x, FAILED_PRECONDITION, "staging_target_path is required (STAGE_UNSTAGE_VOLUME)");
	if ((r = need_path(x, "staging_target_path", q->staging_target_path)) != OK)
		return r;
	if (mapped_dev(name, &mdev) < 0)
		return fail(x, NOT_FOUND, "volume '%s' is not staged on this node", q->volume_id);
	mapped_path(name, dev, sizeof(dev));
	ro = q->readonly || c.reader_only;
	if ((r = busy_enter(x, name, q->volume_id)) != OK)
		return r;

	r = csi_mnt_at(target, &m);
	if (r == 0 && m.mounted) {
		bool ours = c.access == ACCESS_BLOCK ? S_ISBLK(m.mode) && m.st_rdev == mdev : m.st_dev == mdev;
		r = ours && m.ro == ro ? OK
			: fail(x, ALREADY_EXISTS, "target_path already holds a mount incompatible with this request");
		goto out;
	}
	if (r < 0 && r != -ENOENT) {
		r = fail(x, INVALID_ARGUMENT, "target_path: %s", strerror(-r));
		goto out;
	}
	if (c.access == ACCESS_MOUNT) {
		if (csi_mnt_at(q->staging_target_path, &sm) < 0 || !sm.mounted || sm.st_dev != mdev) {
			r = fail(x, FAILED_PRECONDITION, "volume '%s' is not staged at staging_target_path", q->volume_id);
			goto out;
		}
		if (r == -ENOENT && mkdir(target, 0750) < 0 && errno != EEXIST) {
			r = fail(x, errno == ENOENT ? NOT_FOUND : INTERNAL, "creating target_path: %s", strerror(errno));
			goto out;
		}
		r = csi_mount(q->staging_target_path, target, NULL, ro ? "bind,ro" : "bind", why, sizeof(why));
	} else {
		if (r == -ENOENT) {
			int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (fd < 0) {
				r = fail(x, errno == ENOENT ? NOT_FOUND : INTERNAL, "creating target_path: %s", strerror(errno));
				goto out;
			}
			close(fd);
		} else if (S_ISDIR(m.mode)) {
			r = fail(x, INVALID_ARGUMENT, "target_path is a directory; block volumes are published on a file");
			goto out;
		}
		r = csi_mount(dev, target, NULL, ro ? "bind,ro" : "bind", why, sizeof(why));
	}
	r = r < 0 ? fail(x, INTERNAL, "%s", why) : OK;
out:
	busy_leave(name);
	return r == OK ? reply(x, &resp.base) : r;
}

static int node_unpublish(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodeUnpublishVolumeRequest *q = (const void *)in;
	Csi__V1__NodeUnpublishVolumeResponse resp = CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
	char name[64], why[BW_ERR_LEN] = "";
	struct csi_mnt m;
	dev_t mdev = 0;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "target_path", q->target_path)) != OK)
		return r;
	if ((r = busy_enter(x, name, q->volume_id)) != OK)
		return r;
	r = csi_mnt_at(q->target_path, &m);
	if (r == -ENOENT) {
		r = OK;                  /* idempotent: already gone */
		goto out;
	}
	if (r < 0) {
		r = fail(x, INVALID_ARGUMENT, "target_path: %s", strerror(-r));
		goto out;
	}
	if (m.mounted) {
		bool have = mapped_dev(name, &mdev) == 0;
		if (!have || (m.st_dev != mdev && !(S_ISBLK(m.mode) && m.st_rdev == mdev))) {
			r = fail(x, NOT_FOUND, "target_path does not hold volume '%s'", q->volume_id);
			goto out;
		}
		if (csi_umount(q->target_path, why, sizeof(why)) < 0) {
			r = fail(x, INTERNAL, "%s", why);
			goto out;
		}
	}
	/* Remove what publish created: the directory (mount) or the file (block). */
	if ((S_ISDIR(m.mode) ? rmdir(q->target_path) : unlink(q->target_path)) < 0 && errno != ENOENT) {
		r = fail(x, INTERNAL, "removing target_path: %s", strerror(errno));
		goto out;
	}
	r = OK;
out:
	busy_leave(name);
	return r == OK ? reply(x, &resp.base) : r;
}

static int node_get_volume_stats(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodeGetVolumeStatsRequest *q = (const void *)in;
	Csi__V1__NodeGetVolumeStatsResponse resp = CSI__V1__NODE_GET_VOLUME_STATS_RESPONSE__INIT;
	Csi__V1__VolumeUsage u[2] = { CSI__V1__VOLUME_USAGE__INIT, CSI__V1__VOLUME_USAGE__INIT }, *us[2] = { &u[0], &u[1] };
	char name[64], dev[96];
	struct csi_mnt m;
	struct statvfs sv;
	dev_t mdev;
	uint64_t size;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "volume_path", q->volume_path)) != OK)
		return r;
	if (mapped_dev(name, &mdev) < 0)
		return fail(x, NOT_FOUND, "volume '%s' is not staged on this node", q->volume_id);
	if ((r = csi_mnt_at(q->volume_path, &m)) < 0)
		return fail(x, NOT_FOUND, "volume_path: %s", strerror(-r));
	resp.usage = us;
	if (S_ISBLK(m.mode) && m.st_rdev == mdev) {
		mapped_path(name, dev, sizeof(dev));
		if ((r = csi_dev_size(dev, &size)) < 0)
			return fail(x, INTERNAL, "size of %s: %s", dev, strerror(-r));
		u[0].total = (int64_t)size;
		u[0].unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
		resp.n_usage = 1;
		return reply(x, &resp.base);
	}
	if (!S_ISDIR(m.mode) || m.st_dev != mdev || statvfs(q->volume_path, &sv) < 0)
		return fail(x, NOT_FOUND, "volume '%s' is not at volume_path", q->volume_id);
	u[0].unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
	u[0].total = (int64_t)(sv.f_blocks * sv.f_frsize);
	u[0].available = (int64_t)(sv.f_bavail * sv.f_frsize);
	u[0].used = (int64_t)((sv.f_blocks - sv.f_bfree) * sv.f_frsize);
	u[1].unit = CSI__V1__VOLUME_USAGE__UNIT__INODES;
	u[1].total = (int64_t)sv.f_files;
	u[1].available = (int64_t)sv.f_favail;
	u[1].used = (int64_t)(sv.f_files - sv.f_ffree);
	resp.n_usage = 2;
	return reply(x, &resp.base);
}

static int expand_locked(struct call *x, const Csi__V1__NodeExpandVolumeRequest *q, const char *name, uint64_t *size)
{
	struct json_object *st = state_load(x, name), *v;
	struct bw_vol_key_source ks;
	struct keysrc k;
	char err[BW_ERR_LEN] = "", dev[96], why[BW_ERR_LEN] = "", type[64] = "";
	enum csi_probe kind;
	bool integrity;
	struct csi_mnt m;
	const char *grow_at;
	int r;

	if (!st)
		return fail(x, NOT_FOUND, "volume '%s' is not staged on this node", q->volume_id);
	integrity = json_object_object_get_ex(st, "integrity", &v) && json_object_get_boolean(v);
	if (integrity) {
		json_object_put(st);
		return fail(x, FAILED_PRECONDITION, "volume '%s' has integrity protection: it cannot be expanded "
			    "(dm-integrity cannot be resized); do not retry", q->volume_id);
	}
	const char *secret = map_get(q->n_secrets, q->secrets, "key");
	if (!secret && jstr(st, "key_source") && !strcmp(jstr(st, "key_source"), "secret"))
		r = fail(x, FAILED_PRECONDITION, "volume '%s' takes its key from a secret: give it to NodeExpandVolume "
			 "too (the PV's nodeExpandSecretRef)", q->volume_id);
	else
		r = key_source(x, secret, jstr(st, "key_service"), jstr(st, "attester"), jstr(st, "ca"), jstr(st, "tcti"),
			       &k, &ks);
	if (r != OK) {
		json_object_put(st);
		return r;
	}
	struct bw_vol_opts o = { .id = q->volume_id, .device = jstr(st, "device"), .keys = &ks,
				 .lock_timeout_ms = lock_ms(x) };
	r = bw_vol_expand(&o, size, err, sizeof(err));
	json_object_put(st);
	if (r < 0)
		return fail(x, lib_code(r), "%s", err);
	if (q->capacity_range && q->capacity_range->required_bytes > 0 && *size < (uint64_t)q->capacity_range->required_bytes)
		return fail(x, OUT_OF_RANGE, "the device gives %" PRIu64 " bytes, %" PRId64 " were required", *size,
			    q->capacity_range->required_bytes);
	/* Filesystem: grow it online (block access: nothing more to do). */
	mapped_path(name, dev, sizeof(dev));
	if (csi_probe(dev, &kind, type, sizeof(type)) < 0 || kind != CSI_PROBE_FS)
		return OK;
	if (!strcmp(type, "ext4")) {
		char *argv[] = { "resize2fs", dev, NULL };
		r = csi_run(argv, why, sizeof(why));
	} else if (!strcmp(type, "xfs")) {
		grow_at = q->staging_target_path[0] && csi_mnt_at(q->staging_target_path, &m) == 0 && m.mounted
				  ? q->staging_target_path : q->volume_path;
		char *argv[] = { "xfs_growfs", (char *)grow_at, NULL };
		r = csi_run(argv, why, sizeof(why));
	} else {
		return fail(x, FAILED_PRECONDITION, "volume '%s' holds %s, which bulwark-csi cannot grow", q->volume_id, type);
	}
	return r == 0 ? OK : fail(x, INTERNAL, "growing the filesystem of volume '%s': %s", q->volume_id, why);
}

static int node_expand(struct call *x, const ProtobufCMessage *in)
{
	const Csi__V1__NodeExpandVolumeRequest *q = (const void *)in;
	Csi__V1__NodeExpandVolumeResponse resp = CSI__V1__NODE_EXPAND_VOLUME_RESPONSE__INIT;
	char name[64];
	struct cap c;
	uint64_t size = 0;
	int r;

	if ((r = need_id(x, q->volume_id, name, sizeof(name))) != OK ||
	    (r = need_path(x, "volume_path", q->volume_path)) != OK ||
	    (r = check_maps(x, "secrets", q->n_secrets, q->secrets)) != OK)
		return r;
	if (q->volume_capability && (r = need_cap(x, q->volume_capability, &c)) != OK)
		return r == FAILED_PRECONDITION ? INVALID_ARGUMENT : r;
	if (q->capacity_range && (q->capacity_range->required_bytes < 0 || q->capacity_range->limit_bytes < 0))
		return fail(x, OUT_OF_RANGE, "capacity_range must not be negative");
	if ((r = busy_enter(x, name, q->volume_id)) != OK)
		return r;
	r = expand_locked(x, q, name, &size);
	busy_leave(name);
	if (r != OK)
		return r;
	resp.capacity_bytes = (int64_t)size;
	return reply(x, &resp.base);
}

/* ---- dispatch ---- */

static const char *code_name(int code)
{
	static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
					     "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
					     "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
					     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };

	return code >= 0 && code < (int)ARRAY_SIZE(names) ? names[code] : "UNKNOWN";
}

struct rpc {
	const char *method;
	const ProtobufCMessageDescriptor *in;
	int (*fn)(struct call *x, const ProtobufCMessage *in);
	bool log;                    /* volume calls are logged; identity/info polls are not */
};

static const struct rpc rpcs[] = {
	{ "/csi.v1.Identity/GetPluginInfo", &csi__v1__get_plugin_info_request__descriptor, get_plugin_info, false },
	{ "/csi.v1.Identity/GetPluginCapabilities", &csi__v1__get_plugin_capabilities_request__descriptor,
	  get_plugin_capabilities, false },
	{ "/csi.v1.Identity/Probe", &csi__v1__probe_request__descriptor, probe, false },
	{ "/csi.v1.Node/NodeGetCapabilities", &csi__v1__node_get_capabilities_request__descriptor,
	  node_get_capabilities, false },
	{ "/csi.v1.Node/NodeGetInfo", &csi__v1__node_get_info_request__descriptor, node_get_info, false },
	{ "/csi.v1.Node/NodeStageVolume", &csi__v1__node_stage_volume_request__descriptor, node_stage, true },
	{ "/csi.v1.Node/NodeUnstageVolume", &csi__v1__node_unstage_volume_request__descriptor, node_unstage, true },
	{ "/csi.v1.Node/NodePublishVolume", &csi__v1__node_publish_volume_request__descriptor, node_publish, true },
	{ "/csi.v1.Node/NodeUnpublishVolume", &csi__v1__node_unpublish_volume_request__descriptor, node_unpublish, true },
	{ "/csi.v1.Node/NodeGetVolumeStats", &csi__v1__node_get_volume_stats_request__descriptor,
	  node_get_volume_stats, false },
	{ "/csi.v1.Node/NodeExpandVolume", &csi__v1__node_expand_volume_request__descriptor, node_expand, true },
};

/* Secrets inside a decoded request are wiped before it is freed. */
static void wipe_secrets(ProtobufCMessage *m)
{
	if (m->descriptor == &csi__v1__node_stage_volume_request__descriptor) {
		Csi__V1__NodeStageVolumeRequest *q = (void *)m;
		map_wipe(q->n_secrets, q->secrets);
	} else if (m->descriptor == &csi__v1__node_publish_volume_request__descriptor) {
		Csi__V1__NodePublishVolumeRequest *q = (void *)m;
		map_wipe(q->n_secrets, q->secrets);
	} else if (m->descriptor == &csi__v1__node_expand_volume_request__descriptor) {
		Csi__V1__NodeExpandVolumeRequest *q = (void *)m;
		map_wipe(q->n_secrets, q->secrets);
	}
}

/* The first string field of a request is its volume_id (for the log line), when it has one. */
static const char *volume_id_of(const ProtobufCMessage *m)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "volume_id");

	return f ? *(char *const *)((const char *)m + f->offset) : "";
}

int bw_csi_call(const struct bw_csi_config *c, const char *method, const uint8_t *in, size_t inlen,
		uint8_t **out, size_t *outlen, char *msg, size_t msglen)
{
	struct call x = { .cfg = c, .msg = msg, .msglen = msglen };
	const struct rpc *rpc = NULL;
	ProtobufCMessage *m;
	int code;

	*out = NULL;
	*outlen = 0;
	if (msglen)
		msg[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(rpcs); i++)
		if (!strcmp(rpcs[i].method, method))
			rpc = &rpcs[i];
	if (!rpc)
		return fail(&x, UNIMPLEMENTED, "%.100s is not implemented by this node plugin", method);
	m = protobuf_c_message_unpack(rpc->in, NULL, inlen, in);
	if (!m)
		return fail(&x, INVALID_ARGUMENT, "malformed %s request", strrchr(method, '/') + 1);
	code = rpc->fn(&x, m);
	if (code == OK && rpc->log)
		bw_info("csi: %s volume '%.128s': OK", strrchr(method, '/') + 1, volume_id_of(m));
	else if (code != OK)
		bw_warn("csi: %s volume '%.128s': %s: %s", strrchr(method, '/') + 1, volume_id_of(m), code_name(code), msg);
	wipe_secrets(m);
	protobuf_c_message_free_unpacked(m, NULL);
	if (code != OK) {
		free(x.out);
		return code;
	}
	*out = x.out;
	*outlen = x.outlen;
	return OK;
}
