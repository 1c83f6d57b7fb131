// SPDX-License-Identifier: GPL-2.0-only
/* Writers: output parses back to the same data; the wg_only form is what `wg setconf` takes. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <openssl/crypto.h>
#include "wireguard-conf/conf.h"

static void cidr_list(FILE *f, const char *key, const struct bw_cidr *v, size_t n)
{
	char buf[64];

	if (!n)
		return;
	fprintf(f, "%s = ", key);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "", bw_cidr_str(&v[i], buf, sizeof(buf)));
	fputc('\n', f);
}

int bw_conf_write_node(FILE *f, const struct bw_conf *c)
{
	const struct bw_conf_node *n = &c->node;
	static const char *const dirs[] = { "", "egress", "ingress", "both" };

	fprintf(f, "[Node]\nName = %s\nUplinks = ", n->name);
	for (size_t i = 0; i < n->n_uplinks; i++)
		fprintf(f, "%s%s", i ? ", " : "", n->uplinks[i]);
	fputc('\n', f);
	cidr_list(f, "ProtectedCIDRs", n->protected_cidrs, n->n_protected);
	cidr_list(f, "NodeCIDRs", n->node_cidrs, n->n_node_cidrs);
	cidr_list(f, "PodCIDRs", n->pod_cidrs, n->n_pod_cidrs);
	fprintf(f, "NodeEncryption = %s\n", n->node_encryption ? "true" : "false");
	if (n->n_allow) {
		fprintf(f, "Allow = ");
		for (size_t i = 0; i < n->n_allow; i++)
			fprintf(f, "%s%s/%u/%s", i ? ", " : "", n->allow[i].proto == IPPROTO_TCP ? "tcp" : "udp",
				n->allow[i].port, dirs[n->allow[i].dir & 3]);
		fputc('\n', f);
	}
	if (n->n_overlay_ports) {
		fprintf(f, "OverlayPorts = ");
		for (size_t i = 0; i < n->n_overlay_ports; i++)
			fprintf(f, "%s%u", i ? ", " : "", n->overlay_ports[i]);
		fputc('\n', f);
	}
	if (n->no_flow_cache)
		fprintf(f, "FlowCache = false\n");
	fprintf(f, "StateDir = %s\nPeersDir = %s\n", n->state_dir, n->peers_dir);
	if (n->key_service[0])
		fprintf(f, "KeyService = %s\n", n->key_service);
	if (n->key_service_ca[0])
		fprintf(f, "KeyServiceCA = %s\n", n->key_service_ca);
	if (n->mesh_secret[0])
		fprintf(f, "MeshSecret = %s\n", n->mesh_secret);
	if (n->attester[0] && strcmp(n->attester, "tpm"))
		fprintf(f, "Attester = %s\n", n->attester);
	if (n->tpm_tcti[0])
		fprintf(f, "TPMTcti = %s\n", n->tpm_tcti);
	if (n->peer_source == BW_PEERS_KUBERNETES)
		fprintf(f, "PeerSource = kubernetes\n");
	if (n->kube_api[0])
		fprintf(f, "KubeAPI = %s\n", n->kube_api);
	if (n->kube_token_file[0])
		fprintf(f, "KubeTokenFile = %s\n", n->kube_token_file);
	if (n->kube_ca_file[0])
		fprintf(f, "KubeCAFile = %s\n", n->kube_ca_file);
	if (n->kubeconfig[0])
		fprintf(f, "Kubeconfig = %s\n", n->kubeconfig);
	fprintf(f, "\n[Interface]\nDevice = %s\nPrivateKeyFile = %s\nListenPort = %u\n",
		c->iface.device, c->iface.private_key_file, c->iface.listen_port);
	if (c->iface.fwmark)
		fprintf(f, "FwMark = 0x%x\n", c->iface.fwmark);
	if (c->iface.mtu)
		fprintf(f, "MTU = %u\n", c->iface.mtu);
	return ferror(f) ? -EIO : 0;
}

int bw_conf_write_peer(FILE *f, const struct bw_conf_peer *p, bool wg_only)
{
	char key[45], ep[64];

	fprintf(f, "[Peer]\n");
	if (!wg_only)
		fprintf(f, "Node = %s\n", p->node);
	bw_key_to_base64(p->public_key, key);
	fprintf(f, "PublicKey = %s\n", key);
	if (p->has_psk) {
		bw_key_to_base64(p->psk, key);
		fprintf(f, "PresharedKey = %s\n", key);
		OPENSSL_cleanse(key, sizeof(key));
	}
	if (p->endpoint.sa.sa_family != AF_UNSPEC)
		fprintf(f, "Endpoint = %s\n", bw_endpoint_str(&p->endpoint, ep, sizeof(ep)));
	cidr_list(f, "AllowedIPs", p->allowed_ips, p->n_allowed_ips);
	if (p->keepalive)
		fprintf(f, "PersistentKeepalive = %u\n", p->keepalive);
	return ferror(f) ? -EIO : 0;
}

int bw_conf_write_wg(FILE *f, const struct bw_conf *c, const uint8_t *private_key)
{
	char key[45];
	int r = 0;

	fprintf(f, "[Interface]\nListenPort = %u\n", c->iface.listen_port);
	if (c->iface.fwmark)
		fprintf(f, "FwMark = 0x%x\n", c->iface.fwmark);
	if (private_key) {
		bw_key_to_base64(private_key, key);
		fprintf(f, "PrivateKey = %s\n", key);
		OPENSSL_cleanse(key, sizeof(key));
	}
	for (size_t i = 0; i < c->n_peers && !r; i++) {
		fputc('\n', f);
		r = bw_conf_write_peer(f, &c->peers[i], true);
	}
	return r ?: (ferror(f) ? -EIO : 0);
}
