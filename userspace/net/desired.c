// SPDX-License-Identifier: GPL-2.0-only
/* The datapath's desired state, built once from the configuration and its peers (whatever the
 * peer source: the peers directory or the cluster's Nodes fill c->peers alike). */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include "datapath/datapath.h"
#include "net/net.h"

int bw_net_peer_prefixes(const struct bw_conf_peer *peers, size_t n, struct bw_dp_peer_prefix **out,
			 size_t *nout)
{
	struct bw_dp_peer_prefix *v;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += peers[i].n_allowed_ips;
	if (!(v = calloc(k + 1, sizeof(*v))))
		return -ENOMEM;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		struct bw_peer val = bw_dp_peer_value(peers[i].public_key);

		for (size_t j = 0; j < peers[i].n_allowed_ips; j++)
			v[k++] = (struct bw_dp_peer_prefix){ peers[i].allowed_ips[j], val };
	}
	*out = v;
	*nout = k;
	return 0;
}

int bw_net_desired(const struct bw_conf *c, struct bw_dp_desired *d)
{
	const struct bw_conf_node *n = &c->node;
	struct bw_dp_prefix *protect;
	struct bw_dp_peer_prefix *peers = NULL;
	struct bw_allow_key *allow;
	size_t np = 0, npeer = 0, na = 0;

	memset(d, 0, sizeof(*d));
	protect = calloc(n->n_protected + n->n_node_cidrs + 1, sizeof(*protect));
	allow = calloc(2 * n->n_allow + n->n_overlay_ports + 1, sizeof(*allow));
	if (!protect || !allow || bw_net_peer_prefixes(c->peers, c->n_peers, &peers, &npeer) < 0) {
		free(protect);
		free(peers);
		free(allow);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n->n_protected; i++)
		protect[np++] = (struct bw_dp_prefix){ n->protected_cidrs[i], BW_CLASS_POD };
	for (size_t i = 0; i < n->n_node_cidrs; i++)
		protect[np++] = (struct bw_dp_prefix){ n->node_cidrs[i], BW_CLASS_NODE };
	for (size_t i = 0; i < n->n_allow; i++) {
		if (n->allow[i].dir & BW_CONF_EGRESS)
			allow[na++] = (struct bw_allow_key){ n->allow[i].proto, BW_DIR_EGRESS, n->allow[i].port };
		if (n->allow[i].dir & BW_CONF_INGRESS)
			allow[na++] = (struct bw_allow_key){ n->allow[i].proto, BW_DIR_INGRESS, n->allow[i].port };
	}
	/* Overlay ports share the port table with the allowlist, under their own direction. */
	for (size_t i = 0; i < n->n_overlay_ports; i++)
		allow[na++] = (struct bw_allow_key){ IPPROTO_UDP, BW_ALLOW_OVERLAY, n->overlay_ports[i] };
	d->protect = protect;
	d->n_protect = np;
	d->peers = peers;
	d->n_peers = npeer;
	d->allow = allow;
	d->n_allow = na;
	d->config = (struct bw_config){
		.wg_ifindex = if_nametoindex(c->iface.device), /* 0: keep what attach set */
		.wg_fwmark = c->iface.fwmark,
		.wg_port = c->iface.listen_port,
		.overlay_port = n->overlay_port,
		.flags = BW_CFG_EVENTS | (n->no_flow_cache ? 0 : BW_CFG_FLOW_CACHE) |
			 (n->node_encryption ? BW_CFG_NODE_ENCRYPTION : 0),
	};
	return 0;
}
