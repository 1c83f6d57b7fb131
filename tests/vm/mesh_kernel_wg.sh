#!/usr/bin/env bash
# The attested-mesh scenario (tests/netns/mesh_attested.sh) with kernel WireGuard: PSKs set over
# generic netlink. Asserts the backend first, so it cannot pass on wireguard-go.
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
modprobe wireguard || die "modprobe wireguard"
export BULWARK_EXPECT_BACKEND=kernel
# Rotation and a key service down at start are backend-independent: tests/netns runs them.
export MESH_CORE_ONLY=1
exec bash "$BULWARK_TOP/tests/netns/mesh_attested.sh"
