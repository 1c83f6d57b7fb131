// SPDX-License-Identifier: GPL-2.0-only
#include <stdlib.h>
#include "datapath/datapath.h"

const char *bw_reason_name(unsigned reason)
{
	static const char *const names[BW_REASON_MAX] = {
		[BW_REASON_REDIRECTED] = "redirected",
		[BW_REASON_PASSED_ENCRYPTED] = "passed-encrypted",
		[BW_REASON_PASSED_UNPROTECTED] = "passed-unprotected",
		[BW_REASON_DROPPED_NO_PEER] = "dropped-no-peer",
		[BW_REASON_DROPPED_PLAINTEXT_INGRESS] = "dropped-plaintext-ingress",
		[BW_REASON_DROPPED_MALFORMED] = "dropped-malformed",
		[BW_REASON_ALLOWED_BY_PORT] = "allowed-by-port",
		[BW_REASON_EVENTS_LOST] = "events-lost",
		[BW_REASON_DROPPED_NO_DEVICE] = "dropped-no-device",
	};
	return reason < BW_REASON_MAX ? names[reason] : "unknown";
}

const char *bw_pin_dir(const char *pin_dir)
{
	const char *env = getenv("BULWARK_PIN_DIR");

	if (pin_dir && *pin_dir)
		return pin_dir;
	return env && *env ? env : BW_PIN_DIR_DEFAULT;
}
