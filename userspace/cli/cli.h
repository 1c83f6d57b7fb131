/* SPDX-License-Identifier: GPL-2.0-only */
/* The bulwark CLI's subcommand table: each area (datapath, net, volume, key, ...) is one file. */
#ifndef BULWARK_CLI_H
#define BULWARK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { BW_EXIT_OK = 0, BW_EXIT_FAIL = 1, BW_EXIT_USAGE = 2 };
/*
 * Status commands (`bulwark status`, `net status`, `datapath status`): one code per degraded
 * state; when several apply, the lowest (most severe) wins.
 */
enum {
	BW_EXIT_NOT_ENFORCED = 3, /* an uplink without bulwark's filters (or no datapath at all) */
	BW_EXIT_NOT_FINAL = 4,    /* a foreign tc filter or tcx program runs before ours */
	BW_EXIT_NO_DEVICE = 5,    /* the WireGuard device is missing or its process is gone */
	BW_EXIT_PEERS = 6,        /* peers configured / in the device / in the datapath differ */
	BW_EXIT_AGENT = 7,        /* bulwarkd unreachable, or its last sync failed */
};

struct json_object;
/* Check the uplinks (from the configuration; NULL/0: the devices with our filters); add
 * "uplinks", "enforced" to j and/or print one line per uplink to text. Returns an exit code. */
int bw_cli_enforcement(const char *pin_dir, const char *const *uplinks, size_t n, struct json_object *j,
		       FILE *text);
int bw_cli_worse(int a, int b);
/* Report an error: {"error": msg, "code": code} on stdout with json, "bulwark: msg" on stderr
 * without; returns code. */
int bw_cli_error(bool json, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Every --json output: j as one line on stdout (no slash escaping), then j is released. One
 * object per line, so streams (datapath monitor) and single answers read the same way. */
void bw_cli_print_json(struct json_object *j);

/*
 * The one option convention: every verb's parser runs getopt_long over its area's option table
 * through bw_cli_getopt with the space-separated long names the verb accepts. An option of the
 * table the verb does not take is refused by name: "bulwark volume unstage: --device does not
 * apply here (accepts: --id --lock-timeout --json)", and '?' is returned, as for an unknown option
 * or a missing value (also named).
 * what: "area verb", for the message.
 */
struct option;
int bw_cli_getopt(int argc, char **argv, const struct option *opts, const char *accepts, const char *what);

struct bw_cli_verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
	const char *args; /* its arguments for `--help` ("--config FILE [--json]"); NULL: in the summary */
};
/* --json is on the command line (set by the dispatcher before a verb runs). */
extern bool bw_cli_json;

struct bw_cli_area {
	const char *name;
	const char *summary;
	const struct bw_cli_verb *verbs; /* terminated by an entry with name == NULL */
	int (*run)(int argc, char **argv); /* an area without verbs (`bulwark status`) */
	bool json_errors;                  /* prints {"error","code"} itself (volume, statedisk) */
};

int bw_cli_dispatch(const struct bw_cli_area *area, int argc, char **argv);

extern const struct bw_cli_area bw_cli_version;
extern const struct bw_cli_area bw_cli_datapath;
extern const struct bw_cli_area bw_cli_net;
extern const struct bw_cli_area bw_cli_key;
extern const struct bw_cli_area bw_cli_volume;
extern const struct bw_cli_area bw_cli_statedisk;
extern const struct bw_cli_area bw_cli_status;
extern const struct bw_cli_area bw_cli_completion;
/* Every area, in the order `bulwark --help` lists them (completion.c walks it). */
extern const struct bw_cli_area *const bw_cli_areas[];
extern const size_t bw_cli_n_areas;

#endif
