// SPDX-License-Identifier: GPL-2.0-only
/* bulwark datapath <verb>: the uplink programs, their maps and drop events. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include "cli/cli.h"
#include "common/common.h"
#include "datapath/datapath.h"
#include "wireguard-conf/conf.h"
#include "net/net.h"

struct opts {
	const char *pin_dir, *config, *wg_dev;
	const char *uplinks[64];
	size_t n_uplinks;
	bool json, purge, replay;
	long count, timeout;
	const char *reason, *addr;
};

enum { OPT_PIN = 1000, OPT_JSON, OPT_PURGE, OPT_COUNT, OPT_TIMEOUT, OPT_CONFIG, OPT_UPLINK, OPT_WG, OPT_REPLAY,
       OPT_REASON, OPT_ADDR };

static int parse_opts(int argc, char **argv, struct opts *o, const char *allowed)
{
	static const struct option all[] = {
		{ "pin-dir", required_argument, NULL, OPT_PIN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "purge", no_argument, NULL, OPT_PURGE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "uplink", required_argument, NULL, OPT_UPLINK },
		{ "wg-dev", required_argument, NULL, OPT_WG },
		{ "replay", no_argument, NULL, OPT_REPLAY },
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "addr", required_argument, NULL, OPT_ADDR },
		{ 0 },
	};
	char what[64];
	int c;

	snprintf(what, sizeof(what), "datapath %s", argv[0]);
	memset(o, 0, sizeof(*o));
	o->timeout = -1;
	optind = 1;
	while ((c = bw_cli_getopt(argc, argv, all, allowed, what)) != -1) {
		switch (c) {
		case OPT_PIN: o->pin_dir = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_PURGE: o->purge = true; break;
		case OPT_COUNT: o->count = strtol(optarg, NULL, 10); break;
		case OPT_TIMEOUT: o->timeout = strtol(optarg, NULL, 10); break;
		case OPT_CONFIG: o->config = optarg; break;
		case OPT_WG: o->wg_dev = optarg; break;
		case OPT_REPLAY: o->replay = true; break;
		case OPT_REASON: o->reason = optarg; break;
		case OPT_ADDR: o->addr = optarg; break;
		case OPT_UPLINK:
			if (o->n_uplinks == ARRAY_SIZE(o->uplinks))
				return -E2BIG;
			o->uplinks[o->n_uplinks++] = optarg;
			break;
		default: return -EINVAL;
		}
	}
	/* `--uplink a b c`: further uplinks may follow as plain arguments. */
	for (; optind < argc; optind++) {
		if (!strstr(allowed, "uplink") || o->n_uplinks == ARRAY_SIZE(o->uplinks)) {
			fprintf(stderr, "bulwark datapath %s: unexpected argument '%s'\n", argv[0], argv[optind]);
			return -EINVAL;
		}
		o->uplinks[o->n_uplinks++] = argv[optind];
	}
	return 0;
}

/* The configuration's desired maps; with o, also its uplinks and WireGuard device where the
 * command line named none. */
static int load_desired(const char *path, struct bw_dp_desired *d, struct opts *o)
{
	struct bw_conf conf;
	char err[BW_ERR_LEN];
	int r = bw_conf_load(path, &conf, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "bulwark: %s\n", err);
		return r;
	}
	if (o && !o->n_uplinks)
		for (size_t i = 0; i < conf.node.n_uplinks && o->n_uplinks < ARRAY_SIZE(o->uplinks); i++)
			o->uplinks[o->n_uplinks++] = strdup(conf.node.uplinks[i]);
	if (o && !o->wg_dev)
		o->wg_dev = strdup(conf.iface.device);
	r = bw_net_desired(&conf, d);
	bw_conf_free(&conf);
	return r;
}

static int open_dp(const char *pin_dir, struct bw_dp **dp)
{
	int r = bw_dp_open(pin_dir, dp);

	if (r == -ENOENT)
		fprintf(stderr, "bulwark: no datapath pinned under %s (run 'bulwark datapath attach')%s\n",
			bw_pin_dir(pin_dir), geteuid() ? "; not being root, you may not see it: needs root, or CAP_BPF and CAP_NET_ADMIN" : "");
	else if ((r == -EPERM || r == -EACCES) && geteuid())
		fprintf(stderr, "bulwark: opening maps under %s: %s (needs root, or CAP_BPF and CAP_NET_ADMIN)\n",
			bw_pin_dir(pin_dir), strerror(-r));
	else if (r < 0)
		fprintf(stderr, "bulwark: opening maps under %s: %s\n", bw_pin_dir(pin_dir), strerror(-r));
	return r;
}

#define ATTACH_ARGS "{--config FILE | --uplink DEV [DEV...] --wg-dev DEV} [--pin-dir DIR] [--json]"
#define APPLY_ARGS "--config FILE [--pin-dir DIR] [--json]"

static int cmd_attach(int argc, char **argv)
{
	struct opts o;
	struct bw_dp_desired d = { 0 };
	struct bw_notes notes = { 0 };
	char why[BW_ERR_LEN] = "";
	int r;

	if (parse_opts(argc, argv, &o, "uplink wg-dev config pin-dir json") < 0)
		return BW_EXIT_USAGE;
	/* Uplinks and device default to the configuration's (boot: `attach --config FILE`). */
	if (o.config && load_desired(o.config, &d, &o) < 0)
		return BW_EXIT_FAIL;
	if (!o.n_uplinks || !o.wg_dev || !*o.wg_dev) {
		fprintf(stderr, "usage: bulwark datapath attach " ATTACH_ARGS "\n");
		return BW_EXIT_USAGE;
	}
	if (!if_nametoindex(o.wg_dev))
		fprintf(stderr, "bulwark: attach: WireGuard device %s does not exist (yet): protected traffic is dropped "
				"(dropped-no-device / dropped-no-peer) until it does\n", o.wg_dev);
	r = bw_dp_attach(o.pin_dir, o.uplinks, o.n_uplinks, o.wg_dev, o.config ? &d : NULL, &notes, why, sizeof(why));
	bw_dp_desired_free(&d);
	bw_notes_log(&notes);
	if (r < 0) {
		fprintf(stderr, "bulwark: attach: %s%s\n", why[0] ? why : strerror(-r),
			(r == -EPERM || r == -EACCES) && geteuid() ? " (needs root, or CAP_BPF and CAP_NET_ADMIN)" : "");
		return BW_EXIT_FAIL;
	}
	if (o.json)
		printf("{}\n");
	return BW_EXIT_OK;
}

static int cmd_detach(int argc, char **argv)
{
	struct opts o;
	int r;

	if (parse_opts(argc, argv, &o, "purge pin-dir json") < 0)
		return BW_EXIT_USAGE;
	r = bw_dp_detach(o.pin_dir, o.purge);
	if (r < 0) {
		fprintf(stderr, "bulwark: detach: %s\n", strerror(-r));
		return BW_EXIT_FAIL;
	}
	if (o.json)
		printf("{}\n");
	return BW_EXIT_OK;
}

static int cmd_apply(int argc, char **argv)
{
	struct opts o;
	struct bw_dp_desired d;
	struct bw_dp *dp = NULL;
	int r;

	if (parse_opts(argc, argv, &o, "config pin-dir json") < 0 || !o.config) {
		fprintf(stderr, "usage: bulwark datapath apply " APPLY_ARGS "\n");
		return BW_EXIT_USAGE;
	}
	/* Parse everything before touching a map: a bad file changes nothing. */
	if (load_desired(o.config, &d, NULL) < 0)
		return BW_EXIT_FAIL;
	if (open_dp(o.pin_dir, &dp) < 0) {
		bw_dp_desired_free(&d);
		return BW_EXIT_FAIL;
	}
	r = bw_dp_apply(dp, &d);
	bw_dp_desired_free(&d);
	bw_dp_close(dp);
	if (r < 0) {
		fprintf(stderr, "bulwark: apply: %s\n", strerror(-r));
		return BW_EXIT_FAIL;
	}
	if (o.json)
		printf("{}\n");
	return BW_EXIT_OK;
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct bw_dp *dp = NULL;
	struct bw_config cfg;
	struct bw_stat st[BW_REASON_MAX], sd[2][BW_REASON_MAX];
	struct bw_dp_attachment att[64];
	char wg[IF_NAMESIZE] = "?";
	uint64_t gen;
	bool cache;
	int n, r;

	struct bw_conf conf;
	struct json_object *j = NULL;
	const char *uplinks[64];
	size_t n_up = 0;
	int code;

	if (parse_opts(argc, argv, &o, "json pin-dir config uplink") < 0)
		return BW_EXIT_USAGE;
	/* Which uplinks must be enforced: --uplink, else the configuration's, else where we are. */
	for (size_t i = 0; i < o.n_uplinks; i++)
		uplinks[n_up++] = o.uplinks[i];
	if (!n_up && o.config) {
		char err[BW_ERR_LEN];
		if (bw_conf_load(o.config, &conf, err, sizeof(err)) < 0) {
			fprintf(stderr, "bulwark: %s\n", err);
			return BW_EXIT_FAIL;
		}
		for (size_t i = 0; i < conf.node.n_uplinks && n_up < ARRAY_SIZE(uplinks); i++)
			uplinks[n_up++] = strdupa(conf.node.uplinks[i]);
		bw_conf_free(&conf);
	}
	if (open_dp(o.pin_dir, &dp) < 0) {
		if (o.json) {
			j = json_object_new_object();
			bw_cli_enforcement(o.pin_dir, uplinks, n_up, j, NULL);
			bw_cli_print_json(j);
		}
		return BW_EXIT_NOT_ENFORCED;
	}
	r = bw_dp_config_get(dp, &cfg);
	if (r == 0 && (r = bw_dp_stats_dir(dp, sd)) == 0)
		for (unsigned i = 0; i < BW_REASON_MAX; i++)
			st[i] = (struct bw_stat){ .packets = sd[0][i].packets + sd[1][i].packets,
						  .bytes = sd[0][i].bytes + sd[1][i].bytes };
	gen = bw_dp_flow_gen(dp);
	cache = bw_dp_flow_pinned(dp) && (cfg.flags & BW_CFG_FLOW_CACHE);
	bw_dp_close(dp);
	n = bw_dp_attachments(att, ARRAY_SIZE(att));
	if (r < 0 || n < 0) {
		fprintf(stderr, "bulwark: status: %s\n", strerror(-(r < 0 ? r : n)));
		return BW_EXIT_FAIL;
	}
	if (!cfg.wg_ifindex || !if_indextoname(cfg.wg_ifindex, wg))
		snprintf(wg, sizeof(wg), "%s", cfg.wg_ifindex ? "MISSING" : "none");
	if (o.json) {
		struct json_object *a = json_object_new_array();
		struct json_object *c = json_object_new_object(), *s = json_object_new_object();

		j = json_object_new_object();
		code = bw_cli_enforcement(o.pin_dir, uplinks, n_up, j, NULL);
		if (!cfg.wg_ifindex || !strcmp(wg, "MISSING"))
			code = bw_cli_worse(code, BW_EXIT_NO_DEVICE);
		json_object_object_add(j, "code", json_object_new_int(code));

		json_object_object_add(j, "pin_dir", json_object_new_string(bw_pin_dir(o.pin_dir)));
		json_object_object_add(c, "wg_ifindex", json_object_new_int64(cfg.wg_ifindex));
		json_object_object_add(c, "wg_device", json_object_new_string(wg));
		json_object_object_add(c, "wg_fwmark", json_object_new_int64(cfg.wg_fwmark));
		json_object_object_add(c, "wg_port", json_object_new_int(cfg.wg_port));
		json_object_object_add(c, "overlay_port", json_object_new_int(cfg.overlay_port));
		json_object_object_add(c, "node_encryption", json_object_new_boolean(cfg.flags & BW_CFG_NODE_ENCRYPTION));
		json_object_object_add(c, "flow_cache", json_object_new_boolean(cache));
		json_object_object_add(c, "flow_generation", json_object_new_uint64(gen));
		json_object_object_add(j, "config", c);
		for (int i = 0; i < n; i++) {
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "device", json_object_new_string(att[i].ifname));
			json_object_object_add(e, "ifindex", json_object_new_int(att[i].ifindex));
			json_object_object_add(e, "egress_prog_id", json_object_new_int64(att[i].egress_prog_id));
			json_object_object_add(e, "ingress_prog_id", json_object_new_int64(att[i].ingress_prog_id));
			json_object_array_add(a, e);
		}
		json_object_object_add(j, "attached", a);
		for (unsigned i = 0; i < BW_REASON_MAX; i++) {
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "packets", json_object_new_uint64(st[i].packets));
			json_object_object_add(e, "bytes", json_object_new_uint64(st[i].bytes));
			for (unsigned d = 0; d < 2; d++) {
				struct json_object *x = json_object_new_object();
				json_object_object_add(x, "packets", json_object_new_uint64(sd[d][i].packets));
				json_object_object_add(x, "bytes", json_object_new_uint64(sd[d][i].bytes));
				json_object_object_add(e, d ? "ingress" : "egress", x);
			}
			json_object_object_add(s, bw_reason_name(i), e);
		}
		json_object_object_add(j, "counters", s);
		bw_cli_print_json(j);
		return code;
	}
	printf("pin dir:   %s\n", bw_pin_dir(o.pin_dir));
	printf("wireguard: %s (ifindex %u), fwmark 0x%x, port %u%s\n", wg, cfg.wg_ifindex, cfg.wg_fwmark, cfg.wg_port,
	       !strcmp(wg, "MISSING") || !cfg.wg_ifindex ? ": WARNING protected traffic is dropped (no device)" : "");
	printf("node encryption: %s, overlay port: %u\n", cfg.flags & BW_CFG_NODE_ENCRYPTION ? "on" : "off",
	       cfg.overlay_port);
	printf("flow cache: %s, generation %llu\n", cache ? "on" : "off", (unsigned long long)gen);
	printf("attached:%s\n", n ? "" : " none");
	for (int i = 0; i < n; i++)
		printf("  %-16s ifindex %-4d egress prog %-6u ingress prog %u\n", att[i].ifname, att[i].ifindex,
		       att[i].egress_prog_id, att[i].ingress_prog_id);
	printf("counters:                   %12s %12s %14s %14s\n", "egress pkts", "ingress pkts", "egress bytes",
	       "ingress bytes");
	for (unsigned i = 0; i < BW_REASON_MAX; i++)
		printf("  %-26s %12llu %12llu %14llu %14llu\n", bw_reason_name(i), (unsigned long long)sd[0][i].packets,
		       (unsigned long long)sd[1][i].packets, (unsigned long long)sd[0][i].bytes,
		       (unsigned long long)sd[1][i].bytes);
	code = bw_cli_enforcement(o.pin_dir, uplinks, n_up, NULL, stdout);
	if (!cfg.wg_ifindex || !strcmp(wg, "MISSING"))
		code = bw_cli_worse(code, BW_EXIT_NO_DEVICE);
	printf("enforcement: %s\n", code == BW_EXIT_OK ? "complete" : "INCOMPLETE");
	return code;
}

static int peer_line(const struct bw_cidr *c, const struct bw_peer *p, void *ctx)
{
	char buf[64], key[45];

	bw_key_to_base64(p->pubkey, key);
	if (ctx) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "prefix", json_object_new_string(bw_cidr_str(c, buf, sizeof(buf))));
		json_object_object_add(e, "public_key", json_object_new_string(key));
		json_object_object_add(e, "peer_id", json_object_new_int64(p->peer_id));
		json_object_array_add(ctx, e);
	} else {
		printf("%-44s %s  id %u\n", bw_cidr_str(c, buf, sizeof(buf)), key, p->peer_id);
	}
	return 0;
}

static int cmd_peers(int argc, char **argv)
{
	struct opts o;
	struct bw_dp *dp = NULL;
	struct json_object *arr = NULL;
	int r;

	if (parse_opts(argc, argv, &o, "json pin-dir") < 0)
		return BW_EXIT_USAGE;
	if (open_dp(o.pin_dir, &dp) < 0)
		return BW_EXIT_FAIL;
	if (o.json)
		arr = json_object_new_array();
	r = bw_dp_peers_foreach(dp, peer_line, arr);
	bw_dp_close(dp);
	if (r < 0) {
		json_object_put(arr);
		fprintf(stderr, "bulwark: peers: %s\n", strerror(-r));
		return BW_EXIT_FAIL;
	}
	if (arr)
		bw_cli_print_json(arr);
	return BW_EXIT_OK;
}

struct mon_ctx {
	bool json;
	long left;
	int64_t boot_to_real_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC: event times are monotonic */
	int reason;              /* -1: any */
	int ifindex;             /* 0: any */
	int family;              /* 0: any address */
	uint8_t addr[16];
};

static volatile sig_atomic_t stop_monitor;
static void on_signal(int sig) { (void)sig; stop_monitor = 1; }

static const char *proto_name(int p, char *buf, size_t n)
{
	switch (p) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmp6";
	case 0: return "-";
	default: snprintf(buf, n, "proto-%d", p); return buf;
	}
}

static int on_drop(const struct bw_event *e, void *arg)
{
	struct mon_ctx *m = arg;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], ifn[IF_NAMESIZE] = "?", pb[16];
	int af = e->family == 4 ? AF_INET : AF_INET6;

	int64_t real = (int64_t)e->ts_ns + m->boot_to_real_ns;
	time_t sec = (time_t)(real / 1000000000);
	char when[48];
	struct tm tm;
	size_t l;

	if ((m->reason >= 0 && e->reason != m->reason) || (m->ifindex && (int)e->ifindex != m->ifindex))
		return stop_monitor;
	if (m->family && (m->family != e->family || (memcmp(e->saddr, m->addr, e->family == 4 ? 4 : 16) &&
						     memcmp(e->daddr, m->addr, e->family == 4 ? 4 : 16))))
		return stop_monitor;
	gmtime_r(&sec, &tm);
	l = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + l, sizeof(when) - l, ".%06uZ", (unsigned)((real % 1000000000) / 1000));
	inet_ntop(af, e->saddr, s, sizeof(s));
	inet_ntop(af, e->daddr, d, sizeof(d));
	if_indextoname(e->ifindex, ifn);
	if (m->json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "reason", json_object_new_string(bw_reason_name(e->reason)));
		json_object_object_add(j, "direction", json_object_new_string(e->dir == BW_DIR_EGRESS ? "egress" : "ingress"));
		json_object_object_add(j, "ifindex", json_object_new_int(e->ifindex));
		json_object_object_add(j, "device", json_object_new_string(ifn));
		json_object_object_add(j, "family", json_object_new_int(e->family));
		json_object_object_add(j, "protocol", json_object_new_string(proto_name(e->l4proto, pb, sizeof(pb))));
		json_object_object_add(j, "saddr", json_object_new_string(s));
		json_object_object_add(j, "daddr", json_object_new_string(d));
		json_object_object_add(j, "sport", json_object_new_int(e->sport));
		json_object_object_add(j, "dport", json_object_new_int(e->dport));
		json_object_object_add(j, "length", json_object_new_int64(e->len));
		json_object_object_add(j, "time", json_object_new_string(when));
		json_object_object_add(j, "ts_ns", json_object_new_uint64(e->ts_ns));
		bw_cli_print_json(j);
	} else {
		printf("%s drop %-26s %-7s %-12s %-5s %s:%u -> %s:%u len %u\n", when, bw_reason_name(e->reason),
		       e->dir == BW_DIR_EGRESS ? "egress" : "ingress", ifn, proto_name(e->l4proto, pb, sizeof(pb)),
		       s, e->sport, d, e->dport, e->len);
	}
	fflush(stdout);
	return stop_monitor || (m->left > 0 && --m->left == 0);
}

static int cmd_monitor(int argc, char **argv)
{
	struct opts o;
	struct bw_dp *dp = NULL;
	struct mon_ctx m;
	int r;

	struct timespec rt, mono;

	if (parse_opts(argc, argv, &o, "json count timeout pin-dir replay reason uplink addr") < 0)
		return BW_EXIT_USAGE;
	m = (struct mon_ctx){ .json = o.json, .left = o.count, .reason = -1 };
	if (o.reason) {
		for (unsigned i = 0; i < BW_REASON_MAX; i++)
			if (!strcmp(o.reason, bw_reason_name(i)))
				m.reason = (int)i;
		if (m.reason < 0) {
			fprintf(stderr, "bulwark: --reason %s: not a reason name (see 'bulwark datapath status')\n", o.reason);
			return BW_EXIT_USAGE;
		}
	}
	if (o.n_uplinks == 1 && !(m.ifindex = (int)if_nametoindex(o.uplinks[0]))) {
		fprintf(stderr, "bulwark: --uplink %s: no such network device\n", o.uplinks[0]);
		return BW_EXIT_USAGE;
	} else if (o.n_uplinks > 1) {
		fprintf(stderr, "bulwark: monitor takes one --uplink\n");
		return BW_EXIT_USAGE;
	}
	if (o.addr) {
		if (inet_pton(AF_INET, o.addr, m.addr) == 1)
			m.family = 4;
		else if (inet_pton(AF_INET6, o.addr, m.addr) == 1)
			m.family = 6;
		else {
			fprintf(stderr, "bulwark: --addr %s: not an IPv4 or IPv6 address\n", o.addr);
			return BW_EXIT_USAGE;
		}
	}
	if (open_dp(o.pin_dir, &dp) < 0)
		return BW_EXIT_FAIL;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	m.boot_to_real_ns = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
	/* Events already in the ring are old drops, not live ones: skip them unless asked. */
	if (!o.replay)
		bw_dp_monitor_drain(dp);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	r = bw_dp_monitor(dp, on_drop, &m, o.timeout >= 0 ? (int)(o.timeout * 1000) : -1);
	bw_dp_close(dp);
	if (r < 0) {
		fprintf(stderr, "bulwark: monitor: %s\n", strerror(-r));
		return BW_EXIT_FAIL;
	}
	return BW_EXIT_OK;
}

static const struct bw_cli_verb verbs[] = {
	{ "attach", "load and attach to uplinks: --config FILE (its uplinks and device) | --uplink DEV... --wg-dev DEV", cmd_attach, ATTACH_ARGS },
	{ "detach", "remove the filters from every device [--purge: also unpin maps]", cmd_detach, "[--purge] [--pin-dir DIR] [--json]" },
	{ "apply", "make the maps equal to a config file: --config FILE", cmd_apply, APPLY_ARGS },
	{ "status", "enforcement per uplink, config, counters; exit 0 only when complete [--json] [--config FILE | --uplink DEV...]", cmd_status, "[--config FILE | --uplink DEV...] [--pin-dir DIR] [--json]" },
	{ "peers", "peer prefixes in the datapath [--json]", cmd_peers, "[--pin-dir DIR] [--json]" },
	{ "monitor", "stream new drop events with wall-clock time [--json] [--count N] [--timeout S] [--replay] "
		     "[--reason NAME] [--uplink DEV] [--addr IP]", cmd_monitor,
	  "[--count N] [--timeout S] [--replay] [--reason NAME] [--uplink DEV] [--addr IP] [--pin-dir DIR] [--json]" },
	{ 0 },
};

const struct bw_cli_area bw_cli_datapath = { .name = "datapath", .summary = "uplink eBPF enforcement", .verbs = verbs };
