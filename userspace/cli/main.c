// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark <area> <verb> [options]
 *
 * Exit codes (all commands):
 *   0  success
 *   1  operation failed (see the error message / JSON "error")
 *   2  usage error: unknown area/verb or bad option
 * Areas add their own codes above 2 and document them in their README.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <json-c/json.h>
#include "common/common.h"
#include "bulwark/storage.h"
#include "cli/cli.h"
#include "datapath/datapath.h"

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif

const struct bw_cli_area *const bw_cli_areas[] = {
	&bw_cli_status,
	&bw_cli_datapath,
	&bw_cli_net,
	&bw_cli_key,
	&bw_cli_volume,
	&bw_cli_statedisk,
	&bw_cli_version,
	&bw_cli_completion,
};
const size_t bw_cli_n_areas = ARRAY_SIZE(bw_cli_areas);

static void usage(FILE *f)
{
	fprintf(f, "usage: bulwark <area> <verb> [options]\n\nareas:\n");
	for (size_t i = 0; i < bw_cli_n_areas; i++)
		fprintf(f, "  %-11s %s\n", bw_cli_areas[i]->name, bw_cli_areas[i]->summary);
	fprintf(f, "\n'bulwark <area> --help' lists an area's verbs, 'bulwark <area> <verb> --help' a verb's\n"
		   "options; 'bulwark --version' prints the version. Most commands need root (or\n"
		   "CAP_NET_ADMIN + CAP_BPF / CAP_SYS_ADMIN for the datapath and volumes).\n");
}

/* name is one of the space-separated words of list. */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

int bw_cli_getopt(int argc, char **argv, const struct option *opts, const char *accepts, const char *what)
{
	int idx = -1, c;

	opterr = 0; /* getopt's messages name the verb only: ours name the command */
	optopt = 0;
	c = getopt_long(argc, argv, "", opts, &idx);
	if (c == -1)
		return c;
	if (c == '?') {
		for (idx = 0; optopt && opts[idx].name && (opts[idx].flag || opts[idx].val != optopt); idx++)
			;
		if (optopt && opts[idx].name)
			fprintf(stderr, "bulwark %s: --%s needs a value\n", what, opts[idx].name);
		else
			fprintf(stderr, "bulwark %s: unknown option '%s'\n", what, argv[optind - 1]);
		return c;
	}
	if (idx < 0)
		for (idx = 0; opts[idx].name && (opts[idx].flag || opts[idx].val != c); idx++)
			;
	if (!opts[idx].name || !listed(accepts, opts[idx].name)) {
		fprintf(stderr, "bulwark %s: --%s does not apply here (accepts:", what,
			opts[idx].name ? opts[idx].name : "?");
		for (const char *p = accepts; *p; p += strcspn(p, " "), p += *p == ' ')
			fprintf(stderr, " --%.*s", (int)strcspn(p, " "), p);
		fprintf(stderr, ")\n");
		return '?';
	}
	return c;
}

void bw_cli_print_json(struct json_object *j)
{
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

bool bw_cli_json;

/* Set once {"error","code"} is on stdout: run_json does not print a second one. */
static bool error_printed;

static void print_error_json(const char *msg, int code)
{
	struct json_object *j = json_object_new_object();

	error_printed = true;
	json_object_object_add(j, "error", json_object_new_string(msg));
	json_object_object_add(j, "code", json_object_new_int(code));
	bw_cli_print_json(j);
}

int bw_cli_error(bool json, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bulwark: %s\n", msg);
	if (json)
		print_error_json(msg, code);
	return code;
}

static bool has_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--json"))
			return true;
	return false;
}

/*
 * With --json, a failing command (exit 1 or 2) also prints {"error","code"} on stdout: what it
 * wrote to stderr is captured (and still shown on stderr) and its last line becomes the error.
 */
static int run_json(int (*fn)(int, char **), int argc, char **argv)
{
	int mfd = memfd_create("bulwark-stderr", MFD_CLOEXEC), saved = dup(2), code;
	char buf[4096] = "", *line, *end;
	ssize_t n;

	if (mfd < 0 || saved < 0) {
		if (mfd >= 0)
			close(mfd);
		if (saved >= 0)
			close(saved);
		return fn(argc, argv);
	}
	fflush(stderr);
	dup2(mfd, 2);
	code = fn(argc, argv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(mfd, buf, sizeof(buf) - 1, 0);
	close(mfd);
	if (n <= 0)
		n = 0;
	buf[n] = '\0';
	fputs(buf, stderr);
	if ((code != BW_EXIT_FAIL && code != BW_EXIT_USAGE) || error_printed)
		return code;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	/* A usage text: its first line names the command; otherwise the last line is the error. */
	if (!strncmp(buf, "usage:", 6) || !strncmp(buf, "bulwark: usage:", 15)) {
		line = buf;
		if ((end = strchr(buf, '\n')))
			*end = '\0';
	} else {
		line = (end = strrchr(buf, '\n')) ? end + 1 : buf;
	}
	if (!strncmp(line, "bulwark: ", 9))
		line += 9;
	fflush(stdout);
	print_error_json(*line ? line : (code == BW_EXIT_USAGE ? "usage error" : "failed"), code);
	return code;
}

static bool is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int bw_cli_dispatch(const struct bw_cli_area *area, int argc, char **argv)
{
	bw_cli_json = has_json(argc, argv);
	if (area->run)
		return area->json_errors || !has_json(argc, argv) ? area->run(argc, argv)
								    : run_json(area->run, argc, argv);
	if (argc < 2 || is_help(argv[1])) {
		FILE *f = argc < 2 ? stderr : stdout;
		fprintf(f, "usage: bulwark %s <verb> [options]\n\nverbs:\n", area->name);
		for (const struct bw_cli_verb *v = area->verbs; v->name; v++)
			fprintf(f, "  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? BW_EXIT_USAGE : 0;
	}
	for (const struct bw_cli_verb *v = area->verbs; v->name; v++) {
		if (strcmp(v->name, argv[1]))
			continue;
		if (argc > 2 && is_help(argv[2])) {
			printf("usage: bulwark %s %s %s\n  %s\n", area->name, v->name, v->args ?: "[options]", v->summary);
			return BW_EXIT_OK;
		}
		if (area->json_errors || !has_json(argc, argv))
			return v->run(argc - 1, argv + 1);
		return run_json(v->run, argc - 1, argv + 1);
	}
	if (has_json(argc, argv))
		return bw_cli_error(true, BW_EXIT_USAGE, "%s: unknown verb '%s'", area->name, argv[1]);
	fprintf(stderr, "bulwark %s: unknown verb '%s'\n", area->name, argv[1]);
	return BW_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	bw_dp_log_init();
	bw_vol_log_init();
	if (argc < 2) {
		usage(stderr);
		return BW_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	/* `bulwark version [--json]` is what everyone types: the area's only verb runs without its name. */
	if (!strcmp(argv[1], "version") && (argc == 2 || (argc == 3 && !strcmp(argv[2], "--json")))) {
		char *show[] = { argv[1], "show", argc == 3 ? argv[2] : NULL, NULL };
		return bw_cli_dispatch(&bw_cli_version, argc, show);
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("bulwark %s\n", BULWARK_VERSION);
		return 0;
	}
	for (size_t i = 0; i < bw_cli_n_areas; i++)
		if (!strcmp(bw_cli_areas[i]->name, argv[1]))
			return bw_cli_dispatch(bw_cli_areas[i], argc - 1, argv + 1);
	fprintf(stderr, "bulwark: unknown area '%s'\n", argv[1]);
	usage(stderr);
	return BW_EXIT_USAGE;
}
