// SPDX-License-Identifier: GPL-2.0-only
/*
 * tpmtool: test-only driver of the tpm component for shell tests.
 *
 *   tpmtool evidence --tcti T [--ak-handle H] --report-data HEX
 *           prints the evidence JSON (as bw_tpm_evidence builds it)
 *   tpmtool verify --evidence FILE --report-data HEX
 *           prints the claims {"ak_id":..,"pcrs":[..]}; on failure the error on stderr
 *   tpmtool                (no arguments: the unit suite runs it) runs tests/unit/tpmtool.sh,
 *           the cross-checks with tpm2-tools, against this binary
 *
 * Exit: 0 ok, 1 failure, 2 usage, 3 malformed evidence (-EINVAL), 4 mismatch (-EBADMSG).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include "common/common.h"
#include "tpm/internal.h"
#include "tpm/tpm.h"

#define MAX_REPORT_DATA 128
#define MAX_EVIDENCE_FILE (64 * 1024)

static int usage(void)
{
	fprintf(stderr, "usage: tpmtool evidence --tcti T [--ak-handle H] --report-data HEX\n"
			"       tpmtool verify --evidence FILE --report-data HEX\n");
	return 2;
}

static int report_data(const char *hex, uint8_t *out, size_t *len)
{
	size_t n = strlen(hex) / 2;

	if (n > MAX_REPORT_DATA || bw_hex_decode(hex, out, n) < 0)
		return -EINVAL;
	*len = n;
	return 0;
}

static int cmd_evidence(const char *tcti, const char *handle, const uint8_t *rd, size_t len)
{
	struct bw_tpm_opts o = { .tcti = tcti };
	struct json_object *ev = NULL;
	int r;

	if (handle)
		o.ak_handle = (uint32_t)strtoul(handle, NULL, 0);
	char err[BW_ERR_LEN] = "";

	r = bw_tpm_evidence(&o, rd, len, &ev, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tpmtool: evidence: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	puts(json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
	json_object_put(ev);
	return 0;
}

static void print_claims(const struct bw_tpm_claims *c)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	int i;

	for (i = 0; i < BW_TPM_PCRS; i++) {
		char hex[65];

		bw_hex_encode(c->pcrs[i], 32, hex);
		json_object_array_add(a, json_object_new_string(hex));
	}
	json_object_object_add(o, "ak_id", json_object_new_string(c->ak_id));
	json_object_object_add(o, "pcrs", a);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static int cmd_verify(const char *path, const uint8_t *rd, size_t len)
{
	_cleanup_free_ char *text = NULL;
	struct json_object *ev;
	struct bw_tpm_claims c;
	char err[BW_ERR_LEN];
	int r;

	r = bw_read_file(path, MAX_EVIDENCE_FILE, &text, NULL);
	if (r < 0) {
		fprintf(stderr, "tpmtool: %s: %s\n", path, strerror(-r));
		return 1;
	}
	ev = json_tokener_parse(text);
	if (!ev) {
		fprintf(stderr, "tpmtool: %s: not JSON\n", path);
		return 3;
	}
	r = bw_tpm_verify(ev, rd, len, &c, err, sizeof(err));
	json_object_put(ev);
	if (r < 0) {
		fprintf(stderr, "tpmtool: verify: %s (%s)\n", err, strerror(-r));
		return r == -EINVAL ? 3 : r == -EBADMSG ? 4 : 1;
	}
	print_claims(&c);
	return 0;
}

/* No arguments: the unit suite runs us; run the shell cross-checks against ourselves. */
static int self_test(const char *argv0)
{
	char self[PATH_MAX], script[PATH_MAX + 64];
	const char *top = getenv("BULWARK_TOP");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	(void)argv0;
	if (n <= 0)
		return 1;
	self[n] = '\0';
	if (top)
		snprintf(script, sizeof(script), "%s/tests/unit/tpmtool.sh", top);
	else /* build/tests/unit/tpmtool -> tests/unit/tpmtool.sh */
		snprintf(script, sizeof(script), "%s/../../../tests/unit/tpmtool.sh",
			 dirname(strdup(self)));
	setenv("TPMTOOL", self, 1);
	execlp("bash", "bash", script, (char *)NULL);
	perror("tpmtool: bash");
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tcti", required_argument, NULL, 't' },
		{ "ak-handle", required_argument, NULL, 'a' },
		{ "report-data", required_argument, NULL, 'r' },
		{ "evidence", required_argument, NULL, 'e' },
		{ 0 }
	};
	const char *tcti = NULL, *handle = NULL, *rdhex = NULL, *file = NULL;
	uint8_t rd[MAX_REPORT_DATA];
	size_t len = 0;
	int c;

	if (argc == 1)
		return self_test(argv[0]);
	while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': tcti = optarg; break;
		case 'a': handle = optarg; break;
		case 'r': rdhex = optarg; break;
		case 'e': file = optarg; break;
		default: return usage();
		}
	}
	if (!rdhex || report_data(rdhex, rd, &len) < 0)
		return usage();
	if (!strcmp(argv[1], "evidence"))
		return cmd_evidence(tcti, handle, rd, len);
	if (!strcmp(argv[1], "verify") && file)
		return cmd_verify(file, rd, len);
	return usage();
}
