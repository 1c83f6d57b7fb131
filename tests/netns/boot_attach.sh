#!/usr/bin/env bash
# Boot order: `bulwark datapath attach --config FILE` before bulwark has a WireGuard device (what
# bulwark-enforce.service and the DaemonSet's init container run) puts the filters on the node
# file's uplinks and fails closed: pod traffic toward other nodes is dropped and counted, nothing
# leaves in clear; once bulwarkd/net up brings WireGuard up, the same traffic flows encrypted.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a b
check "net up on node b" net b up
out=$(nsx "${NS[a]}" bulwark datapath attach --config "${CONF[a]}" --pin-dir "${PIN[a]}" 2>&1); rc=$?
check "attach --config with no WireGuard device yet succeeds (uplinks and device from the node file)" test "$rc" = 0
check "...and says the device is missing and traffic is dropped ($out)" \
  sh -c 'printf "%s" "$1" | grep -q "does not exist (yet): protected traffic is dropped"' _ "$out"
filters_on() { nsx "${NS[a]}" tc filter show dev uplink egress | grep -q bw_egress &&
  nsx "${NS[a]}" tc filter show dev uplink ingress | grep -q bw_ingress; }
check "the filters are on the node file's uplink" filters_on
check "no WireGuard device exists on node a" exits 1 nsx "${NS[a]}" ip link show "bwg${BW_ID}a"
before=$(nsx "${NS[a]}" bulwark datapath status --json --pin-dir "${PIN[a]}" |
  python3 -c "import json,sys; c=json.load(sys.stdin)['counters']; print(sum(c[k]['packets'] for k in c if k.startswith('dropped-no-')))")
cluster_capture_start boot
check "pod a -> pod b is dropped before WireGuard exists" exits 1 nsx "${POD[a]}" ping -c 3 -i 0.2 -W 1 -q 198.18.2.2
check "...IPv6 too" exits 1 nsx "${POD[a]}" ping -6 -c 3 -i 0.2 -W 1 -q fd00:10:2::2
cluster_capture_stop
after=$(nsx "${NS[a]}" bulwark datapath status --json --pin-dir "${PIN[a]}" |
  python3 -c "import json,sys; c=json.load(sys.stdin)['counters']; print(sum(c[k]['packets'] for k in c if k.startswith('dropped-no-')))")
check "...and counted as dropped ($before -> $after)" test -n "$after" -a "${after:-0}" -ge $(( ${before:-0} + 6 ))
check "nothing with a pod address in clear on the wire (capture live: markers, no drops)" \
  cap_clear net 198.18.0.0/16 or net fd00:10::/32
# WireGuard comes up (bulwarkd would do this): the same traffic now flows, encrypted.
check "net up on node a over the boot-time attach" net a up
net a export-peer > "$TMP/peers-b/a.conf"
net b export-peer > "$TMP/peers-a/b.conf"
check "sync a" net a sync
check "sync b" net b sync
check "pod a -> pod b flows once WireGuard is up" wait_for 50 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2
finish
