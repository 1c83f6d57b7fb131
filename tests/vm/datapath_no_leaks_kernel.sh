#!/usr/bin/env bash
# tests/netns/datapath_no_leaks.sh with kernel WireGuard and every tunnel the Debian kernel offers
# (ipip, sit, gre, gretap, ip6gre, ip6tnl, geneve, vxlan) and VLAN devices (8021q): the shapes the
# host kernel cannot build are built here by the kernel itself.
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
modprobe wireguard || die "modprobe wireguard"
for m in ipip sit ip_gre ip6_gre ip6_tunnel geneve vxlan 8021q; do
  modprobe "$m" || echo "# modprobe $m failed: that shape is left to the hand-made frames" >&2
done
WG_MODE=kernel exec bash "$BULWARK_TOP/tests/netns/datapath_no_leaks.sh"
