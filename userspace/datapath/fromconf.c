// SPDX-License-Identifier: GPL-2.0-only
/* The datapath's desired state, derived from bulwark's configuration. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include "datapath/datapath.h"
#include "wireguard-conf/conf.h"

void bw_dp_desired_free(struct bw_dp_desired *d)
{
	free((void *)d->protect);
	free((void *)d->peers);
	free((void *)d->allow);
	memset(d, 0, sizeof(*d));
}

int bw_dp_desired_from_conf(const struct bw_conf *c, struct bw_dp_desired *d)
{
	const struct bw_conf_node *n = &c->node;
	struct bw_dp_prefix *protect;
	struct bw_dp_peer_prefix *peers;
	struct bw_allow_key *allow;
	size_t np = 0, npeer = 0, na = 0;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < c->n_peers; i++)
		npeer += c->peers[i].n_allowed_ips;
	protect = calloc(n->n_protected + n->n_node_cidrs + 1, sizeof(*protect));
	peers = calloc(npeer + 1, sizeof(*peers));
	allow = calloc(2 * n->n_allow + n->n_overlay_ports + 1, sizeof(*allow));
	if (!protect || !peers || !allow) {
		free(protect);
		free(peers);
		free(allow);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n->n_protected; i++)
		protect[np++] = (struct bw_dp_prefix){ n->protected_cidrs[i], BW_CLASS_POD };
	for (size_t i = 0; i < n->n_node_cidrs; i++)
		protect[np++] = (struct bw_dp_prefix){ n->node_cidrs[i], BW_CLASS_NODE };
	npeer = 0;
	for (size_t i = 0; i < c->n_peers; i++)
		for (size_t j = 0; j < c->peers[i].n_allowed_ips; j++) {
			struct bw_dp_peer_prefix *pp = &peers[npeer++];
			pp->cidr = c->peers[i].allowed_ips[j];
			memcpy(pp->peer.pubkey, c->peers[i].public_key, 32);
			pp->peer.peer_id = bw_dp_peer_id(c->peers[i].public_key);
		}
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
