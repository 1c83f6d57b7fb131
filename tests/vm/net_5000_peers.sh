#!/usr/bin/env bash
# 5,000 peers (2 allowed IPs each) synced into kernel WireGuard over netlink: the dump is merged
# correctly, the set is split across messages, a second sync changes nothing, a one-peer change
# touches one peer.
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
modprobe wireguard || die "modprobe wireguard"
bpffs_ensure
TMP=$(mktemp -d); at_exit "rm -rf $TMP"
ns=$(netns_new n)
nsx "$ns" ip link add uplink type veth peer name other
nsx "$ns" ip link set uplink up
N=${PEERS:-5000}
mkdir "$TMP/peers"
python3 - "$TMP/peers" "$N" <<'PY'
import base64, os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    k = base64.b64encode(os.urandom(32)).decode()
    a, b = divmod(i, 256)
    with open(f"{d}/p{i:05d}.conf", "w") as f:
        f.write(f"[Peer]\nPublicKey = {k}\nEndpoint = 198.19.{a % 256}.{b}:51820\n"
                f"AllowedIPs = 198.18.{a}.{b}/32, fd00:10:{i:x}::/64\n")
PY
cat > "$TMP/node.conf" <<CONF
[Node]
Name = big
Uplinks = uplink
ProtectedCIDRs = 198.18.0.0/16, fd00:10::/32
PeersDir = $TMP/peers
StateDir = $TMP/state
[Interface]
Device = wgbig
ListenPort = 51820
CONF
pin=/sys/fs/bpf/bw-test-$BW_ID
at_exit "rm -rf $pin"
net() { nsx "$ns" bulwark net "$@" --config "$TMP/node.conf" --pin-dir "$pin"; }
start=$(date +%s.%N)
check "net up with $N peers" net up
end=$(date +%s.%N)
echo "# net up with $N peers: $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}') s"
be=$(net status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
kind=$(nsx "$ns" ip -j -d link show dev wgbig | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["linkinfo"]["info_kind"])')
check "it is kernel WireGuard, not wireguard-go (backend ${be:-?}, link kind ${kind:-?})" \
  test "$be" = kernel -a "$kind" = wireguard
check "the kernel device has all $N peers" test "$(nsx "$ns" wg show wgbig peers | wc -l)" -eq "$N"
check "...and all $((2 * N)) allowed IPs" test "$(nsx "$ns" wg show wgbig allowed-ips | awk '{ n += NF - 1 } END { print n }')" -eq $((2 * N))
check "the datapath peer map has $((2 * N)) prefixes" test "$(nsx "$ns" bulwark datapath peers --pin-dir "$pin" | wc -l)" -eq $((2 * N))
out=$(net sync)
check "a second sync changes nothing ($out)" test "$out" = "peers: +0 ~0 -0, allowed IPs: +0 -0"
sed -i 's|^AllowedIPs = \(.*\)|AllowedIPs = \1, 198.18.200.1/32|' "$TMP/peers/p00042.conf"
out=$(net sync)
check "a one-peer change touches one peer ($out)" test "$out" = "peers: +0 ~1 -0, allowed IPs: +1 -0"
check "the device has the new prefix" sh -c "nsenter --net=/run/netns/$ns wg show wgbig allowed-ips | grep -q 198.18.200.1/32"
finish
