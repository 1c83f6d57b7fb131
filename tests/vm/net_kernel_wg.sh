#!/usr/bin/env bash
# The three-node controller scenario with kernel WireGuard (netlink backend).
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
modprobe wireguard || die "modprobe wireguard"
EXPECT_WG_BACKEND=kernel exec bash "$BULWARK_TOP/tests/netns/net_three_nodes.sh"
