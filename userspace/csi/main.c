// SPDX-License-Identifier: GPL-2.0-only
/* bulwark-csi: the CSI node plugin's command line (userspace/csi/README.md). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include "bulwark/storage.h"
#include "common/common.h"
#include "csi/csi.h"
#include "kbs/kbs.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

#ifndef BULWARK_VERSION
#define BULWARK_VERSION "0.1.0-dev"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bulwark-csi [--endpoint unix:///path/csi.sock] [--node-id ID] [--driver-name NAME]\n"
		"                   [--max-calls N] [--max-volumes N] [--state-dir DIR] [--lock-timeout S]\n"
		"                   [--key-service URL --attester NAME [--ca FILE] [--tcti T] [--ak-handle H]]\n"
		"                   [--version] [--help]\n"
		"\n"
		"CSI (v1.12) node plugin for bulwark's encrypted volumes: Identity and Node services.\n"
		"  --endpoint      the socket (default $CSI_ENDPOINT)\n"
		"  --node-id       NodeGetInfo's node id (default $NODE_NAME, else the host name)\n"
		"  --driver-name   default %s\n"
		"  --max-calls     calls served at once (default %d); messages are limited to %d bytes\n"
		"  --max-volumes   max_volumes_per_node reported to the CO (default: not reported)\n"
		"  --state-dir     where stage records what it used, no keys (default %s)\n"
		"  --lock-timeout  seconds to wait for a volume held by another process (default 10)\n"
		"  --key-service, --attester (%s), --ca, --tcti, --ak-handle:\n"
		"                  the attested key service for volumes that name none in their attributes\n"
		"Logs go to stderr (BULWARK_LOG=debug|info|warn|error); keys are never logged.\n",
		BW_CSI_DRIVER_NAME, BW_CSI_MAX_CALLS, BW_CSI_MAX_MSG, BW_CSI_STATE_DIR, bw_attester_names());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "driver-name", required_argument, NULL, 'd' },
		{ "max-calls", required_argument, NULL, 'c' },
		{ "max-volumes", required_argument, NULL, 'v' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "lock-timeout", required_argument, NULL, 't' },
		{ "key-service", required_argument, NULL, 'S' },
		{ "attester", required_argument, NULL, 'a' },
		{ "ca", required_argument, NULL, 'C' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "ak-handle", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct bw_csi_config c = { .endpoint = getenv("CSI_ENDPOINT"), .driver_name = BW_CSI_DRIVER_NAME,
				   .node_id = getenv("NODE_NAME") };
	char host[256] = "", err[BW_ERR_LEN], *end;
	struct sigaction sa = { .sa_handler = on_signal };
	int o, r;
	long n;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'e': c.endpoint = optarg; break;
		case 'n': c.node_id = optarg; break;
		case 'd': c.driver_name = optarg; break;
		case 's': c.state_dir = optarg; break;
		case 'S': c.key_service = optarg; break;
		case 'a': c.attester = optarg; break;
		case 'C': c.ca_file = optarg; break;
		case 'T': c.tcti = optarg; break;
		case 'H': c.ak_handle = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'c': case 'v': case 't':
			n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 0 || n > 100000 || (o == 'c' && (n < 1 || n > BW_CSI_MAX_CALLS * 4))) {
				fprintf(stderr, "bulwark-csi: bad --%s '%s'\n", o == 'c' ? "max-calls" : o == 'v' ? "max-volumes"
					: "lock-timeout", optarg);
				return 2;
			}
			if (o == 'c')
				c.max_calls = (int)n;
			else if (o == 'v')
				c.max_volumes = n;
			else
				c.lock_timeout_ms = (int)n * 1000;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("bulwark-csi %s\n", BULWARK_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !c.endpoint) {
		usage(stderr);
		return 2;
	}
	if (!c.node_id || !c.node_id[0]) {
		gethostname(host, sizeof(host) - 1);
		c.node_id = host;
	}
	if (c.attester && !bw_attester_find(c.attester)) {
		fprintf(stderr, "bulwark-csi: unknown attester '%s' (%s)\n", c.attester, bw_attester_names());
		return 2;
	}
	bw_log_set_prefix("bulwark-csi");
	bw_vol_log_init();
	prctl(PR_SET_DUMPABLE, 0);       /* keys pass through this process */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = bw_csi_serve(&c, &stop, err, sizeof(err))) < 0) {
		fprintf(stderr, "bulwark-csi: %s\n", err);
		return 1;
	}
	return 0;
}
