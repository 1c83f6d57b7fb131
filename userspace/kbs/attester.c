// SPDX-License-Identifier: GPL-2.0-only
/*
 * Attesters: produce TEE evidence that carries the report data.
 *   sample  test evidence {"svn","report_data"} (Trustee's sample TEE). Proves nothing; the key
 *           service accepts it only when its policy enables sample explicitly.
 *   tsm     Linux configfs-tsm (SEV-SNP / TDX guests): report data -> inblob, outblob back.
 *           Untested on hardware (these machines have neither); the request building is
 *           unit-tested.
 *   tpm     TPM 2.0 quote (userspace/tpm): linked in by attest_tpm.o; the weak reference keeps
 *           this table valid in programs built without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

extern const struct bw_attester bw_attester_tpm __attribute__((weak));

int bw_sample_evidence(const uint8_t *report_data, size_t len, struct json_object **out)
{
	struct json_object *o;
	char *b64 = NULL;
	/* The sample attester encodes with the standard alphabet, padded. */
	int r = bw_base64_encode_alloc(report_data, len, 0, &b64);

	if (r < 0)
		return r;
	o = json_object_new_object();
	if (!o) {
		free(b64);
		return -ENOMEM;
	}
	json_object_object_add(o, "svn", json_object_new_string("1"));
	json_object_object_add(o, "report_data", json_object_new_string(b64));
	free(b64);
	*out = o;
	return 0;
}

static int sample_evidence(const struct bw_attester_opts *o, const uint8_t *rd, size_t len,
			   struct json_object **out, char *err, size_t errlen)
{
	(void)o;
	(void)err;
	(void)errlen;
	return bw_sample_evidence(rd, len, out);
}

static const struct bw_attester attester_sample = {
	.name = "sample", .tee = "sample", .evidence = sample_evidence,
};

/* ---- tsm ---- */

#define TSM_DIR "/sys/kernel/config/tsm/report"
#define TSM_INBLOB 64

int bw_tsm_inblob(const uint8_t *report_data, size_t len, uint8_t out[TSM_INBLOB])
{
	if (len > TSM_INBLOB)
		return -EINVAL;
	/* SNP REPORT_DATA and TDX REPORTDATA are both 64 bytes; our 48-byte digest is zero-padded. */
	memset(out, 0, TSM_INBLOB);
	memcpy(out, report_data, len);
	return 0;
}

static int join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int write_file(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[1024];
	_cleanup_close_ int fd = -1;

	if (join(path, sizeof(path), dir, name) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

const char *bw_tsm_tee(const char *provider)
{
	if (!strcmp(provider, "tdx_guest"))
		return "tdx";
	if (!strcmp(provider, "sev_guest"))
		return "snp";
	return NULL;
}

static int read_provider(const char *entry, char **prov)
{
	char path[1024];
	size_t len;
	int r;

	if (join(path, sizeof(path), entry, "provider") < 0)
		return -ENAMETOOLONG;
	r = bw_read_file(path, 64, prov, &len);
	if (r == 0)
		(*prov)[strcspn(*prov, "\n")] = '\0';
	return r;
}

/* Evidence: TDX as Trustee's {"quote": base64}; SNP as the raw report (no Trustee verifier shape). */
static int tsm_read(const char *entry, struct json_object *ev)
{
	char path[1024];
	_cleanup_free_ char *blob = NULL, *prov = NULL, *b64 = NULL;
	size_t len;
	int r;

	r = read_provider(entry, &prov);
	if (r < 0)
		return r;
	if (join(path, sizeof(path), entry, "outblob") < 0)
		return -ENAMETOOLONG;
	r = bw_read_file(path, 1 << 20, &blob, &len);
	if (r < 0)
		return r;
	r = bw_base64_encode_alloc((const uint8_t *)blob, len, 0, &b64);
	if (r < 0)
		return r;
	if (!strcmp(prov, "tdx_guest")) {
		json_object_object_add(ev, "quote", json_object_new_string(b64));
	} else {
		json_object_object_add(ev, "provider", json_object_new_string(prov));
		json_object_object_add(ev, "outblob", json_object_new_string(b64));
	}
	return 0;
}

static int tsm_evidence(const struct bw_attester_opts *o, const uint8_t *rd, size_t len,
			struct json_object **out, char *err, size_t errlen)
{
	char entry[512];
	uint8_t inblob[TSM_INBLOB];
	struct json_object *ev;
	int r = bw_tsm_inblob(rd, len, inblob);

	if (r < 0)
		return r;
	snprintf(entry, sizeof(entry), "%s/bulwark-%d", o->tsm_dir ? o->tsm_dir : TSM_DIR, (int)getpid());
	if (mkdir(entry, 0700) < 0)
		return bw_errf(err, errlen, -errno, "tsm: creating %s: %s", entry, strerror(errno));
	ev = json_object_new_object();
	r = ev ? write_file(entry, "inblob", inblob, sizeof(inblob)) : -ENOMEM;
	if (r == 0)
		r = tsm_read(entry, ev);
	rmdir(entry);
	if (r < 0) {
		json_object_put(ev);
		return bw_errf(err, errlen, r, "tsm: report %s: %s", entry, strerror(-r));
	}
	*out = ev;
	return 0;
}

/* The provider names the TEE: make a report entry, read it, remove the entry. */
static const char *tsm_tee_of(const struct bw_attester_opts *o)
{
	char entry[512];
	_cleanup_free_ char *prov = NULL;
	const char *tee = NULL;

	snprintf(entry, sizeof(entry), "%s/bulwark-%d", o->tsm_dir ? o->tsm_dir : TSM_DIR, (int)getpid());
	if (mkdir(entry, 0700) < 0)
		return NULL;
	if (read_provider(entry, &prov) == 0)
		tee = bw_tsm_tee(prov);
	rmdir(entry);
	return tee;
}

static const struct bw_attester attester_tsm = {
	.name = "tsm", .tee = "tsm", .tee_of = tsm_tee_of, .evidence = tsm_evidence,
};

static const struct bw_attester *table(size_t i)
{
	const struct bw_attester *all[] = { &attester_sample, &attester_tsm, &bw_attester_tpm };

	return i < ARRAY_SIZE(all) ? all[i] : NULL;
}

const struct bw_attester *bw_attester_find(const char *name)
{
	for (size_t i = 0; i < 3; i++) {
		const struct bw_attester *a = table(i);
		if (a && a->name && !strcmp(a->name, name))
			return a;
	}
	return NULL;
}

const char *bw_attester_names(void)
{
	return &bw_attester_tpm ? "sample, tpm, tsm" : "sample, tsm";
}
