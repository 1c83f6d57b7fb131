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
#include <string.h>
#include "common/common.h"
#include "cli/cli.h"

static const struct bw_cli_area *const areas[] = {
	&bw_cli_datapath,
	&bw_cli_net,
	&bw_cli_key,
	&bw_cli_volume,
	&bw_cli_statedisk,
	&bw_cli_version,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bulwark <area> <verb> [options]\n\nareas:\n");
	for (size_t i = 0; i < ARRAY_SIZE(areas); i++)
		fprintf(f, "  %-10s %s\n", areas[i]->name, areas[i]->summary);
	fprintf(f, "\n'bulwark <area> --help' lists an area's verbs.\n");
}

int bw_cli_dispatch(const struct bw_cli_area *area, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		FILE *f = argc < 2 ? stderr : stdout;
		fprintf(f, "usage: bulwark %s <verb> [options]\n\nverbs:\n", area->name);
		for (const struct bw_cli_verb *v = area->verbs; v->name; v++)
			fprintf(f, "  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? BW_EXIT_USAGE : 0;
	}
	for (const struct bw_cli_verb *v = area->verbs; v->name; v++)
		if (!strcmp(v->name, argv[1]))
			return v->run(argc - 1, argv + 1);
	fprintf(stderr, "bulwark %s: unknown verb '%s'\n", area->name, argv[1]);
	return BW_EXIT_USAGE;
}

int main(int argc, char **argv)
{
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
	for (size_t i = 0; i < ARRAY_SIZE(areas); i++)
		if (!strcmp(areas[i]->name, argv[1]))
			return bw_cli_dispatch(areas[i], argc - 1, argv + 1);
	fprintf(stderr, "bulwark: unknown area '%s'\n", argv[1]);
	usage(stderr);
	return BW_EXIT_USAGE;
}
