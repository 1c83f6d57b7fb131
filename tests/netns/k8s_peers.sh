#!/usr/bin/env bash
# PeerSource = kubernetes against tests/fake-apiserver.py (a FAKE apiserver, TLS with its own CA,
# on the wire at 198.19.0.251; nodes reach it over their uplinks). Three nodes run bulwarkd with no
# peer files anywhere: each publishes its key and endpoint as annotations on its Node (other
# annotations untouched), pods reach each other through WireGuard only (nothing in clear on the
# wire); a fourth node joining is reachable within 2 s of its annotation; a deleted node leaves
# every device within 2 s; a 410 on the watch makes the agents list again; the apiserver stopped
# for 30 s changes nothing (peers stay, traffic flows); after its restart changes apply again.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a b c d
API_IP=198.19.0.251 API_PORT=6443
API=$TMP/api CTL=$TMP/api/ctl
mkdir -p "$CTL"
nsx "$NS_WIRE" ip addr add "$API_IP/24" dev br0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=fake-cluster-ca" -days 2 \
  -keyout "$API/ca.key" -out "$API/ca.pem" 2>/dev/null || die "CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$API_IP" \
  -keyout "$API/srv.key" -out "$API/srv.csr" 2>/dev/null || die "server CSR"
printf 'subjectAltName=IP:%s\n' "$API_IP" > "$API/srv.ext"
openssl x509 -req -in "$API/srv.csr" -CA "$API/ca.pem" -CAkey "$API/ca.key" -CAcreateserial -days 2 \
  -extfile "$API/srv.ext" -out "$API/srv.pem" 2>/dev/null || die "server cert"
(umask 077; head -c 24 /dev/urandom | base64 > "$API/token")
API_PID=
api_up() {
  nsenter --net="/run/netns/$NS_WIRE" python3 "$BULWARK_TOP/tests/fake-apiserver.py" --listen "$API_IP" \
    --port "$API_PORT" --cert "$API/srv.pem" --key "$API/srv.key" --token-file "$API/token" --control "$CTL" \
    >> "$API/log" 2>&1 &
  API_PID=$!
  at_exit "kill $API_PID 2>/dev/null"
  wait_for 300 nsx "$NS_WIRE" curl -sf --cacert "$API/ca.pem" -H "Authorization: Bearer $(cat "$API/token")" \
    "https://$API_IP:$API_PORT/api/v1/nodes"
}
api_down() { kill "$API_PID"; wait "$API_PID" 2>/dev/null; }
ctl_n=0
ctl() { ctl_n=$((ctl_n + 1)); printf '%s\n' "$1" > "$CTL/.c$ctl_n"; mv "$CTL/.c$ctl_n" "$CTL/c$(printf %04d $ctl_n).json"; }
node_put() { # letter idx [extra annotations json]
  ctl "{\"op\":\"put\",\"node\":{\"metadata\":{\"name\":\"$1\",\"labels\":{\"kubernetes.io/hostname\":\"$1\"},
    \"annotations\":{\"example.com/owner\":\"someone-else\"}},
    \"spec\":{\"podCIDR\":\"198.18.$2.0/24\",\"podCIDRs\":[\"198.18.$2.0/24\",\"fd00:10:$2::/64\"]},
    \"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"198.19.0.$2\"},{\"type\":\"Hostname\",\"address\":\"$1\"}]}}}"
}
state() { cat "$CTL/state.json"; }
check "fake apiserver up on the wire ($API_IP)" api_up

# Keys made beforehand so the test knows them; node files without peers or PodCIDRs.
i=0
for x in a b c d; do
  i=$((i + 1))
  mkdir -p "$TMP/state-$x"; (umask 077; wg genkey > "$TMP/state-$x/wg.key")
  wg pubkey < "$TMP/state-$x/wg.key" > "$TMP/$x.pub"
  rmdir "$TMP/peers-$x"
  sed -i "/^PeersDir\|^PodCIDRs/d" "${CONF[$x]}"
  sed -i "/^\[Node\]/a PeerSource = kubernetes\nKubeAPI = https://$API_IP:$API_PORT\nKubeTokenFile = $API/token\nKubeCAFile = $API/ca.pem" "${CONF[$x]}"
done
for x in a b c; do node_put $x $(( $(printf '%d' "'$x") - 96 )); done
check "the fake holds three nodes" wait_for 100 grep -q '"c"' "$CTL/state.json"

declare -A AGENT
agent_up() {
  nsenter --net="/run/netns/${NS[$1]}" bulwarkd --config "${CONF[$1]}" --pin-dir "${PIN[$1]}" > "$TMP/agent-$1.log" 2>&1 &
  AGENT[$1]=$!
  at_exit "kill ${AGENT[$1]} 2>/dev/null"
}
for x in a b c d; do agent_up $x; done
published() { grep -qF "\"bulwark.dev/wireguard-public-key\": \"$(cat "$TMP/$1.pub")\", \"bulwark.dev/wireguard-endpoint\": \"198.19.0.$2:$WG_PORT\"" "$CTL/state.json"; }
for x in a b c; do
  i=$(( $(printf '%d' "'$x") - 96 ))
  check "node $x published its key and endpoint on its Node" wait_for 300 published $x $i
done
check "...and the other annotation on the Nodes is untouched" \
  test "$(grep -o '"example.com/owner": "someone-else"' "$CTL/state.json" | wc -l)" -eq 3

npeers() { local out; out=$(nsx "${NS[$1]}" wg show "bwg$BW_ID$1" peers) || { echo x; return; }; [ -z "$out" ] && echo 0 || wc -l <<<"$out"; }
has_peer() { nsx "${NS[$1]}" wg show "bwg$BW_ID$1" peers | grep -qxF "$(cat "$TMP/$2.pub")"; }
for x in a b c; do
  check "node $x has the two other nodes as peers (from the Nodes, no peer files)" wait_for 100 test "$(npeers $x)" = 2
done
check "node d (no Node object yet) is nobody's peer" sh -c "! grep -qF '$(cat "$TMP/d.pub")' '$CTL/state.json'"
for x in a b c; do check "...not on node $x" eval "! has_peer $x d"; done
allowed_b=$(nsx "${NS[a]}" wg show "bwg${BW_ID}a" allowed-ips | grep -F "$(cat "$TMP/b.pub")")
check "...allowed IPs of b on a are b's spec.podCIDRs" \
  test "$(tr ' \t' '\n\n' <<<"$allowed_b" | grep -c '^198.18.2.0/24$\|^fd00:10:2::/64$')" -eq 2

ping_ok() { nsx "${POD[$1]}" ping -c 1 -W 1 -q "$2" >/dev/null; }
cluster_capture_start k8s
check "pod a -> pod b" wait_for 50 ping_ok a 198.18.2.2
check "pod b -> pod c" wait_for 50 ping_ok b 198.18.3.2
check "pod c -> pod a (IPv6)" wait_for 50 nsx "${POD[c]}" ping -6 -c 1 -W 1 -q fd00:10:1::2
cluster_capture_stop
check "on the wire (capture ran the whole window): no pod address in clear" \
  cap_clear 'net 198.18.0.0/16 or net fd00:10::/32'
wg_pkts=$(cap_count "udp port $WG_PORT")
check "...and the pods' packets crossed it as WireGuard ($wg_pkts packets)" test "${wg_pkts:-0}" -gt 0

# A fourth node joins: its agent publishes when its Node appears; the others apply it.
# Latency is timed on the agents' logs (a cheap poll; querying three devices every few ms costs
# more than the sync on a loaded machine), the state is checked right after.
syncs() { grep -c '^.*sync: peers' "$TMP/agent-$1.log"; }
nsyncs() { echo "$(syncs a) $(syncs b) $(syncs c)"; }
applied_ms() { # "counts before" t0: ms from t0 until a, b and c each logged one more sync
  local before=($1) t0=$2 now
  for _ in $(seq 600); do
    now=($(nsyncs))
    if [ "${now[0]}" -gt "${before[0]}" ] && [ "${now[1]}" -gt "${before[1]}" ] && [ "${now[2]}" -gt "${before[2]}" ]; then
      echo $(( ($(date +%s%N) - t0) / 1000000 )); return 0
    fi
    sleep 0.01
  done
  echo 99999
}
n0=$(nsyncs)
node_put d 4
for _ in $(seq 3000); do published d 4 && break; sleep 0.01; done
t0=$(date +%s%N)
check "node d published its annotations once its Node appeared" published d 4
ms=$(applied_ms "$n0" "$t0")
check "a, b and c have d as a peer within 2 s of its annotation ($ms ms)" test "$ms" -le 2000
for x in a b c; do check "...node $x has d as a peer" has_peer $x d; done
check "node d has a, b and c" wait_for 50 test "$(npeers d)" = 3
check "pod a -> pod d" wait_for 50 ping_ok a 198.18.4.2

# A node deleted leaves every other node within 2 s.
# Timed from the moment the apiserver holds the deletion (its state file is written with the event).
n0=$(nsyncs)
ctl '{"op":"delete","name":"d"}'
for _ in $(seq 3000); do grep -q '"d": {' "$CTL/state.json" || break; sleep 0.01; done
t0=$(date +%s%N)
ms=$(applied_ms "$n0" "$t0")
check "node d deleted: a, b and c applied it within 2 s ($ms ms)" test "$ms" -le 2000
for x in a b c; do check "...node $x no longer has d" eval "! has_peer $x d"; done
check "...and pod a -> pod d is dropped" exits 1 nsx "${POD[a]}" ping -c 2 -i 0.2 -W 1 -q 198.18.4.2

# 410: the history is gone; the agents list again and still apply changes. The token rotates
# first (as kubelet does): the relist must read the new one (the old one now gets 401).
(umask 077; head -c 24 /dev/urandom | base64 > "$API/token.new"); mv "$API/token.new" "$API/token"
ctl '{"op":"expire"}'
check "410 on the watch: node a lists again" wait_for 100 grep -q 'listing again' "$TMP/agent-a.log"
node_put d 4
check "...and a change after the relist (with the rotated token) is applied (d back on a)" wait_for 50 has_peer a d
ctl '{"op":"bookmark"}'
ctl '{"op":"delete","name":"d"}'
check "...a delete after a bookmark is applied too" wait_for 50 sh -c "! nsenter --net=/run/netns/${NS[a]} -- wg show bwg${BW_ID}a peers | grep -qxF '$(cat "$TMP/d.pub")'"

# The apiserver down for 30 s: nothing changes.
before=$(for x in a b c; do nsx "${NS[$x]}" wg show "bwg$BW_ID$x" allowed-ips; done | sort)
api_down
check "apiserver down: node a says so" wait_for 100 grep -q 'unreachable.*keeping the last applied peers' "$TMP/agent-a.log"
api_metric() { nsx "${NS[a]}" curl -sf http://127.0.0.1:9962/metrics | grep -qx "bulwark_kubernetes_api_reachable $1"; }
check "...and its metrics (bulwark_kubernetes_api_reachable 0)" wait_for 100 api_metric 0
sleep 30
after=$(for x in a b c; do nsx "${NS[$x]}" wg show "bwg$BW_ID$x" allowed-ips; done | sort)
check "after 30 s without the apiserver every node has the same peers" test "$before" = "$after" -a -n "$after"
check "...pod a -> pod b" ping_ok a 198.18.2.2
check "...pod b -> pod c" ping_ok b 198.18.3.2
check "apiserver restarted (state kept)" api_up
node_put d 4
check "after the restart a new node is applied again (agents reconnect with backoff)" wait_for 250 has_peer a d
# SIGTERM: the watcher thread stops mid-watch and the agent exits cleanly (under SANITIZE=1 with no
# AddressSanitizer/LeakSanitizer/UBSan report).
kill -TERM "${AGENT[a]}"
rc=0; wait "${AGENT[a]}" || rc=$?
check "SIGTERM: node a's agent exits 0 while watching" test "$rc" -eq 0
check "...with no sanitizer report in its log" sh -c "! grep -E -A25 'Sanitizer|runtime error' '$TMP/agent-a.log' >&2"
finish
