// SPDX-License-Identifier: GPL-2.0-only
#include <string.h>
#include "common/common.h"
#include "cli/cli.h"

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif

static int version_show(int argc, char **argv)
{
	bool json = argc > 1 && !strcmp(argv[1], "--json");

	if (argc > 1 + json)
		return bw_cli_error(json, BW_EXIT_USAGE, "usage: bulwark version show [--json]");
	if (json)
		printf("{\"version\":\"%s\"}\n", BULWARK_VERSION);
	else
		printf("bulwark %s\n", BULWARK_VERSION);
	return 0;
}

static const struct bw_cli_verb verbs[] = {
	{ "show", "print the version [--json]", version_show, "[--json]" },
	{ 0 },
};

const struct bw_cli_area bw_cli_version = { .name = "version", .summary = "version of this build", .verbs = verbs };
