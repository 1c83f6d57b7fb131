#!/usr/bin/env bash
# Attested mesh: three nodes run bulwarkd with MeshSecret and fetch it from the reference key
# service (sample attester, allowed by the policy for bulwark/mesh/ only); a fourth, rogue node
# whose key was injected into every peer set holds no mesh secret. Checked on the devices and on
# the wire: every honest pair shares one PSK (the HKDF value `openssl kdf` computes), the rogue
# completes no handshake and reaches no pod, nothing is in clear; the PSKs appear in no log, file
# or argv; a rotation to a new epoch under a ping flood loses packets only inside its window; a
# node whose key service is blackholed at start keeps its peers down (its health endpoint answers
# meanwhile: the fetch is off the event loop), then joins when the service comes back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
bpffs_ensure
net_cluster_up a b c d
ks_init host
KS_IP=198.19.0.250 KS_PORT=8443
ks_policy "$KS_DIR/policy.json" '{"sample":true,"rules":[{"name":"mesh","tee":"sample","resources":["bulwark/mesh/"]}]}'
ks_up() { ks_wire_start ks "$KS_IP" "$KS_PORT" "$KS_DIR/policy.json"; }
ks_down() { kill "$KS_PID_ks"; wait "$KS_PID_ks" 2>/dev/null; }
check "key service up on the wire ($KS_IP)" ks_up

# Keys first (the peer sets name them), then the node files with MeshSecret on a, b, c.
for x in a b c d; do
  mkdir -p "$TMP/state-$x"; (umask 077; wg genkey > "$TMP/state-$x/wg.key")
  wg pubkey < "$TMP/state-$x/wg.key" > "$TMP/$x.pub"
done
mesh_conf() { # node epoch
  sed -i '/^MeshSecret\|^KeyService\|^Attester/d' "${CONF[$1]}"
  sed -i "/^\[Node\]/a MeshSecret = bulwark/mesh/$2\nKeyService = https://$KS_IP:$KS_PORT\nKeyServiceCA = $KS_DIR/ca.pem\nAttester = sample" "${CONF[$1]}"
}
for x in a b c; do mesh_conf "$x" 1; done
i=0
for x in a b c d; do
  i=$((i + 1))
  for y in a b c d; do [ "$x" = "$y" ] || cluster_peer_file "$TMP/peers-$y/$x.conf" "$(cat "$TMP/$x.pub")" "$i"; done
done

# PSKs as `openssl kdf` computes them: mesh = HKDF(master, salt, info = resource path), then
# PSK = HKDF(mesh, no salt, info = label || sorted public keys).
mesh_hex() { ks_hkdf "bulwark/mesh/$1"; }
psk_want() { # epoch pubA pubB
  local a b
  a=$(printf '%s' "$2" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  b=$(printf '%s' "$3" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  [[ "$a" > "$b" ]] && { local t=$a; a=$b; b=$t; }
  openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:"$(mesh_hex "$1")" \
    -kdfopt hexinfo:"$(printf 'bulwark mesh psk v1' | od -An -v -tx1 | tr -d ' \n')$a$b" HKDF |
    tr -d ':\n' | xxd -r -p | base64
}
psk_of() { # node peer-node: the PSK node holds for peer (base64, "(none)" when unset)
  nsx "${NS[$1]}" wg show "bwg$BW_ID$1" preshared-keys | awk -v k="$(cat "$TMP/$2.pub")" '$1 == k { print $2 }'
}
hs_of() { nsx "${NS[$1]}" wg show "bwg$BW_ID$1" latest-handshakes | awk -v k="$(cat "$TMP/$2.pub")" '$1 == k { print $2 }'; }

for x in a b c d; do
  nsx "${NS[$x]}" bulwarkd --config "${CONF[$x]}" --pin-dir "${PIN[$x]}" > "$TMP/agent-$x.log" 2>&1 &
  at_exit "kill $!"
done
for x in a b c; do
  check "node $x fetched the mesh secret by attestation" wait_for 100 grep -q "mesh secret bulwark/mesh/1 fetched" "$TMP/agent-$x.log"
done
check "rogue node d is up (no mesh secret)" wait_for 100 grep -q "up: " "$TMP/agent-d.log"
backend_ok() { # node: the device runs on the expected backend (kernel: no UAPI socket, a wireguard link)
  if [ "${BULWARK_EXPECT_BACKEND:-userspace}" = kernel ]; then
    test ! -e "/var/run/wireguard/bwg$BW_ID$1.sock" &&
      nsx "${NS[$1]}" ip -d link show "bwg$BW_ID$1" | grep -qw wireguard
  else
    test -S "/var/run/wireguard/bwg$BW_ID$1.sock"
  fi
}
for x in a b c d; do
  check "node $x runs the ${BULWARK_EXPECT_BACKEND:-userspace} WireGuard backend" wait_for 100 backend_ok "$x"
done

cluster_capture_start mesh
for pair in "a 2" "a 3" "b 3" "c 1"; do
  set -- $pair
  check "pod $1 -> pod on node $2 through the attested mesh (IPv4)" nsx "${POD[$1]}" ping -c 2 -i 0.2 -W 2 -q "198.18.$2.2"
  check "pod $1 -> pod on node $2 (IPv6)" nsx "${POD[$1]}" ping -6 -c 2 -i 0.2 -W 2 -q "fd00:10:$2::2"
done
for x in a b c; do
  for y in a b c; do
    [ "$x" = "$y" ] && continue
    got=$(psk_of "$x" "$y")
    check "node $x holds the derived PSK for $y (equals openssl kdf)" \
      test -n "$got" -a "$got" != "(none)" -a "$got" = "$(psk_want 1 "$(cat "$TMP/$x.pub")" "$(cat "$TMP/$y.pub")")"
    check "both ends of $x-$y hold the same PSK" test "$got" = "$(psk_of "$y" "$x")"
  done
  check "node $x configures the rogue's key only with a PSK the rogue cannot know" \
    test "$(psk_of "$x" d)" = "$(psk_want 1 "$(cat "$TMP/$x.pub")" "$(cat "$TMP/d.pub")")"
done
# The rogue tries every peer of its set from its pod (each ping starts a handshake attempt).
for y in 1 2 3; do
  check "rogue pod d -> pod on node $y: nothing delivered" fails nsx "${POD[d]}" ping -c 3 -i 0.3 -W 1 -q "198.18.$y.2"
done
for x in a b c; do
  check "node $x: no handshake with the rogue ever completed" test "$(hs_of "$x" d)" = 0
done
nsx "${NS[d]}" wg show "bwg${BW_ID}d" latest-handshakes > "$TMP/rogue-hs"
check "rogue node d: every handshake timestamp is 0" awk '$2 != 0 { exit 1 } END { exit NR == 0 }' "$TMP/rogue-hs"
cluster_capture_stop
check "nothing with a pod address in clear on the wire (capture live: markers, no drops)" \
  cap_clear net 198.18.0.0/16 or net fd00:10::/32
check "WireGuard carried the honest traffic" test "$(cap_count udp port $WG_PORT)" -gt 0

# No PSK anywhere: logs, state files, argv of every process.
for x in a b c; do psk_of "$x" "$( [ $x = a ] && echo b || echo a )"; done | sort -u > "$TMP/psks"
# every process's argv, taken before any grep holding a PSK in its own argv runs
for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' 2>/dev/null < "$f"; echo; done 2>/dev/null > "$TMP/argv"
while read -r p; do
  [ -n "$p" ] || continue
  printf '%s\n%s\n' "$p" "$(printf '%s' "$p" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
done < "$TMP/psks" > "$TMP/psk-patterns"
leak=0
grep -rqsF -f "$TMP/psk-patterns" "$TMP"/agent-*.log "$TMP"/state-* "${CONF[@]}" "$KS_DIR/ks.log" "$TMP/argv" && leak=1
check "no PSK in any log, state file, node file or argv ($(wc -l < "$TMP/psks") checked)" test "$leak" = 0 -a -s "$TMP/psks"
check "the mesh secret is in no log" fails grep -qF "$(mesh_hex 1)" "$TMP"/agent-*.log "$KS_DIR/ks.log"

# The rest does not depend on the WireGuard backend: the VM run (kernel WireGuard) stops here.
[ -n "${MESH_CORE_ONLY:-}" ] && finish

# Rotation to epoch 2 under a ping flood a -> b.
nsx "${POD[a]}" ping -i 0.01 -c 500 -W 1 198.18.2.2 > "$TMP/flood.log" 2>&1 &
flood=$!
sleep 1
for x in a b c; do mesh_conf "$x" 2; done
t0=$(date +%s%N)
for x in a b c; do pkill -HUP -f "bulwarkd --config ${CONF[$x]} "; done
for x in a b c; do
  check "node $x moved to epoch 2" wait_for 100 grep -q "mesh secret bulwark/mesh/2 fetched" "$TMP/agent-$x.log"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$flood"
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$TMP/flood.log")
# Pairs disagree between the first and the last agent applying epoch 2; WireGuard sessions made
# before keep carrying traffic (the PSK only enters a handshake), so loss stays near zero.
check "every agent applied epoch 2 (${ms} ms after the SIGHUPs, polled)" test "$ms" -lt "${MESH_ROTATE_MAX_MS:-10000}"
# The window in which pairs disagree: from the first agent's switch to the last one's, by the
# agents' own log timestamps (ts=... in logfmt).
window=$(python3 - "$TMP"/agent-[abc].log <<'PY'
import sys, datetime
ts = []
for f in sys.argv[1:]:
    for l in open(f):
        if l.startswith("ts=") and "mesh secret bulwark/mesh/2 fetched" in l:
            ts.append(datetime.datetime.strptime(l.split()[0][3:], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp())
print(int((max(ts) - min(ts)) * 1000) if len(ts) == 3 else "")
PY
)
check "pairs disagreed on the PSK for ${window:-?} ms (first to last agent on epoch 2; < 2000)" \
  test -n "$window" -a "${window:-99999}" -lt 2000
check "rotation under a 100/s flood: ${got:-?}/500 received, loss < 2 s worth (200 packets)" test "${got:-0}" -gt 300
check "after rotation a and b hold the epoch-2 PSK" \
  test "$(psk_of a b)" = "$(psk_want 2 "$(cat "$TMP/a.pub")" "$(cat "$TMP/b.pub")")" -a "$(psk_of a b)" = "$(psk_of b a)"
check "pods still reach each other after the rotation" nsx "${POD[c]}" ping -c 2 -i 0.2 -W 2 -q 198.18.1.2

# Key service blackholed at start (it accepts connections and never answers): node c restarts,
# keeps its peers down, then joins. The fetch runs off the agent's event loop: /healthz answers
# within 1 s while the fetch hangs (it would stall until the 5 s request timeout on the loop).
ks_down
nsenter --net="/run/netns/$NS_WIRE" python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64); print("listening", flush=True); time.sleep(120)' \
  "$KS_IP" "$KS_PORT" > "$TMP/blackhole.log" 2>&1 &
blackhole=$!
at_exit "kill $blackhole"
check "key service blackholed (accepts, never answers)" wait_for 50 grep -q listening "$TMP/blackhole.log"
pkill -f "bulwarkd --config ${CONF[c]} "; sleep 0.3
: > "$TMP/agent-c2.log"
(for _ in $(seq 150); do
   grep -q "peers stay down" "$TMP/agent-c2.log" && break
   nsx "${NS[c]}" curl -s -o /dev/null --max-time 1 -w '%{http_code} %{time_total}\n' http://127.0.0.1:9962/healthz
   sleep 0.1
 done > "$TMP/healthz-probes") &
probes=$!
nsx "${NS[c]}" bulwarkd --config "${CONF[c]}" --pin-dir "${PIN[c]}" > "$TMP/agent-c2.log" 2>&1 &
at_exit "kill $!"
check "key service unreachable at start: node c says peers stay down" wait_for 150 grep -q "peers stay down" "$TMP/agent-c2.log"
wait $probes
n_ok=$(grep -c '^200 ' "$TMP/healthz-probes")
# slow: a 200 that took 1 s or more, or any probe failing once the endpoint was up
slow=$(awk '$1 == 200 && $2 >= 1.0 { bad++ } seen && $1 != 200 { bad++ } $1 == 200 { seen = 1 } END { print bad + 0 }' "$TMP/healthz-probes")
check "...while its fetch hung, /healthz answered $n_ok times, each within 1 s (slowest $(awk '$1 == 200' "$TMP/healthz-probes" | sort -k2 -n | tail -1 | cut -d' ' -f2) s)" \
  test "$n_ok" -ge 1 -a "$slow" -eq 0
kill $blackhole; wait $blackhole 2>/dev/null
check "...and its device has no peer at all (never one without a PSK)" \
  test -z "$(nsx "${NS[c]}" wg show "bwg${BW_ID}c" peers)"
check "...and its pods reach nobody" fails nsx "${POD[c]}" ping -c 1 -W 1 -q 198.18.1.2
ks_line() { nsx "${NS[c]}" bulwark status --config "${CONF[c]}" --pin-dir "${PIN[c]}" | grep "^key service:"; }
out=$(ks_line)
check "bulwark status says the key service is not reachable, and why ($out)" \
  grep -q "^key service: https://$KS_IP:$KS_PORT NOT REACHABLE: ." <<<"$out"
ks_up
check "key service back: node c fetches on its backoff and rejoins" wait_for 200 grep -q "mesh secret bulwark/mesh/2 fetched" "$TMP/agent-c2.log"
check "...and pod c reaches pod a again" wait_for 50 nsx "${POD[c]}" ping -c 1 -W 1 -q 198.18.1.2
out=$(ks_line)
check "...and bulwark status says the key service is reachable ($out)" \
  grep -q "^key service: https://$KS_IP:$KS_PORT reachable, mesh secret bulwark/mesh/2" <<<"$out"

# A PresharedKey in a peer file next to MeshSecret is refused with the file named.
cp "$TMP/peers-a/b.conf" "$TMP/b.bak"
echo "PresharedKey = $(wg genpsk)" >> "$TMP/peers-a/b.conf"
out=$(nsx "${NS[a]}" bulwark net sync --config "${CONF[a]}" --pin-dir "${PIN[a]}" 2>&1)
check "PresharedKey with MeshSecret is refused, naming the file ($out)" \
  sh -c "printf '%s' \"\$1\" | grep -q 'peers-a/b.conf: PresharedKey is not allowed'" _ "$out"
cp "$TMP/b.bak" "$TMP/peers-a/b.conf"
finish
