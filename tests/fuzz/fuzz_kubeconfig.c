// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer: the kubeconfig parser (userspace/k8s/kubeconfig.c) on arbitrary YAML. */
#include <stdint.h>
#include <string.h>
#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_k8s_auth a;
	char err[BW_ERR_LEN];

	if (bw_k8s_kubeconfig_parse("/fuzz/kubeconfig", (const char *)data, size, &a, err, sizeof(err)) == 0) {
		/* What it accepts is complete: an https server, a key only with a certificate. */
		if (strncmp(a.server, "https://", 8) || (!a.key.data && !a.key_file[0]) != (!a.cert.data && !a.cert_file[0]))
			__builtin_trap();
		bw_k8s_auth_free(&a);
	}
	return 0;
}
