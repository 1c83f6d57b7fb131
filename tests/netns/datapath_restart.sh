#!/usr/bin/env bash
# Restart safety: re-attaching replaces the programs in place and a killed CLI leaves enforcement
# as it was; under a ping flood the wire never carries pod addresses in clear and counters go on.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
cluster_up || die "cluster setup"
cluster_attach a || die "attach a"
cluster_attach b || die "attach b"
# Two ids, both present and different (an empty one, from a failed query, proves nothing).
ids_differ() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ]; }
progid() { nsx "$NS_A" bulwark datapath status --json --pin-dir "$PIN_A" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["attached"][0]["egress_prog_id"])'; }

check "pods reach each other before the restarts" nsx "$NS_PA" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2
before=$(dp_counter a redirected)
id_before=$(progid)
check "status names the egress program (id ${id_before:-none})" test -n "$id_before"
# Bytes node A's WireGuard sent to and received from node B (wg's per-peer transfer counters).
wg_bytes() { nsx "$NS_A" wg show "$WG_A" transfer | awk '{ rx += $2; tx += $3 } END { print rx + 0, tx + 0 }'; }
read -r rx_before tx_before < <(wg_bytes)
cluster_capture_start restart
nsx "$NS_PA" ping -i 0.005 -c 800 -W 1 -q 198.18.2.2 > "$TMP/flood.txt" 2>&1 &
flood=$!
for i in 1 2 3; do
  nsx "$NS_A" bulwark datapath attach --pin-dir "$PIN_A" --uplink uplink --wg-dev "$WG_A" --config "$CONF_A"
  # A CLI killed at arbitrary points of its work must not take enforcement with it.
  for delay in 0.01 0.03 0.06 0.1; do
    nsx "$NS_A" timeout -s KILL "$delay" bulwark datapath attach --pin-dir "$PIN_A" \
      --uplink uplink --wg-dev "$WG_A" --config "$CONF_A" 2>/dev/null
  done
done
wait $flood
cluster_capture_stop
after=$(dp_counter a redirected)
read -r rx_after tx_after < <(wg_bytes)
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$TMP/flood.txt")
check "the flood got through (${received:-0}/800 replies)" test "${received:-0}" -ge 790
check "zero packets with pod addresses in clear on the wire (capture live, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32
# What WireGuard itself sent and received, not what a capture happened to see (tcpdump drops
# packets of a flood on a loaded machine): each echo request and reply is an 84-byte IP packet,
# more once encrypted. With nothing in clear on the wire (above), that is the flood's way across.
check "the wire carried the flood inside WireGuard: 800 requests out ($((tx_after - tx_before)) bytes)" \
  test $((tx_after - tx_before)) -ge $((800 * 84))
check "...and the ${received:-0} replies in ($((rx_after - rx_before)) bytes)" \
  test $((rx_after - rx_before)) -ge $((${received:-0} * 84))
check "counters survived the restarts and kept counting ($before -> $after)" test "$after" -ge $((before + 800))
check "the programs were replaced (prog id $id_before -> $(progid))" ids_differ "$id_before" "$(progid)"
check "exactly one filter per direction on the uplink" \
  test "$(nsx "$NS_A" tc filter show dev uplink egress | grep -c 'bw_egress')" -eq 1 -a \
  "$(nsx "$NS_A" tc filter show dev uplink ingress | grep -c 'bw_ingress')" -eq 1
check "the peer map is intact" test -n "$(nsx "$NS_A" bulwark datapath peers --pin-dir "$PIN_A")"

# The flow cache over pins from an older build (no cache maps) and over a partial set.
map_id() { bpftool -j map show pinned "$PIN_A/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
flow_gen() { bpftool -j map dump pinned "$PIN_A/bw_flow_gen" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["formatted"]["value"]["gen"])'; }
# Cache slots in use over all CPUs (a per-CPU array: an empty slot has generation 0).
flow_entries() { bpftool -j map dump pinned "$PIN_A/bw_flow_$1" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) for v in e["formatted"]["values"] if v["value"]["gen"]))'; }
check "pod traffic filled the flow cache" test "$(flow_entries v4)" -ge 1
rm -f "$PIN_A/bw_flow_v4" "$PIN_A/bw_flow_v6" "$PIN_A/bw_flow_gen"
check "status works on a pin dir without the cache maps (an older build's)" \
  nsx "$NS_A" bulwark datapath status --pin-dir "$PIN_A"
check "re-attach over it" nsx "$NS_A" bulwark datapath attach --pin-dir "$PIN_A" --uplink uplink \
  --wg-dev "$WG_A" --config "$CONF_A"
check "the cache maps were created and pinned" test -e "$PIN_A/bw_flow_v4" -a -e "$PIN_A/bw_flow_v6" -a -e "$PIN_A/bw_flow_gen"
check "pods reach each other after the upgrade (IPv4)" nsx "$NS_PA" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2
check "pods reach each other after the upgrade (IPv6)" nsx "$NS_PA" ping -6 -c 2 -i 0.2 -W 2 -q fd00:10:2::2
check "status reports the cache on" test "$(nsx "$NS_A" bulwark datapath status --json --pin-dir "$PIN_A" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["flow_cache"])')" = True
check "the new cache is in use" test "$(flow_entries v4)" -ge 1 -a "$(flow_entries v6)" -ge 1
old_id=$(map_id bw_flow_v4)
check "bpftool names the cache map (id ${old_id:-none})" test -n "$old_id"
rm -f "$PIN_A/bw_flow_gen"
check "re-attach over a partial cache set" nsx "$NS_A" bulwark datapath attach --pin-dir "$PIN_A" \
  --uplink uplink --wg-dev "$WG_A" --config "$CONF_A"
check "the whole set was recreated (bw_flow_v4 id $old_id -> $(map_id bw_flow_v4))" \
  ids_differ "$old_id" "$(map_id bw_flow_v4)"
check "the new generation counts (attach and apply bumped it: $(flow_gen))" test "$(flow_gen)" -ge 2
check "pods reach each other after it (the pair is cached)" nsx "$NS_PA" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2
# A cached pair must not outlive its peer: drop B's prefixes from A's datapath (WireGuard keeps them).
cluster_peer_file "$TMP/peers-a/b.conf" "$(cat "$TMP/b.pub")" 2 ""
sed -i '/^AllowedIPs = $/d' "$TMP/peers-a/b.conf"
before=$(dp_counter a dropped-no-peer)
cluster_capture_start cached
check "apply without node B's prefixes" nsx "$NS_A" bulwark datapath apply --pin-dir "$PIN_A" --config "$CONF_A"
check "the cached pod pair is dropped at once" exits 1 nsx "$NS_PA" ping -c 2 -i 0.2 -W 1 -q 198.18.2.2
cluster_capture_stop
check "dropped-no-peer counted it ($before -> $(dp_counter a dropped-no-peer))" \
  test "$(dp_counter a dropped-no-peer)" -ge $((before + 2))
check "and nothing left in clear (capture live, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32

# FlowCache = false in the configuration switches the cache off, and re-attaching keeps it off.
cache_on() { nsx "$NS_A" bulwark datapath status --json --pin-dir "$PIN_A" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["flow_cache"])'; }
sed '/^\[Node\]/a FlowCache = false' "$CONF_A" > "$TMP/a-nocache.conf"
check "apply a configuration with FlowCache = false" \
  nsx "$NS_A" bulwark datapath apply --pin-dir "$PIN_A" --config "$TMP/a-nocache.conf"
check "status reports the cache off" test "$(cache_on)" = False
nsx "$NS_A" bulwark datapath attach --pin-dir "$PIN_A" --uplink uplink --wg-dev "$WG_A"
check "attach without --config leaves it off" test "$(cache_on)" = False
check "pod traffic to B is still dropped without the cache" \
  exits 1 nsx "$NS_PA" ping -c 2 -i 0.2 -W 1 -q 198.18.2.2
check "apply the default configuration: on again" \
  nsx "$NS_A" bulwark datapath apply --pin-dir "$PIN_A" --config "$CONF_A"
check "status reports the cache on" test "$(cache_on)" = True
finish
