/* SPDX-License-Identifier: GPL-2.0-only */
/* The bulwark CLI's subcommand table: each area (datapath, net, volume, key, ...) is one file. */
#ifndef BULWARK_CLI_H
#define BULWARK_CLI_H

enum { BW_EXIT_OK = 0, BW_EXIT_FAIL = 1, BW_EXIT_USAGE = 2 };

struct bw_cli_verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

struct bw_cli_area {
	const char *name;
	const char *summary;
	const struct bw_cli_verb *verbs; /* terminated by an entry with name == NULL */
};

int bw_cli_dispatch(const struct bw_cli_area *area, int argc, char **argv);

extern const struct bw_cli_area bw_cli_version;
extern const struct bw_cli_area bw_cli_datapath;
extern const struct bw_cli_area bw_cli_net;
extern const struct bw_cli_area bw_cli_key;
extern const struct bw_cli_area bw_cli_volume;
extern const struct bw_cli_area bw_cli_statedisk;

#endif
