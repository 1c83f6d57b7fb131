// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer: the node-file and peer-file parsers and the writer round trip on what they accept. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wireguard-conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[BW_ERR_LEN];
	struct bw_conf c;
	struct bw_conf_peer p;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (bw_conf_parse_node("fuzz", text, &c, err, sizeof(err)) == 0) {
		char *out = NULL;
		size_t len;
		FILE *f = open_memstream(&out, &len);
		struct bw_conf back;

		bw_conf_write_node(f, &c);
		fclose(f);
		/* What the writer emits must parse back. */
		if (bw_conf_parse_node("fuzz", out, &back, err, sizeof(err)) != 0)
			abort();
		free(out);
	}
	if (bw_conf_parse_peer("fuzz", text, &p, err, sizeof(err)) == 0)
		bw_conf_peers_free(&p, 1);
	free(text);
	return 0;
}
