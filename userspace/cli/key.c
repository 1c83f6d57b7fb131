// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark key <verb>: keys from an attested key service (KBS 0.4.0).
 *   fetch   --service URL --resource REPO/TYPE/TAG [--resource ...] [--attester NAME] [--ca FILE]
 *           [--out FILE] [--tcti TCTI] [--ak-handle HANDLE] [--length N] [--json]
 *           Without --out the key is printed as hex on stdout (never written to disk), one line
 *           per resource; several resources share one attestation (the token is reused).
 *           --length: the resource must be exactly N bytes (default 32 for bulwark/volume/ and
 *           bulwark/statedisk/ keys, any non-zero length otherwise); a mismatch is exit 1.
 *   attest  --service URL [--attester NAME] [--ca FILE] [--tcti ..] [--ak-handle ..] [--json]
 *           [--attestation-out FILE]
 *           Runs the handshake only and prints the token; --attestation-out saves the Attestation
 *           message sent (evidence + runtime data, nothing secret) for audit or tpm2_checkquote.
 * Both take --tries N (handshake attempts, default 5).
 * Exit codes: 0 ok, 1 failure, 2 usage, 3 denied by the service (401/403), 4 no such resource,
 * 5 the service's TLS certificate did not verify, 6 no local attestation device (no TPM at
 * /dev/tpmrm0 or /dev/tpm0 or the --tcti device, no configfs-tsm provider): one line, not retried.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include "cli/cli.h"
#include "kbs/kbs.h"

enum { EXIT_DENIED = 3, EXIT_NOTFOUND = 4, EXIT_TLS = 5, EXIT_NODEV = 6 };

#define MAX_RESOURCES 64

struct opts {
	struct bw_kbs_client_opts c;
	const char *resource[MAX_RESOURCES], *out;
	int n_resources;
	long length; /* --length, 0: by resource path */
	bool json;
};

/* The options in accepts (bw_cli_getopt) of the table both key verbs share. */
static int parse(int argc, char **argv, struct opts *o, const char *accepts)
{
	static const struct option all[] = {
		{ "service", required_argument, NULL, 's' }, { "resource", required_argument, NULL, 'r' },
		{ "attester", required_argument, NULL, 'a' }, { "ca", required_argument, NULL, 'C' },
		{ "out", required_argument, NULL, 'o' }, { "tcti", required_argument, NULL, 'T' },
		{ "ak-handle", required_argument, NULL, 'H' }, { "json", no_argument, NULL, 'j' },
		{ "tries", required_argument, NULL, 'n' }, { "length", required_argument, NULL, 'L' },
		{ "attestation-out", required_argument, NULL, 'A' }, { 0 },
	};
	char what[64];
	int ch;

	snprintf(what, sizeof(what), "key %s", argv[0]);
	memset(o, 0, sizeof(*o));
	o->c.attester = "tpm";
	o->c.aopts.ak_handle = 0x81010002;
	o->c.log = bw_log_hook; /* handshake retries, at debug level */
	optind = 1;
	while ((ch = bw_cli_getopt(argc, argv, all, accepts, what)) != -1) {
		switch (ch) {
		case 's': o->c.url = optarg; break;
		case 'r':
			if (o->n_resources == MAX_RESOURCES)
				return -EINVAL;
			o->resource[o->n_resources++] = optarg;
			break;
		case 'a': o->c.attester = optarg; break;
		case 'C': o->c.ca_file = optarg; break;
		case 'o': o->out = optarg; break;
		case 'T': o->c.aopts.tcti = optarg; break;
		case 'H': o->c.aopts.ak_handle = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': o->c.handshake_tries = atoi(optarg); break;
		case 'A': o->c.attestation_out = optarg; break;
		case 'j': o->json = true; break;
		case 'L': {
			char *end;
			o->length = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->length <= 0 || o->length > 4096)
				return -EINVAL;
			break;
		}
		default: return -EINVAL;
		}
	}
	return optind == argc && o->c.url ? 0 : -EINVAL;
}

static int exit_code(int r)
{
	switch (-r) {
	case BW_KBS_EDENIED: return EXIT_DENIED;
	case BW_KBS_ENOTFOUND: return EXIT_NOTFOUND;
	case EKEYREJECTED: return EXIT_TLS;
	case ENODEV: return EXIT_NODEV;
	default: return BW_EXIT_FAIL;
	}
}

static int client(const struct opts *o, struct bw_kbs_client **c)
{
	int r = bw_kbs_client_new(&o->c, c);
	char why[BW_ERR_LEN];

	if (r == -ENOENT)
		fprintf(stderr, "bulwark: unknown attester '%s' (have: %s)\n", o->c.attester, bw_attester_names());
	else if (r == -ELIBACC && bw_kbs_http_load(why, sizeof(why)) < 0)
		fprintf(stderr, "bulwark: %s\n", why);
	else if (r < 0)
		fprintf(stderr, "bulwark: key service URL must be https://HOST:PORT: %s\n", strerror(-r));
	return r;
}

/* The client could not save an Attestation message (--attestation-out): say so, once. */
static void warn_unsaved(const struct opts *o, const struct bw_kbs_client *c, bool *warned)
{
	if (!*warned && bw_kbs_client_attestation_saved(c) < 0) {
		bw_warn("cannot save the attestation message to %s", o->c.attestation_out);
		*warned = true;
	}
}

/* The key as hex on f, through locked memory (the encoder is constant-time), wiped after. */
static int print_hex(FILE *f, const uint8_t *b, size_t n)
{
	struct bw_secret hex = { 0 };
	int r = bw_secret_new(&hex, 2 * n + 1);

	if (r < 0)
		return r;
	bw_hex_encode(b, n, (char *)hex.data);
	fputs((const char *)hex.data, f);
	bw_secret_free(&hex);
	return 0;
}

static int print_key(const struct opts *o, const char *res, const struct bw_secret *key)
{
	int r;

	if (o->out) {
		r = bw_write_file_atomic(o->out, key->data, key->len, 0600);
		if (r < 0) {
			fprintf(stderr, "bulwark: %s: %s\n", o->out, strerror(-r));
			return BW_EXIT_FAIL;
		}
		if (o->json)
			printf("{\"resource\":\"%s\",\"length\":%zu,\"out\":\"%s\"}\n", res, key->len, o->out);
		return 0;
	}
	if (o->json)
		printf("{\"resource\":\"%s\",\"length\":%zu,\"key\":\"", res, key->len);
	if ((r = print_hex(stdout, key->data, key->len)) < 0) {
		fprintf(stderr, "bulwark: locking memory for the key: %s\n", strerror(-r));
		return BW_EXIT_FAIL;
	}
	printf(o->json ? "\"}\n" : "\n");
	fflush(stdout);
	return 0;
}

/* The length a resource must have: --length, else 32 bytes for volume and state-disk keys. */
static size_t expected_length(const struct opts *o, const char *res)
{
	if (o->length)
		return (size_t)o->length;
	if (!strncmp(res, "bulwark/volume/", 15) || !strncmp(res, "bulwark/statedisk/", 18))
		return 32;
	return 0;
}

/* Several --resource: one attestation, the token reused; one key (or JSON object) per line. */
static int cmd_fetch(int argc, char **argv)
{
	struct opts o;
	struct bw_kbs_client *c = NULL;
	char err[BW_ERR_LEN] = "";
	int r = 0, rc = 0;
	bool warned = false;

	if (parse(argc, argv, &o, "service resource attester ca out tcti ak-handle json tries length attestation-out") < 0 ||
	    !o.n_resources || (o.out && o.n_resources > 1)) {
		fprintf(stderr, "usage: bulwark key fetch --service URL --resource REPO/TYPE/TAG [--resource ...]\n"
				"         [--attester %s] [--ca FILE] [--out FILE (one resource)] [--tcti TCTI]\n"
				"         [--ak-handle H] [--tries N] [--length N] [--json]\n",
			bw_attester_names());
		return BW_EXIT_USAGE;
	}
	if (client(&o, &c) < 0)
		return BW_EXIT_USAGE;
	for (int i = 0; i < o.n_resources && rc == 0; i++) {
		_cleanup_secret_ struct bw_secret key = { 0 };
		r = bw_kbs_get_resource(c, o.resource[i], &key, err, sizeof(err));
		warn_unsaved(&o, c, &warned);
		if (r < 0) {
			rc = bw_cli_error(o.json, exit_code(r), "key fetch %s: %s", o.resource[i], err);
		} else if (expected_length(&o, o.resource[i]) && key.len != expected_length(&o, o.resource[i])) {
			fprintf(stderr, "bulwark: key fetch %s: resource is %zu bytes, expected %zu (--length)\n",
				o.resource[i], key.len, expected_length(&o, o.resource[i]));
			rc = BW_EXIT_FAIL;
		} else {
			rc = print_key(&o, o.resource[i], &key);
		}
	}
	bw_kbs_client_free(c);
	return rc;
}

static int cmd_attest(int argc, char **argv)
{
	struct opts o;
	struct bw_kbs_client *c = NULL;
	char err[BW_ERR_LEN] = "";
	bool warned = false;
	int r;

	if (parse(argc, argv, &o, "service attester ca tcti ak-handle json tries attestation-out") < 0) {
		fprintf(stderr, "usage: bulwark key attest --service URL [--attester %s] [--ca FILE] [--json]\n",
			bw_attester_names());
		return BW_EXIT_USAGE;
	}
	if (client(&o, &c) < 0)
		return BW_EXIT_USAGE;
	r = bw_kbs_attest(c, err, sizeof(err));
	warn_unsaved(&o, c, &warned);
	if (r < 0)
		bw_cli_error(o.json, exit_code(r), "key attest: %s", err);
	else
		printf(o.json ? "{\"token\":\"%s\"}\n" : "%s\n", bw_kbs_client_token(c));
	bw_kbs_client_free(c);
	return r < 0 ? exit_code(r) : 0;
}

static const struct bw_cli_verb verbs[] = {
	{ "fetch", "fetch a key from the attested key service (KBS 0.4.0)", cmd_fetch,
	  "--service URL --resource REPO/TYPE/TAG [--resource ...] [--attester NAME] [--ca FILE] [--out FILE] "
	  "[--tcti TCTI] [--ak-handle H] [--tries N] [--length N] [--json]" },
	{ "attest", "attest to the key service and print the token", cmd_attest,
	  "--service URL [--attester NAME] [--ca FILE] [--tcti TCTI] [--ak-handle H] [--tries N] "
	  "[--attestation-out FILE] [--json]" },
	{ 0 },
};

const struct bw_cli_area bw_cli_key = {
	.name = "key", .summary = "keys from the attested key service", .verbs = verbs,
};
