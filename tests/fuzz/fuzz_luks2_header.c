// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: the LUKS2 header allow-list on attacker-controlled bytes, as JSON metadata and as a
 * whole binary header copy (both metadata areas). It must never crash, and what it accepts must
 * really be bulwark's profile.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bulwark/storage.h"

#define HS 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t hdr[2 * HS];
	char err[256];
	bool integrity;

	/* The input as the JSON area; its length, not a NUL, bounds it. */
	if (bw_vol_check_luks2_json((const char *)data, size, "pvc-1", &integrity, err, sizeof(err)) == 0 &&
	    !memmem(data, size, "aes-xts-plain64", 15))
		abort();
	/* The input as a raw header copy... */
	bw_vol_check_luks2_header(data, size, "pvc-1", &integrity, err, sizeof(err));
	/* ...and wrapped into two well-formed binary headers, so the JSON checks are reached too. */
	if (size < HS - 4096) {
		memset(hdr, 0, sizeof(hdr));
		for (int c = 0; c < 2; c++) {
			uint8_t *p = hdr + c * HS;
			memcpy(p, c ? "SKUL\xba\xbe\x00\x02" : "LUKS\xba\xbe\x00\x02", 8);
			p[8 + 6] = HS >> 8;
			if (c)
				p[256 + 6] = HS >> 8;
			memcpy(p + 4096, data, size);
		}
		bw_vol_check_luks2_header(hdr, sizeof(hdr), "pvc-1", &integrity, err, sizeof(err));
	}
	return 0;
}
