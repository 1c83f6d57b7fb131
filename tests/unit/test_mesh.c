// SPDX-License-Identifier: GPL-2.0-only
/*
 * Attested mesh: the pairwise PSK derivation checked against `openssl kdf` (an independent HKDF),
 * its symmetry and separation, and the configuration rules around MeshSecret.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "net/net.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* HKDF-SHA256(key, no salt, info) by the openssl CLI, 32 bytes. */
static void openssl_hkdf(const uint8_t *key, size_t klen, const uint8_t *info, size_t ilen, uint8_t out[32])
{
	char k[2 * 64 + 1], in[2 * 128 + 1], cmd[1024], line[256];
	FILE *p;
	size_t n = 0;

	hex(key, klen, k);
	hex(info, ilen, in);
	snprintf(cmd, sizeof(cmd),
		 "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt hexinfo:%s HKDF", k, in);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	for (char *s = line; *s && n < 32; s++) {
		unsigned v;
		if (sscanf(s, "%2x", &v) == 1 && s[1] && s[1] != ':') {
			out[n++] = (uint8_t)v;
			s++;
		}
	}
	assert_int_equal(n, 32);
}

static void secret(struct bw_secret *s, uint8_t fill)
{
	assert_int_equal(bw_secret_new(s, 32), 0);
	for (size_t i = 0; i < 32; i++)
		s->data[i] = (uint8_t)(fill + i);
}

static void psk_matches_openssl_kdf(void **state)
{
	struct bw_secret m;
	uint8_t a[32], b[32], got[32], want[32], info[sizeof(BW_MESH_PSK_LABEL) - 1 + 64];
	const size_t l = sizeof(BW_MESH_PSK_LABEL) - 1;
	(void)state;

	secret(&m, 7);
	memset(a, 0x11, 32);
	memset(b, 0xee, 32);
	/* info = label || the smaller key || the larger key, whichever end computes it */
	memcpy(info, BW_MESH_PSK_LABEL, l);
	memcpy(info + l, a, 32);
	memcpy(info + l + 32, b, 32);
	openssl_hkdf(m.data, 32, info, sizeof(info), want);
	assert_int_equal(bw_net_mesh_psk(&m, a, b, got), 0);
	assert_memory_equal(got, want, 32);
	assert_int_equal(bw_net_mesh_psk(&m, b, a, got), 0);
	assert_memory_equal(got, want, 32);
	bw_secret_free(&m);
}

static void psk_separates_pairs_and_epochs(void **state)
{
	struct bw_secret m1, m2, shortm;
	uint8_t a[32], b[32], c[32], ab[32], ac[32], ab2[32];
	(void)state;

	secret(&m1, 1);
	secret(&m2, 2);
	memset(a, 1, 32), memset(b, 2, 32), memset(c, 3, 32);
	assert_int_equal(bw_net_mesh_psk(&m1, a, b, ab), 0);
	assert_int_equal(bw_net_mesh_psk(&m1, a, c, ac), 0);
	assert_int_equal(bw_net_mesh_psk(&m2, a, b, ab2), 0);
	assert_memory_not_equal(ab, ac, 32);
	assert_memory_not_equal(ab, ab2, 32);
	/* a secret shorter than 32 bytes is refused, never stretched */
	assert_int_equal(bw_secret_new(&shortm, 16), 0);
	assert_int_equal(bw_net_mesh_psk(&shortm, a, b, ab), -EINVAL);
	assert_int_equal(bw_net_mesh_psk(NULL, a, b, ab), -EINVAL);
	bw_secret_free(&m1), bw_secret_free(&m2), bw_secret_free(&shortm);
}

static const char *node =
	"[Node]\nName = a\nUplinks = eth0\nProtectedCIDRs = 198.18.0.0/16\n%s\n"
	"[Interface]\nDevice = wg0\nListenPort = 51820\n";

static int parse(const char *extra, char *err)
{
	char text[1024];
	struct bw_conf c;
	int r;

	snprintf(text, sizeof(text), node, extra);
	r = bw_conf_parse_node("n.conf", text, &c, err, BW_ERR_LEN);
	if (r == 0)
		bw_conf_free(&c);
	return r;
}

static void conf_rules(void **state)
{
	char err[BW_ERR_LEN];
	(void)state;

	assert_int_equal(parse("MeshSecret = bulwark/mesh/1\nKeyService = https://127.0.0.1:8443\nAttester = sample", err), 0);
	assert_int_equal(parse("MeshSecret = bulwark/mesh/1", err), -EINVAL);
	assert_non_null(strstr(err, "MeshSecret needs KeyService"));
	assert_int_equal(parse("MeshSecret = bulwark/mesh\nKeyService = https://k", err), -EINVAL);
	assert_non_null(strstr(err, "n.conf:5: MeshSecret"));
	assert_int_equal(parse("MeshSecret = bulwark/../x\nKeyService = https://k", err), -EINVAL);
	assert_int_equal(parse("MeshSecret = a/b/c\nKeyService = https://k\nAttester = none", err), -EINVAL);
	assert_non_null(strstr(err, "Attester 'none'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(psk_matches_openssl_kdf),
		cmocka_unit_test(psk_separates_pairs_and_epochs),
		cmocka_unit_test(conf_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
