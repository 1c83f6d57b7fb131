#!/usr/bin/env bash
# The two-node datapath scenario (tests/netns/datapath_two_nodes.sh) with kernel WireGuard.
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
modprobe wireguard || die "modprobe wireguard"
WG_MODE=kernel exec bash "$BULWARK_TOP/tests/netns/datapath_two_nodes.sh"
