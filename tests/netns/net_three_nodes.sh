#!/usr/bin/env bash
# Three nodes brought up by `bulwark net up` with peer files from each other's `export-peer`:
# pods talk through WireGuard only; AllowedIPs changes cost the unchanged peer nothing; a removed
# peer file removes the peer from the device and the datapath, and its traffic is dropped.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a b c
# 0: listed, 1: not listed, 2: the query itself failed (so `exits 1` is a real "not listed").
dev_has() { local out; out=$(nsx "${NS[a]}" wg show "bwg${BW_ID}a" allowed-ips) || return 2; grep -qF "$1" <<<"$out"; }
dp_has() { local out; out=$(nsx "${NS[a]}" bulwark datapath peers --pin-dir "${PIN[a]}") || return 2; grep -qF "$1" <<<"$out"; }
for x in a b c; do check "bulwark net up on node $x" net "$x" up; done
# Which WireGuard ran: bulwark's word and the link's kind (kernel: wireguard, wireguard-go: tun).
# tests/vm/net_kernel_wg.sh sets EXPECT_WG_BACKEND=kernel: a silent fallback must not pass there.
if [ -n "${EXPECT_WG_BACKEND:-}" ]; then
  want_kind=$([ "$EXPECT_WG_BACKEND" = kernel ] && echo wireguard || echo tun)
  for x in a b c; do
    be=$(net "$x" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
    kind=$(nsx "${NS[$x]}" ip -j -d link show dev "bwg$BW_ID$x" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["linkinfo"]["info_kind"])')
    check "node $x runs $EXPECT_WG_BACKEND WireGuard (backend ${be:-?}, link kind ${kind:-?})" \
      test "$be" = "$EXPECT_WG_BACKEND" -a "$kind" = "$want_kind"
  done
fi
key=$TMP/state-a/wg.key
check "the node key was created 0600" test "$(stat -c %a "$key")" = 600
pub=$(net a status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
check "the node's public key equals wg pubkey of its key file" test "$(wg pubkey < "$key")" = "$pub"
net a status --json > "$TMP/status.json"; net a peers --json > "$TMP/peers.json"
check "status and peers --json wrote something" test -s "$TMP/status.json" -a -s "$TMP/peers.json"
check "status and peers output never contain the private key" exits 1 grep -qF "$(head -c 44 "$key")" "$TMP/status.json" "$TMP/peers.json"
for x in a b c; do
  for y in a b c; do
    [ "$x" = "$y" ] && continue
    net "$y" export-peer > "$TMP/peers-$x/$y.conf"
  done
  check "bulwark net sync on node $x" net "$x" sync
done

cluster_capture_start three
for pair in "a 2" "a 3" "b 3" "c 1"; do
  set -- $pair
  check "pod $1 -> pod on node $2 (IPv4)" nsx "${POD[$1]}" ping -c 2 -i 0.2 -W 2 -q "198.18.$2.2"
  check "pod $1 -> pod on node $2 (IPv6)" nsx "${POD[$1]}" ping -6 -c 2 -i 0.2 -W 2 -q "fd00:10:$2::2"
done
cluster_capture_stop
check "nothing in clear on the wire (capture live, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32
check "WireGuard carried it" test "$(cap_count udp port $WG_PORT)" -gt 0

# wg showconf equals the desired configuration (order-insensitive).
cmp_conf() {
  python3 - "$1" "$2" <<'PY'
import sys
def peers(text):
    out, cur = {}, None
    for line in text.splitlines():
        line = line.split('#')[0].strip()
        if line == '[Peer]': cur = {}; continue
        if cur is None or '=' not in line: continue
        k, v = [s.strip() for s in line.split('=', 1)]
        if k == 'PublicKey': out[v] = cur
        elif k == 'AllowedIPs': cur.setdefault('ips', set()).update(s.strip() for s in v.split(','))
        elif k == 'Endpoint': cur['ep'] = v
    return out
a, b = peers(open(sys.argv[1]).read()), peers(open(sys.argv[2]).read())
sys.exit(0 if a == b and a else 1)
PY
}
nsx "${NS[a]}" wg showconf "bwg${BW_ID}a" > "$TMP/actual.conf"
net a showconf > "$TMP/desired.conf"
check "wg showconf equals the desired peers" cmp_conf "$TMP/actual.conf" "$TMP/desired.conf"
check "wg setconf accepts bulwark net showconf" nsx "${NS[a]}" wg setconf "bwg${BW_ID}a" "$TMP/desired.conf"
check "...and bulwark net sync restores the private key setconf removed" net a sync
check "pod a -> pod c still works" nsx "${POD[a]}" ping -c 2 -i 0.2 -W 2 -q 198.18.3.2

# Change node c's AllowedIPs on node a while a stream to node b runs: zero loss toward b.
nsx "${POD[a]}" ping -i 0.01 -c 400 -W 1 -q 198.18.2.2 > "$TMP/stream.txt" 2>&1 &
stream=$!
sleep 0.5
sed -i 's|^AllowedIPs = .*|&, 198.18.30.0/24|' "$TMP/peers-a/c.conf"
check "sync adds a prefix to peer c" net a sync
check "the device has it" dev_has 198.18.30.0/24
check "the datapath has it" dp_has 198.18.30.0/24
sed -i 's|, 198.18.30.0/24||' "$TMP/peers-a/c.conf"
check "sync removes it again" net a sync
check "the device no longer has it" exits 1 dev_has 198.18.30.0/24
check "the datapath no longer has it" exits 1 dp_has 198.18.30.0/24
check "peer c kept its other prefixes" dev_has 198.18.3.0/24
check "...in the datapath too" dp_has 198.18.3.0/24
wait $stream
rcv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$TMP/stream.txt")
check "zero loss toward the unchanged peer b (${rcv:-0}/400)" test "${rcv:-0}" -eq 400

# Remove node c's peer file on node a.
rm "$TMP/peers-a/c.conf"
check "sync after removing peer c's file" net a sync
check "peer c is gone from the device" test "$(nsx "${NS[a]}" wg show "bwg${BW_ID}a" peers | wc -l)" -eq 1
check "peer c's prefixes are gone from the datapath" exits 1 dp_has 198.18.3.0/24
cluster_capture_start removed
check "pod a -> pod c is now dropped" exits 1 nsx "${POD[a]}" ping -c 2 -i 0.2 -W 1 -q 198.18.3.2
cluster_capture_stop
check "...and not sent in clear (capture live, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32
check "pod a -> pod b unaffected" nsx "${POD[a]}" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2
finish
