// SPDX-License-Identifier: GPL-2.0-only
/* The mesh secret, fetched from the attested key service with the node's own attester. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kbs/kbs.h"
#include "net/net.h"

int bw_net_mesh_fetch(const struct bw_conf *c, int tries, bw_log_fn log, struct bw_secret *out, char *err,
		      size_t errlen)
{
	struct bw_kbs_client_opts o = {
		.url = c->node.key_service,
		.ca_file = c->node.key_service_ca[0] ? c->node.key_service_ca : NULL,
		.attester = c->node.attester[0] ? c->node.attester : "tpm",
		.aopts = { .tcti = c->node.tpm_tcti[0] ? c->node.tpm_tcti : NULL },
		.handshake_tries = tries,
		.timeout_ms = 5000,
		.log = log,
	};
	_cleanup_secret_ struct bw_secret s = { 0 };
	int r;

	if (!c->node.mesh_secret[0] || !c->node.key_service[0]) {
		snprintf(err, errlen, "no MeshSecret/KeyService configured");
		return -EINVAL;
	}
	if ((r = bw_secret_new(&s, BW_MESH_SECRET_MIN)) < 0) {
		snprintf(err, errlen, "locked memory: %s", strerror(-r));
		return r;
	}
	if ((r = bw_kbs_fetch_key(&o, c->node.mesh_secret, s.data, s.len, err, errlen)) < 0)
		return r;
	*out = TAKE_SECRET(s);
	return 0;
}

int bw_net_mesh_prepare(struct bw_conf *c, bw_log_fn log, struct bw_notes *notes, char *err, size_t errlen)
{
	_cleanup_secret_ struct bw_secret mesh = { 0 };
	int r;

	if (!c->node.mesh_secret[0])
		return 0;
	if ((r = bw_net_mesh_fetch(c, 3, log, &mesh, err, errlen)) < 0) {
		bw_net_mesh_drop_peers(c);
		return r;
	}
	if ((r = bw_net_mesh_set(c, &mesh, notes)) < 0)
		snprintf(err, errlen, "deriving the mesh PSKs: %s", strerror(-r));
	return r;
}
