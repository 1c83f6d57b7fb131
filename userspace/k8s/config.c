// SPDX-License-Identifier: GPL-2.0-only
/* Kubernetes peer source: where the API is and how we authenticate (k8s.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"
#include "k8s/k8s.h"

int bw_k8s_config_from(const struct bw_conf *c, const uint8_t public_key[32], struct bw_k8s_config *cfg,
		       char *err, size_t errlen)
{
	const struct bw_conf_node *n = &c->node;

	const char *kc = getenv("KUBECONFIG");
	char kcfirst[sizeof(cfg->kubeconfig)];

	memset(cfg, 0, sizeof(*cfg));
	/* KUBECONFIG may list several files (kubectl merges them): the first one is read. */
	snprintf(kcfirst, sizeof(kcfirst), "%.*s", kc ? (int)strcspn(kc, ":") : 0, kc ? kc : "");
	if (n->kubeconfig[0] || (!n->kube_api[0] && kcfirst[0])) {
		struct bw_k8s_auth a;
		int r;

		snprintf(cfg->kubeconfig, sizeof(cfg->kubeconfig), "%s", n->kubeconfig[0] ? n->kubeconfig : kcfirst);
		if ((r = bw_k8s_kubeconfig_load(cfg->kubeconfig, &a, err, errlen)) < 0)
			return r;
		snprintf(cfg->api, sizeof(cfg->api), "%s", a.server);
		bw_k8s_auth_free(&a);
	} else if (n->kube_api[0]) {
		if (strncmp(n->kube_api, "https://", 8))
			return bw_errf(err, errlen, -EINVAL, "%s: [Node] KubeAPI %s: must be an https:// URL", c->path,
				       n->kube_api);
		snprintf(cfg->api, sizeof(cfg->api), "%.*s", (int)strcspn(n->kube_api, " "), n->kube_api);
		/* The paths are appended: no trailing slash. */
		while (strlen(cfg->api) > 8 && cfg->api[strlen(cfg->api) - 1] == '/')
			cfg->api[strlen(cfg->api) - 1] = '\0';
	} else {
		const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
		if (!host || !host[0] || !port || !port[0])
			return bw_errf(err, errlen, -EINVAL,
				       "%s: PeerSource = kubernetes: not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no [Node] KubeAPI",
				       c->path);
		if (strchr(host, ':'))
			snprintf(cfg->api, sizeof(cfg->api), "https://[%s]:%s", host, port);
		else
			snprintf(cfg->api, sizeof(cfg->api), "https://%s:%s", host, port);
	}
	snprintf(cfg->token_file, sizeof(cfg->token_file), "%s", n->kube_token_file[0] ? n->kube_token_file : BW_K8S_SA_DIR "/token");
	snprintf(cfg->ca_file, sizeof(cfg->ca_file), "%s", n->kube_ca_file[0] ? n->kube_ca_file : BW_K8S_SA_DIR "/ca.crt");
	if (!n->name[0])
		return bw_errf(err, errlen, -EINVAL, "%s: PeerSource = kubernetes needs the node's name ([Node] Name or NODE_NAME)",
			       c->path);
	snprintf(cfg->node, sizeof(cfg->node), "%s", n->name);
	cfg->listen_port = c->iface.listen_port;
	memcpy(cfg->public_key, public_key, 32);
	return 0;
}
