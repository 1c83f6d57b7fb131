// SPDX-License-Identifier: GPL-2.0-only
/* Parser for the node file and peer files: line based, bounded, all or nothing. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include "wireguard-conf/conf.h"

enum section { SEC_NONE, SEC_NODE, SEC_IFACE, SEC_PEER };

struct ctx {
	const char *path;
	unsigned line;
	char *err;
	size_t errlen;
	enum section sec;
	unsigned seen; /* bit per scalar key, to refuse duplicates */
};

__attribute__((format(printf, 2, 3)))
static int fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->err, c->errlen, "%s:%u: ", c->path, c->line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_u32(struct ctx *c, const char *key, const char *v, unsigned long max, uint32_t *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 0);
	if (errno || *end || end == v || *v == '-' || n > max)
		return fail(c, "%s: '%s' is not a number from 0 to %lu", key, v, max);
	*out = (uint32_t)n;
	return 0;
}

static int parse_bool(struct ctx *c, const char *key, const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return fail(c, "%s: '%s' is not true or false", key, v);
	return 0;
}

static int parse_str(struct ctx *c, const char *key, const char *v, char *out, size_t size)
{
	if (!*v)
		return fail(c, "%s: empty value", key);
	if (strlen(v) >= size)
		return fail(c, "%s: longer than %zu characters", key, size - 1);
	strcpy(out, v);
	return 0;
}

/* Calls fn for each comma-separated, trimmed item; an empty item is an error (a typo). */
static int each_item(struct ctx *c, const char *key, char *v, int (*fn)(struct ctx *, const char *, const char *, void *), void *arg)
{
	int r;

	for (char *item = v, *next; item; item = next) {
		char *comma = strchr(item, ',');

		next = comma ? comma + 1 : NULL;
		if (comma)
			*comma = '\0';
		item = trim(item);
		if (!*item)
			return fail(c, "%s: empty list item", key);
		if ((r = fn(c, key, item, arg)) < 0)
			return r;
	}
	return 0;
}

struct cidr_list {
	struct bw_cidr *v;
	size_t *n;
	size_t max;
	bool grow; /* v is heap-allocated and may be grown (peer AllowedIPs) */
	struct bw_cidr **heap;
	/* ProtectedCIDRs vs NodeCIDRs: the other class's list, and whether this list is the nodes' */
	const struct bw_cidr *other;
	const size_t *n_other;
	bool is_node;
};

/* Does a contain b (every address of b is in a)? */
static bool cidr_contains(const struct bw_cidr *a, const struct bw_cidr *b)
{
	unsigned full = a->len / 8, bits = a->len % 8;

	if (a->family != b->family || a->len > b->len)
		return false;
	if (memcmp(a->addr, b->addr, full))
		return false;
	return !bits || ((a->addr[full] ^ b->addr[full]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

/*
 * An address is a pod's or a node's, never both: overlapping ProtectedCIDRs and NodeCIDRs are
 * refused, except a node prefix strictly inside a pod prefix (VPC CNIs give nodes single
 * addresses out of the pod range): there the longer prefix wins, as in the datapath's LPM tries.
 */
static int class_overlap(struct ctx *c, const char *key, const struct cidr_list *l, const struct bw_cidr *cidr)
{
	char a[64], b[64];

	for (size_t i = 0; l->other && i < *l->n_other; i++) {
		const struct bw_cidr *o = &l->other[i], *pod = l->is_node ? o : cidr, *node = l->is_node ? cidr : o;

		if (!cidr_contains(o, cidr) && !cidr_contains(cidr, o))
			continue;
		if (cidr_contains(pod, node) && node->len > pod->len)
			continue;
		return fail(c, "%s: '%s' overlaps %s '%s': an address is a pod's or a node's, not both "
			    "(only a node prefix longer than the pod prefix it sits in is allowed: the longer prefix wins)",
			    key, bw_cidr_str(cidr, a, sizeof(a)), l->is_node ? "ProtectedCIDRs" : "NodeCIDRs",
			    bw_cidr_str(o, b, sizeof(b)));
	}
	return 0;
}

static int add_cidr(struct ctx *c, const char *key, const char *item, void *arg)
{
	struct cidr_list *l = arg;
	struct bw_cidr cidr;

	if (bw_cidr_parse(item, &cidr) < 0)
		return fail(c, "%s: '%s' is not an IP prefix (address/length, host bits zero)", key, item);
	if (*l->n >= l->max)
		return fail(c, "%s: more than %zu prefixes", key, l->max);
	if (l->grow) {
		struct bw_cidr *nv = realloc(*l->heap, (*l->n + 1) * sizeof(**l->heap));
		if (!nv)
			return -ENOMEM;
		*l->heap = nv;
		l->v = nv;
	}
	for (size_t i = 0; i < *l->n; i++)
		if (bw_cidr_eq(&l->v[i], &cidr))
			return fail(c, "%s: '%s' listed twice", key, item);
	if (class_overlap(c, key, l, &cidr) < 0)
		return -EINVAL;
	l->v[(*l->n)++] = cidr;
	return 0;
}

static int add_uplink(struct ctx *c, const char *key, const char *item, void *arg)
{
	struct bw_conf_node *n = arg;

	if (n->n_uplinks >= BW_CONF_MAX_LIST)
		return fail(c, "%s: more than %d devices", key, BW_CONF_MAX_LIST);
	if (strlen(item) >= sizeof(n->uplinks[0]) || strchr(item, '/') || strchr(item, ' '))
		return fail(c, "%s: '%s' is not a network device name", key, item);
	strcpy(n->uplinks[n->n_uplinks++], item);
	return 0;
}

/* proto/port[/egress|ingress|both], e.g. tcp/6443 or udp/53/egress */
static int add_allow(struct ctx *c, const char *key, const char *item, void *arg)
{
	struct bw_conf_node *n = arg;
	char buf[64], *proto, *port, *dir, *save = NULL;
	struct bw_conf_allow a = { .dir = BW_CONF_BOTH };
	uint32_t p;

	if (strlen(item) >= sizeof(buf))
		return fail(c, "%s: '%s' is too long", key, item);
	strcpy(buf, item);
	proto = strtok_r(buf, "/", &save);
	port = strtok_r(NULL, "/", &save);
	dir = strtok_r(NULL, "/", &save);
	if (!proto || !port || strtok_r(NULL, "/", &save))
		return fail(c, "%s: '%s' is not proto/port[/direction]", key, item);
	if (!strcasecmp(proto, "tcp"))
		a.proto = IPPROTO_TCP;
	else if (!strcasecmp(proto, "udp"))
		a.proto = IPPROTO_UDP;
	else
		return fail(c, "%s: protocol '%s' is not tcp or udp", key, proto);
	if (parse_u32(c, key, port, 65535, &p) < 0 || p == 0)
		return p == 0 ? fail(c, "%s: port 0 is not a port", key) : -EINVAL;
	a.port = (uint16_t)p;
	if (dir && !strcasecmp(dir, "egress"))
		a.dir = BW_CONF_EGRESS;
	else if (dir && !strcasecmp(dir, "ingress"))
		a.dir = BW_CONF_INGRESS;
	else if (dir && strcasecmp(dir, "both"))
		return fail(c, "%s: direction '%s' is not egress, ingress or both", key, dir);
	if (n->n_allow >= BW_CONF_MAX_LIST)
		return fail(c, "%s: more than %d entries", key, BW_CONF_MAX_LIST);
	n->allow[n->n_allow++] = a;
	return 0;
}

/* A KBS resource path: exactly three segments of [A-Za-z0-9._-], none "." or "..". */
static bool resource_path_ok(const char *v)
{
	int segs = 0;

	for (const char *p = v;; p++) {
		size_t len = strcspn(p, "/");

		if (!len || len > 64 || strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len ||
		    (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		segs++;
		p += len;
		if (!*p)
			return segs == 3;
	}
}

/* Scalar keys, one bit each in ctx.seen: a key given twice in its section is refused. */
enum seen_key {
	/* [Node] */
	SEEN_NAME, SEEN_NODE_ENCRYPTION, SEEN_OVERLAY_PORT, SEEN_STATE_DIR, SEEN_PEERS_DIR,
	SEEN_KEY_SERVICE, SEEN_FLOW_CACHE, SEEN_MESH_SECRET, SEEN_KEY_SERVICE_CA, SEEN_ATTESTER,
	SEEN_TPM_TCTI, SEEN_PEER_SOURCE, SEEN_KUBE_API, SEEN_KUBE_TOKEN_FILE, SEEN_KUBE_CA_FILE,
	SEEN_KUBECONFIG,
	/* [Interface] */
	SEEN_DEVICE, SEEN_PRIVATE_KEY_FILE, SEEN_LISTEN_PORT, SEEN_FWMARK, SEEN_MTU,
	/* [Peer] */
	SEEN_PEER_NODE, SEEN_PUBLIC_KEY, SEEN_PRESHARED_KEY, SEEN_ENDPOINT, SEEN_KEEPALIVE,
	SEEN_COUNT
};
_Static_assert(SEEN_COUNT <= 32, "ctx.seen has 32 bits");

/* A scalar key may appear once per section. */
static int once(struct ctx *c, enum seen_key bit, const char *key)
{
	if (c->seen & (1u << bit))
		return fail(c, "%s given twice", key);
	c->seen |= 1u << bit;
	return 0;
}

#define KEY(name) (!strcasecmp(key, name))

static bool is_overlay_port(const struct bw_conf_node *n, uint16_t port)
{
	static const uint16_t defaults[] = BW_CONF_OVERLAY_DEFAULTS;

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (port == defaults[i])
			return true;
	for (size_t i = 0; i < n->n_overlay_ports; i++)
		if (port == n->overlay_ports[i])
			return true;
	return false;
}

/* One UDP port of an overlay (OverlayPort, OverlayPorts); never WireGuard's own. */
static int add_overlay_port(struct ctx *c, const char *key, const char *item, void *arg)
{
	struct bw_conf *conf = arg;
	struct bw_conf_node *n = &conf->node;
	uint32_t u;
	int r;

	if ((r = parse_u32(c, key, item, 65535, &u)) < 0)
		return r;
	if (!u)
		return fail(c, "%s: port 0 is not a port", key);
	if (u == conf->iface.listen_port)
		return fail(c, "%s: %u is the WireGuard ListenPort", key, u);
	for (size_t i = 0; i < n->n_overlay_ports; i++)
		if (n->overlay_ports[i] == u)
			return fail(c, "%s: port %u listed twice", key, u);
	if (n->n_overlay_ports >= BW_CONF_MAX_LIST)
		return fail(c, "%s: more than %d ports", key, BW_CONF_MAX_LIST);
	n->overlay_ports[n->n_overlay_ports++] = (uint16_t)u;
	n->overlay_port = n->overlay_ports[0];
	return 0;
}

static int node_key(struct ctx *c, struct bw_conf *conf, const char *key, char *v)
{
	struct bw_conf_node *n = &conf->node;
	int r;

	if (KEY("Name"))
		return once(c, SEEN_NAME, key) ?: parse_str(c, key, v, n->name, sizeof(n->name));
	if (KEY("Uplinks"))
		return each_item(c, key, v, add_uplink, n);
	if (KEY("ProtectedCIDRs"))
		return each_item(c, key, v, add_cidr, &(struct cidr_list){ n->protected_cidrs, &n->n_protected, BW_CONF_MAX_LIST, false, NULL,
									 n->node_cidrs, &n->n_node_cidrs, false });
	if (KEY("NodeCIDRs"))
		return each_item(c, key, v, add_cidr, &(struct cidr_list){ n->node_cidrs, &n->n_node_cidrs, BW_CONF_MAX_LIST, false, NULL,
									 n->protected_cidrs, &n->n_protected, true });
	if (KEY("PodCIDRs"))
		return each_item(c, key, v, add_cidr, &(struct cidr_list){ n->pod_cidrs, &n->n_pod_cidrs, BW_CONF_MAX_LIST, false, NULL, NULL, NULL, false });
	if (KEY("NodeEncryption"))
		return once(c, SEEN_NODE_ENCRYPTION, key) ?: parse_bool(c, key, v, &n->node_encryption);
	if (KEY("Allow"))
		return each_item(c, key, v, add_allow, n);
	if (KEY("OverlayPort")) {
		if ((r = once(c, SEEN_OVERLAY_PORT, key)) < 0)
			return r;
		return add_overlay_port(c, key, v, conf);
	}
	if (KEY("OverlayPorts"))
		return each_item(c, key, v, add_overlay_port, conf);
	if (KEY("FlowCache")) {
		bool on;

		if ((r = once(c, SEEN_FLOW_CACHE, key)) < 0 || (r = parse_bool(c, key, v, &on)) < 0)
			return r;
		n->no_flow_cache = !on;
		return 0;
	}
	if (KEY("StateDir"))
		return once(c, SEEN_STATE_DIR, key) ?: parse_str(c, key, v, n->state_dir, sizeof(n->state_dir));
	if (KEY("PeersDir"))
		return once(c, SEEN_PEERS_DIR, key) ?: parse_str(c, key, v, n->peers_dir, sizeof(n->peers_dir));
	if (KEY("PeerSource")) {
		if ((r = once(c, SEEN_PEER_SOURCE, key)) < 0)
			return r;
		if (!strcasecmp(v, "directory"))
			n->peer_source = BW_PEERS_DIRECTORY;
		else if (!strcasecmp(v, "kubernetes"))
			n->peer_source = BW_PEERS_KUBERNETES;
		else
			return fail(c, "PeerSource '%s': expected directory or kubernetes", v);
		return 0;
	}
	if (KEY("KubeAPI"))
		return once(c, SEEN_KUBE_API, key) ?: parse_str(c, key, v, n->kube_api, sizeof(n->kube_api));
	if (KEY("KubeTokenFile"))
		return once(c, SEEN_KUBE_TOKEN_FILE, key) ?: parse_str(c, key, v, n->kube_token_file, sizeof(n->kube_token_file));
	if (KEY("KubeCAFile"))
		return once(c, SEEN_KUBE_CA_FILE, key) ?: parse_str(c, key, v, n->kube_ca_file, sizeof(n->kube_ca_file));
	if (KEY("Kubeconfig"))
		return once(c, SEEN_KUBECONFIG, key) ?: parse_str(c, key, v, n->kubeconfig, sizeof(n->kubeconfig));
	if (KEY("KeyService"))
		return once(c, SEEN_KEY_SERVICE, key) ?: parse_str(c, key, v, n->key_service, sizeof(n->key_service));
	if (KEY("MeshSecret")) {
		if ((r = once(c, SEEN_MESH_SECRET, key)) < 0)
			return r;
		if (!resource_path_ok(v))
			return fail(c, "MeshSecret '%s' is not a key-service resource path (repository/type/tag)", v);
		return parse_str(c, key, v, n->mesh_secret, sizeof(n->mesh_secret));
	}
	if (KEY("KeyServiceCA"))
		return once(c, SEEN_KEY_SERVICE_CA, key) ?: parse_str(c, key, v, n->key_service_ca, sizeof(n->key_service_ca));
	if (KEY("Attester")) {
		if ((r = once(c, SEEN_ATTESTER, key)) < 0)
			return r;
		if (strcmp(v, "tpm") && strcmp(v, "tsm") && strcmp(v, "sample"))
			return fail(c, "Attester '%s' is not one of tpm, tsm, sample", v);
		return parse_str(c, key, v, n->attester, sizeof(n->attester));
	}
	if (KEY("TPMTcti"))
		return once(c, SEEN_TPM_TCTI, key) ?: parse_str(c, key, v, n->tpm_tcti, sizeof(n->tpm_tcti));
	return fail(c, "unknown key '%s' in [Node]", key);
}

static int iface_key(struct ctx *c, struct bw_conf *conf, const char *key, char *v)
{
	struct bw_conf_iface *i = &conf->iface;
	uint32_t u;
	int r;

	if (KEY("Device"))
		return once(c, SEEN_DEVICE, key) ?: parse_str(c, key, v, i->device, sizeof(i->device));
	if (KEY("PrivateKeyFile"))
		return once(c, SEEN_PRIVATE_KEY_FILE, key) ?: parse_str(c, key, v, i->private_key_file, sizeof(i->private_key_file));
	if (KEY("PrivateKey"))
		return fail(c, "PrivateKey does not belong in a config file; bulwark keeps the key in PrivateKeyFile (0600)");
	if (KEY("ListenPort")) {
		if ((r = once(c, SEEN_LISTEN_PORT, key)) < 0 || (r = parse_u32(c, key, v, 65535, &u)) < 0)
			return r;
		if (u && is_overlay_port(&conf->node, (uint16_t)u))
			return fail(c, "ListenPort %u is an overlay port (OverlayPorts, or VXLAN/Geneve's "
				    "4789, 8472, 6081): the datapath protects those as pod traffic", u);
		i->listen_port = (uint16_t)u;
		return 0;
	}
	if (KEY("FwMark")) {
		if ((r = once(c, SEEN_FWMARK, key)) < 0)
			return r;
		if (!strcasecmp(v, "off")) {
			i->fwmark = 0;
			return 0;
		}
		return parse_u32(c, key, v, UINT32_MAX, &i->fwmark);
	}
	if (KEY("MTU")) {
		if ((r = once(c, SEEN_MTU, key)) < 0 || (r = parse_u32(c, key, v, 65535, &u)) < 0)
			return r;
		if (u && u < 1280)
			return fail(c, "MTU %u is below the IPv6 minimum of 1280", u);
		i->mtu = u;
		return 0;
	}
	return fail(c, "unknown key '%s' in [Interface]", key);
}

static int peer_key(struct ctx *c, struct bw_conf_peer *p, const char *key, char *v)
{
	uint32_t u;
	int r;

	if (KEY("Node"))
		return once(c, SEEN_PEER_NODE, key) ?: parse_str(c, key, v, p->node, sizeof(p->node));
	if (KEY("PublicKey")) {
		if ((r = once(c, SEEN_PUBLIC_KEY, key)) < 0)
			return r;
		return bw_key_from_base64(v, p->public_key) < 0 ? fail(c, "PublicKey is not a base64 WireGuard key") : 0;
	}
	if (KEY("PresharedKey")) {
		if ((r = once(c, SEEN_PRESHARED_KEY, key)) < 0)
			return r;
		if (bw_key_from_base64(v, p->psk) < 0)
			return fail(c, "PresharedKey is not a base64 WireGuard key");
		p->has_psk = true;
		return 0;
	}
	if (KEY("Endpoint")) {
		if ((r = once(c, SEEN_ENDPOINT, key)) < 0)
			return r;
		/* Numeric only: resolving a name here would hide a failure behind DNS. */
		if (bw_endpoint_parse(v, &p->endpoint) < 0)
			return fail(c, "Endpoint '%s' is not address:port (a.b.c.d:port or [x::y]:port, port 1-65535; names are not resolved)", v);
		return 0;
	}
	if (KEY("AllowedIPs"))
		return each_item(c, key, v, add_cidr, &(struct cidr_list){ p->allowed_ips, &p->n_allowed_ips, BW_CONF_MAX_ALLOWED_IPS, true, &p->allowed_ips, NULL, NULL, false });
	if (KEY("PersistentKeepalive")) {
		if ((r = once(c, SEEN_KEEPALIVE, key)) < 0)
			return r;
		if (!strcasecmp(v, "off")) {
			p->keepalive = 0;
			return 0;
		}
		if ((r = parse_u32(c, key, v, 65535, &u)) < 0)
			return r;
		p->keepalive = (uint16_t)u;
		return 0;
	}
	return fail(c, "unknown key '%s' in [Peer]", key);
}

/* Split text into lines and hand each key/value to the section's handler. */
static int parse_lines(struct ctx *c, const char *text, bool peer_file,
		       int (*on_key)(struct ctx *, void *, const char *, char *), void *arg)
{
	char line[BW_CONF_MAX_LINE + 2];
	const char *p = text;
	bool peer_seen = false;
	int r;

	if (strlen(text) > BW_CONF_MAX_FILE)
		return fail(c, "file larger than %u bytes", BW_CONF_MAX_FILE);
	for (c->line = 1; *p; c->line++) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *s, *eq, *hash;

		if (len > BW_CONF_MAX_LINE)
			return fail(c, "line longer than %d characters", BW_CONF_MAX_LINE);
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl ? 1 : 0);
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		s = trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			if (!strcasecmp(s, "[Node]") && !peer_file)
				c->sec = SEC_NODE;
			else if (!strcasecmp(s, "[Interface]") && !peer_file)
				c->sec = SEC_IFACE;
			else if (!strcasecmp(s, "[Peer]") && peer_file && !peer_seen)
				c->sec = SEC_PEER, peer_seen = true;
			else if (!strcasecmp(s, "[Peer]") && peer_file)
				return fail(c, "a peer file holds exactly one [Peer] section");
			else
				return fail(c, "unexpected section %s", s);
			continue;
		}
		if (c->sec == SEC_NONE)
			return fail(c, "'%s' outside of a section", s);
		if (!(eq = strchr(s, '=')))
			return fail(c, "expected Key = Value");
		*eq = '\0';
		if ((r = on_key(c, arg, trim(s), trim(eq + 1))) < 0)
			return r;
	}
	c->line = 0;
	return 0;
}

static int node_dispatch(struct ctx *c, void *arg, const char *key, char *v)
{
	return c->sec == SEC_NODE ? node_key(c, arg, key, v) : iface_key(c, arg, key, v);
}

static int peer_dispatch(struct ctx *c, void *arg, const char *key, char *v)
{
	return peer_key(c, arg, key, v);
}

static int missing(struct ctx *c, const char *what)
{
	snprintf(c->err, c->errlen, "%s: %s", c->path, what);
	return -EINVAL;
}

static char name_override[64]; /* bw_conf_set_node_name (bulwarkd --node-name) */

static bool node_name_ok(const char *s)
{
	if (!s[0] || strlen(s) >= sizeof(name_override))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._", *p))
			return false;
	return true;
}

int bw_conf_set_node_name(const char *name)
{
	if (name && !node_name_ok(name))
		return -EINVAL;
	snprintf(name_override, sizeof(name_override), "%s", name ? name : "");
	return 0;
}

/*
 * One node file for the whole cluster leaves Name out: it comes from NODE_NAME, which a DaemonSet
 * sets from the downward API (spec.nodeName), else from the host name (kubelet's default node
 * name: the host name in lower case). A Name in the file wins over both; --node-name over all.
 */
static int name_from_env(struct ctx *c, struct bw_conf *out)
{
	const char *env = getenv("NODE_NAME");
	char host[256] = "";

	if (env && *env) {
		if (strlen(env) >= sizeof(out->node.name))
			return missing(c, "NODE_NAME is longer than 63 characters");
		if (!node_name_ok(env))
			return missing(c, "NODE_NAME is not a node name (letters, digits, '-', '.', '_')");
		strcpy(out->node.name, env);
		return 0;
	}
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		return missing(c, "[Node] Name is required (NODE_NAME is not set and the host has no name)");
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!node_name_ok(host))
		return missing(c, "[Node] Name is required (NODE_NAME is not set and the host name is not a node name)");
	strcpy(out->node.name, host);
	return 0;
}

int bw_conf_parse_node(const char *path, const char *text, struct bw_conf *out, char *err, size_t errlen)
{
	struct ctx c = { path, 0, err, errlen, SEC_NONE, 0 };
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(out->path, sizeof(out->path), "%s", path);
	if ((r = parse_lines(&c, text, false, node_dispatch, out)) < 0)
		return r;
	if (name_override[0])
		strcpy(out->node.name, name_override);
	else if (!out->node.name[0] && (r = name_from_env(&c, out)) < 0)
		return r;
	if (!out->node.n_uplinks)
		return missing(&c, "[Node] Uplinks is required");
	if (!out->node.n_protected)
		return missing(&c, "[Node] ProtectedCIDRs is required");
	if (!out->iface.device[0])
		return missing(&c, "[Interface] Device is required");
	if (!out->iface.listen_port)
		return missing(&c, "[Interface] ListenPort is required");
	if (!out->node.state_dir[0])
		strcpy(out->node.state_dir, "/var/lib/bulwark");
	if (!out->node.peers_dir[0])
		strcpy(out->node.peers_dir, "/etc/bulwark/peers.d");
	if (!out->iface.private_key_file[0])
		snprintf(out->iface.private_key_file, sizeof(out->iface.private_key_file), "%.200s/wg.key",
			 out->node.state_dir);
	if (out->node.mesh_secret[0] && !out->node.key_service[0])
		return missing(&c, "[Node] MeshSecret needs KeyService (the attested key service holding it)");
	if (!out->node.attester[0])
		strcpy(out->node.attester, "tpm");
	return 0;
}

int bw_conf_parse_peer(const char *path, const char *text, struct bw_conf_peer *out, char *err, size_t errlen)
{
	struct ctx c = { path, 0, err, errlen, SEC_NONE, 0 };
	const char *base = strrchr(path, '/');
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(out->file, sizeof(out->file), "%s", path);
	r = parse_lines(&c, text, true, peer_dispatch, out);
	if (r == 0 && !(c.seen & (1u << SEEN_PUBLIC_KEY)))
		r = missing(&c, "[Peer] PublicKey is required");
	if (r < 0) {
		bw_conf_peers_free(out, 1);
		memset(out, 0, sizeof(*out));
		return r;
	}
	if (!out->node[0]) {
		/* The node name defaults to the file name without .conf. */
		base = base ? base + 1 : path;
		snprintf(out->node, sizeof(out->node), "%.*s", (int)strcspn(base, "."), base);
	}
	return 0;
}
