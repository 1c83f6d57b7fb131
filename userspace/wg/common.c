// SPDX-License-Identifier: GPL-2.0-only
/* Backend dispatch (one probe) and keys, shared by both backends. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "wg/internal.h"

/*
 * The one probe: a device with a UAPI socket is wireguard-go's (a TUN, as wireguard-tools
 * decides); otherwise a link of kind "wireguard" is the kernel's. get and set both dispatch on it.
 */
enum bw_wg_backend bw_wg_backend_of(const char *ifname)
{
	char kind[32];

	if (bw_wg_uapi_exists(ifname))
		return BW_WG_USERSPACE;
	if (bw_wg_link_kind(ifname, kind, sizeof(kind)) == 0 && !strcmp(kind, "wireguard"))
		return BW_WG_KERNEL;
	return BW_WG_NONE;
}

const char *bw_wg_backend_name(enum bw_wg_backend b)
{
	return b == BW_WG_KERNEL ? "kernel" : b == BW_WG_USERSPACE ? "userspace" : "none";
}

int bw_wg_get(const char *ifname, struct bw_wg_device **out)
{
	switch (bw_wg_backend_of(ifname)) {
	case BW_WG_USERSPACE: return bw_wg_uapi_get(ifname, out);
	case BW_WG_KERNEL: return bw_wg_kernel_get(ifname, out);
	default: return -ENODEV;
	}
}

int bw_wg_set(const char *ifname, const struct bw_wg_device *dev)
{
	switch (bw_wg_backend_of(ifname)) {
	case BW_WG_USERSPACE: return bw_wg_uapi_set(ifname, dev);
	case BW_WG_KERNEL: return bw_wg_kernel_set(ifname, dev);
	default: return -ENODEV;
	}
}

bool bw_wg_device_alive(const char *ifname)
{
	if (!if_nametoindex(ifname))
		return false;
	/* A kernel device: the link is the device. wireguard-go: its process answers (or we cannot
	 * tell, and then nothing is torn down). */
	return bw_wg_uapi_dead(ifname) != 1;
}

void bw_wg_device_free(struct bw_wg_device *dev)
{
	if (!dev)
		return;
	for (size_t i = 0; i < dev->n_peers; i++) {
		OPENSSL_cleanse(dev->peers[i].psk, sizeof(dev->peers[i].psk));
		free(dev->peers[i].allowed_ips);
	}
	free(dev->peers);
	OPENSSL_cleanse(dev, sizeof(*dev));
	free(dev);
}

int bw_wg_public_key(const uint8_t priv[BW_WG_KEY_LEN], uint8_t pub[BW_WG_KEY_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, BW_WG_KEY_LEN);
	size_t len = BW_WG_KEY_LEN;
	int r = 0;

	if (!k)
		return -EINVAL;
	if (EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != BW_WG_KEY_LEN)
		r = -EINVAL;
	EVP_PKEY_free(k);
	return r;
}

int bw_wg_generate_key(struct bw_secret *s)
{
	int r = bw_secret_new(s, BW_WG_KEY_LEN);

	if (r < 0)
		return r;
	if (RAND_priv_bytes(s->data, BW_WG_KEY_LEN) != 1) {
		bw_secret_free(s);
		return -EIO;
	}
	/* Curve25519 clamping, as `wg genkey` does. */
	s->data[0] &= 248;
	s->data[31] = (s->data[31] & 127) | 64;
	return 0;
}
