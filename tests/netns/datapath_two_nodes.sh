#!/usr/bin/env bash
# Two nodes joined by a wire, a pod behind each, WireGuard between them and the datapath on the
# uplinks: pod traffic crosses the wire only inside WireGuard, and fails closed without a peer.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
cluster_up || die "cluster setup"
check "datapath attached on node A" cluster_attach a
check "datapath attached on node B" cluster_attach b
# The backend the name promises (tests/vm/datapath_kernel_wg.sh runs this with WG_MODE=kernel).
link_kind() { nsx "$1" ip -j -d link show dev "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["linkinfo"]["info_kind"])'; }
want_kind=$([ "$WG_MODE" = kernel ] && echo wireguard || echo tun)
check "both WireGuard devices are $WG_MODE ones (link kind $want_kind)" \
  test "$(link_kind "$NS_A" "$WG_A")" = "$want_kind" -a "$(link_kind "$NS_B" "$WG_B")" = "$want_kind"

POD_V4="net 198.18.0.0/16"
POD_V6="net fd00:10::/32"
cluster_capture_start main
check "pod A -> pod B ping (IPv4)" nsx "$NS_PA" ping -c 3 -i 0.2 -W 2 -q 198.18.2.2
check "pod A -> pod B ping (IPv6)" nsx "$NS_PA" ping -6 -c 3 -i 0.2 -W 2 -q fd00:10:2::2
nsx "$NS_PB" iperf3 -s -1 -D -B 198.18.2.2 --logfile "$TMP/iperf-s.log"
sleep 0.3
nsx "$NS_PA" iperf3 -c 198.18.2.2 -t 2 -J > "$TMP/iperf.json" 2>&1
got=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"]))' "$TMP/iperf.json" 2>/dev/null)
check "pod A -> pod B TCP (iperf3, 2 s: ${got:-0} bytes received)" test "${got:-0}" -gt 1000000
cluster_capture_stop
check "the wire carried WireGuard UDP ($(cap_count udp port $WG_PORT) packets)" test "$(cap_count udp port $WG_PORT)" -gt 10
check "zero packets with pod addresses in clear on the wire (IPv4; capture live, no drops)" cap_clear $POD_V4
check "zero packets with pod addresses in clear on the wire (IPv6)" cap_clear $POD_V6
check "node A counted redirected packets" test "$(dp_counter a redirected)" -gt 0
check "node B counted the encrypted UDP as passed-encrypted" test "$(dp_counter b passed-encrypted)" -gt 0

# Remove the peer prefixes from node A's datapath (WireGuard keeps them): fail closed.
cluster_peer_file "$TMP/peers-a/b.conf" "$(cat "$TMP/b.pub")" 2 ""
sed -i '/^AllowedIPs = $/d' "$TMP/peers-a/b.conf"
check "apply without node B's prefixes" nsx "$NS_A" bulwark datapath apply --pin-dir "$PIN_A" --config "$CONF_A"
check "the datapath has no peer prefixes left" test -z "$(nsx "$NS_A" bulwark datapath peers --pin-dir "$PIN_A")"
before=$(dp_counter a dropped-no-peer)
# The capture first: its start (markers seen) must not eat into the monitor's 10 s.
cluster_capture_start nopeer
nsx "$NS_A" bulwark datapath monitor --pin-dir "$PIN_A" --json --count 1 --timeout 10 > "$TMP/monitor.json" &
mon=$!
sleep 0.5
check "pod A -> pod B ping now fails (IPv4)" exits 1 nsx "$NS_PA" ping -c 2 -i 0.2 -W 1 -q 198.18.2.2
check "pod A -> pod B ping now fails (IPv6)" exits 1 nsx "$NS_PA" ping -6 -c 2 -i 0.2 -W 1 -q fd00:10:2::2
cluster_capture_stop
wait $mon
after=$(dp_counter a dropped-no-peer)
check "dropped-no-peer counted the pings ($before -> $after)" test "$after" -ge $((before + 4))
check "still nothing in clear on the wire (capture live, no drops)" cap_clear $POD_V4 or $POD_V6
check "monitor reported the drop with reason and addresses" \
  grep -q '"reason":"dropped-no-peer".*"saddr":"198.18.1.2","daddr":"198.18.2.2"' "$TMP/monitor.json"

# Plaintext from the wire (the host injects it): a pod-sourced packet toward pod A is dropped.
ip link add atk netns "$NS_WIRE" type veth peer name atk0 netns "$NS_WIRE"
nsx "$NS_WIRE" ip link set atk master br0 up
nsx "$NS_WIRE" ip link set atk0 up
nsx "$NS_WIRE" ip addr add 198.18.2.7/32 dev atk0
nsx "$NS_WIRE" ip addr add fd00:10:2::7/128 dev atk0 nodad
nsx "$NS_WIRE" ip route add 198.19.0.0/24 dev atk0
nsx "$NS_WIRE" ip route add 198.18.1.0/24 via 198.19.0.1 dev atk0
nsx "$NS_WIRE" ip -6 route add fd00:20::/64 dev atk0
nsx "$NS_WIRE" ip -6 route add fd00:10:1::/64 via fd00:20::1 dev atk0
# Pod A's own view, its markers sent by node A over the pod veth.
cap_start podA "$NS_PA" eth0 "$NS_A" 198.18.1.2 || die "the capture in pod A did not start"
cluster_capture_start inject
before=$(dp_counter a dropped-plaintext-ingress)
nsx "$NS_WIRE" ping -c 3 -i 0.2 -W 1 -q -I 198.18.2.7 198.18.1.2 >/dev/null 2>&1
nsx "$NS_WIRE" ping -6 -c 3 -i 0.2 -W 1 -q -I fd00:10:2::7 fd00:10:1::2 >/dev/null 2>&1
cap_stop podA
cluster_capture_stop
after=$(dp_counter a dropped-plaintext-ingress)
# The same capture that saw nothing in clear above does see clear pod packets when they exist.
check "the wire capture sees injected clear pod packets (capture works)" test "$(cap_count $POD_V4 or $POD_V6)" -ge 6
check "injected plaintext toward pod A was dropped and counted ($before -> $after)" test "$after" -ge $((before + 6))
check "nothing of it reached pod A (capture live, no drops)" cap_none podA src 198.18.2.7 or src fd00:10:2::7
finish
