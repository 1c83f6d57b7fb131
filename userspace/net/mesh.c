// SPDX-License-Identifier: GPL-2.0-only
/*
 * The attested mesh: every pair of nodes shares a WireGuard preshared key derived from one mesh
 * secret that only attested nodes can fetch from the key service:
 *
 *   PSK(a, b) = HKDF-SHA256(IKM = mesh secret, salt = none,
 *                           info = "bulwark mesh psk v1" || min(pub_a, pub_b) || max(pub_a, pub_b))
 *
 * (keys ordered by memcmp), so both ends compute the same value without talking to each other,
 * and a node that holds a key in the peer set but not the mesh secret cannot complete a handshake.
 */
#include <errno.h>
#include <string.h>
#include "net/net.h"
#include "wg/wg.h"

int bw_net_mesh_psk(const struct bw_secret *mesh, const uint8_t a[BW_WG_KEY_LEN], const uint8_t b[BW_WG_KEY_LEN],
		    uint8_t out[BW_WG_KEY_LEN])
{
	uint8_t info[sizeof(BW_MESH_PSK_LABEL) - 1 + 2 * BW_WG_KEY_LEN];
	const bool swap = memcmp(a, b, BW_WG_KEY_LEN) > 0;

	if (!mesh || !mesh->data || mesh->len < BW_MESH_SECRET_MIN)
		return -EINVAL;
	memcpy(info, BW_MESH_PSK_LABEL, sizeof(BW_MESH_PSK_LABEL) - 1);
	memcpy(info + sizeof(BW_MESH_PSK_LABEL) - 1, swap ? b : a, BW_WG_KEY_LEN);
	memcpy(info + sizeof(BW_MESH_PSK_LABEL) - 1 + BW_WG_KEY_LEN, swap ? a : b, BW_WG_KEY_LEN);
	return bw_hkdf_sha256(mesh->data, mesh->len, NULL, 0, info, sizeof(info), out, BW_WG_KEY_LEN);
}

int bw_net_mesh_apply(struct bw_conf *c, const struct bw_secret *mesh, const uint8_t self[BW_WG_KEY_LEN])
{
	int r;

	for (size_t i = 0; i < c->n_peers; i++) {
		if ((r = bw_net_mesh_psk(mesh, self, c->peers[i].public_key, c->peers[i].psk)) < 0)
			return r;
		c->peers[i].has_psk = true;
	}
	return 0;
}

int bw_net_mesh_set(struct bw_conf *c, const struct bw_secret *mesh, struct bw_notes *notes)
{
	_cleanup_secret_ struct bw_secret priv = { 0 };
	uint8_t self[BW_WG_KEY_LEN];
	int r;

	if ((r = bw_net_node_key(c, true, &priv, notes)) < 0 || (r = bw_wg_public_key(priv.data, self)) < 0 ||
	    (r = bw_net_mesh_apply(c, mesh, self)) < 0)
		bw_net_mesh_drop_peers(c);
	return r;
}

void bw_net_mesh_drop_peers(struct bw_conf *c)
{
	bw_conf_peers_free(c->peers, c->n_peers);
	free(c->peers);
	c->peers = NULL;
	c->n_peers = 0;
}
