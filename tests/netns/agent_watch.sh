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

# Line counts that are not a number when the query fails (a `query | wc -l` would say 0, and
# "no peer left" would pass on a broken query).
lines() { local out; out=$("$@") || { echo "query-failed"; return 1; }; [ -z "$out" ] && echo 0 || wc -l <<<"$out"; }
peers_a() { lines nsx "${NS[a]}" wg show "bwg${BW_ID}a" peers; }
dp_a() { lines nsx "${NS[a]}" bulwark datapath peers --pin-dir "${PIN[a]}"; }
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
no_extra() { local out; out=$(allowed_a) || return 1; ! grep -q 198.18.99.0/24 <<<"$out" && [ "$(dp_a)" -eq 2 ]; }
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
# The agent must have read it before "nothing changed" means anything.
check "the agent reports the broken file with its line" \
  wait_for 50 grep -q "zz.conf:2: PublicKey is not a base64 WireGuard key" "$TMP/agent.log"
check "...and that broken peer file changed nothing" has_peer
rm "$TMP/peers-a/zz.conf"

n=$(syncs)
ms=$(applied_after "$n" rm "$TMP/peers-a/b.conf")
check "a removed peer file is applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...the peer left the device and the datapath" no_peer
check "pod a -> pod b is now dropped" exits 1 nsx "${POD[a]}" ping -c 2 -i 0.2 -W 1 -q 198.18.2.2

# Drift made by hand is repaired on SIGHUP.
cp "$TMP/b-peer.conf" "$TMP/peers-a/b.conf"
check "the peer file back: the peer is back" wait_for 20 has_peer
nsx "${NS[a]}" wg set "bwg${BW_ID}a" peer "$(sed -n 's/^PublicKey = //p' "$TMP/b-peer.conf")" remove
check "...and removed behind the agent's back (drift made)" test "$(peers_a)" -eq 0
kill -HUP $agent
check "SIGHUP resync restores a peer removed behind the agent's back" wait_for 30 has_peer
kill -TERM $agent; wait $agent
# Status must name the uplink with both programs, and tc must show them on it.
attached_a() {
  nsx "${NS[a]}" bulwark datapath status --pin-dir "${PIN[a]}" --json | python3 -c '
import json, sys
a = json.load(sys.stdin)["attached"]
sys.exit(0 if len(a) == 1 and a[0]["device"] == "uplink" and a[0]["egress_prog_id"] > 0 and a[0]["ingress_prog_id"] > 0 else 1)' &&
  nsx "${NS[a]}" tc filter show dev uplink egress | grep -q bw_egress &&
  nsx "${NS[a]}" tc filter show dev uplink ingress | grep -q bw_ingress
}
check "after the agent exits, enforcement stays (both programs attached to the uplink)" attached_a
# A protected pod prefix no peer covers, routed to node b like pod traffic before the datapath
# steers it: it must be dropped on the uplink and counted.
nsx "${NS[a]}" ip route add 198.18.50.0/24 via 198.19.0.2 dev uplink
no_peer_drops() { nsx "${NS[a]}" bulwark datapath status --json --pin-dir "${PIN[a]}" |
  python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['dropped-no-peer']['packets'])"; }
before=$(no_peer_drops)
check "...pod a -> a pod without a peer is dropped" exits 1 nsx "${POD[a]}" ping -c 2 -i 0.2 -W 1 -q 198.18.50.2
after=$(no_peer_drops)
check "...and still counts (dropped-no-peer $before -> $after)" test -n "$before" -a "${after:-0}" -ge $((before + 2))

# The periodic reconcile dumps the device: it repairs drift that change-driven syncs cannot see.
nsenter --net="/run/netns/${NS[a]}" bulwarkd --config "${CONF[a]}" --pin-dir "${PIN[a]}" --resync 2 > "$TMP/agent2.log" 2>&1 &
agent=$!
at_exit "kill $agent"
check "bulwarkd --resync 2 started" wait_for 200 grep -q "watching" "$TMP/agent2.log"
nsx "${NS[a]}" wg set "bwg${BW_ID}a" peer "$(sed -n 's/^PublicKey = //p' "$TMP/b-peer.conf")" remove
check "...a peer removed behind its back (drift made)" test "$(peers_a)" -eq 0
check "the periodic reconcile restores a peer removed behind the agent's back" wait_for 50 has_peer
finish
