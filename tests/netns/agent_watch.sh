#!/usr/bin/env bash
# bulwarkd keeps WireGuard and the datapath in step with the peers directory: a removed peer
# file takes the peer out of the device and the datapath map within a second, a new one brings it
# in, and a broken file changes nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a b
check "net up on node b" net b up
nsenter --net="/run/netns/${NS[a]}" bulwarkd --config "${CONF[a]}" --pin-dir "${PIN[a]}" > "$TMP/agent.log" 2>&1 &
agent=$!
at_exit "kill $agent"
check "bulwarkd brought node a up and watches its peers" wait_for 200 grep -q "watching $TMP/peers-a" "$TMP/agent.log"
net b export-peer > "$TMP/b-peer.conf"
net a export-peer > "$TMP/peers-b/a.conf"
check "sync on node b" net b sync

peers_a() { nsx "${NS[a]}" wg show "bwg${BW_ID}a" peers | wc -l; }
dp_a() { nsx "${NS[a]}" bulwark datapath peers --pin-dir "${PIN[a]}" | wc -l; }
has_peer() { [ "$(peers_a)" -eq 1 ] && [ "$(dp_a)" -eq 2 ]; }
# The agent's latency is timed on its own log (a cheap poll: querying the device and the map every
# 10 ms costs more than the sync itself on a loaded machine); the state is checked right after.
syncs() { grep -c 'sync: peers' "$TMP/agent.log"; }
applied_after() { # count cmd...: ms from running cmd until the agent logged sync number count+1
  local n=$1 start=$(date +%s%N); shift
  "$@"
  for _ in $(seq 500); do
    if [ "$(syncs)" -gt "$n" ]; then echo $(( ($(date +%s%N) - start) / 1000000 )); return 0; fi
    sleep 0.01
  done
  echo 99999
}
no_peer() { [ "$(peers_a)" -eq 0 ] && [ "$(dp_a)" -eq 0 ]; }

n=$(syncs)
cp "$TMP/b-peer.conf" "$TMP/peers-a/.b.tmp"
ms=$(applied_after "$n" mv "$TMP/peers-a/.b.tmp" "$TMP/peers-a/b.conf")
check "a new peer file is applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...it is in the device and the datapath" has_peer
check "pod a -> pod b through the agent's configuration" wait_for 30 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2

# An AllowedIPs edit is applied as a difference: the new prefix in, then out again.
allowed_a() { nsx "${NS[a]}" wg show "bwg${BW_ID}a" allowed-ips; }
has_extra() { allowed_a | grep -q 198.18.99.0/24 && [ "$(dp_a)" -eq 3 ]; }
no_extra() { ! allowed_a | grep -q 198.18.99.0/24 && [ "$(dp_a)" -eq 2 ]; }
sed 's|^AllowedIPs = |AllowedIPs = 198.18.99.0/24, |' "$TMP/b-peer.conf" > "$TMP/peers-a/.b.tmp"
n=$(syncs)
ms=$(applied_after "$n" mv "$TMP/peers-a/.b.tmp" "$TMP/peers-a/b.conf")
check "an added allowed IP is applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...it is in the device and the datapath" has_extra
cp "$TMP/b-peer.conf" "$TMP/peers-a/.b.tmp"
n=$(syncs)
ms=$(applied_after "$n" mv "$TMP/peers-a/.b.tmp" "$TMP/peers-a/b.conf")
check "a removed allowed IP is applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...it left the device and the datapath" no_extra
check "...and the peer's other prefixes stayed" has_peer

printf '[Peer]\nPublicKey = broken\n' > "$TMP/peers-a/zz.conf"
sleep 0.5
check "a broken peer file changes nothing" has_peer
check "...and the agent says which file and line" grep -q "zz.conf:2: PublicKey is not a base64 WireGuard key" "$TMP/agent.log"
rm "$TMP/peers-a/zz.conf"

n=$(syncs)
ms=$(applied_after "$n" rm "$TMP/peers-a/b.conf")
check "a removed peer file is applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...the peer left the device and the datapath" no_peer
check "pod a -> pod b is now dropped" fails nsx "${POD[a]}" ping -c 2 -i 0.2 -W 1 -q 198.18.2.2

# Drift made by hand is repaired on SIGHUP.
cp "$TMP/b-peer.conf" "$TMP/peers-a/b.conf"
wait_for 20 has_peer
nsx "${NS[a]}" wg set "bwg${BW_ID}a" peer "$(sed -n 's/^PublicKey = //p' "$TMP/b-peer.conf")" remove
kill -HUP $agent
check "SIGHUP resync restores a peer removed behind the agent's back" wait_for 30 has_peer
kill -TERM $agent; wait $agent
check "after the agent exits, enforcement stays (programs attached)" \
  nsx "${NS[a]}" bulwark datapath status --pin-dir "${PIN[a]}" --json
check "...and still counts" test "$(nsx "${NS[a]}" bulwark datapath status --pin-dir "${PIN[a]}" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["attached"]))')" -eq 1

# The periodic reconcile dumps the device: it repairs drift that change-driven syncs cannot see.
nsenter --net="/run/netns/${NS[a]}" bulwarkd --config "${CONF[a]}" --pin-dir "${PIN[a]}" --resync 2 > "$TMP/agent2.log" 2>&1 &
agent=$!
at_exit "kill $agent"
wait_for 200 grep -q "watching" "$TMP/agent2.log"
nsx "${NS[a]}" wg set "bwg${BW_ID}a" peer "$(sed -n 's/^PublicKey = //p' "$TMP/b-peer.conf")" remove
check "the periodic reconcile restores a peer removed behind the agent's back" wait_for 50 has_peer
finish
