#!/usr/bin/env bash
# Part of `make demo` (scripts/demo.sh runs it): the attested mesh with TPM attestation.
#   - four nodes on a wire; each of a, b, c has its own software TPM (swtpm) and attests with it;
#   - the key service gives the mesh secret (bulwark/mesh/1) only to TPM quotes from the nodes'
#     AKs with the expected PCR values;
#   - node c's PCR 7 changed after the policy was written (a modified boot): its attestation is
#     refused, so it gets no mesh secret and its peers stay down;
#   - node d is a rogue: its key was injected into every peer set, but it holds no mesh secret;
#     its handshakes fail, its pod reaches nobody, and nothing goes out in clear.
# Exit status: 0 when every step did what it shows.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib-demo.sh"
if miss=$(tpm_tools_missing); then echo "demo-mesh: TPM tools missing: $miss (scripts/install-deps.sh)"; exit 1; fi

step "5. Attested mesh: a TPM per node, the mesh secret only for quotes the policy trusts"
net_cluster_up a b c d
ks_init host
declare -A TCTI AK
for x in a b c; do
  TPM_KEEP=1 TPM_UNIX=1 tpm_start "$TMP/tpm-$x" >/dev/null || die "swtpm for node $x"
  at_exit "kill $TPM_PID 2>/dev/null"
  tpm_create_ak 0x81010002 rsa || die "AK for node $x"
  TCTI[$x]=$TPM_TCTI
  AK[$x]=$(sha256sum < "$TPM_DIR/ak-0x81010002.der" | cut -d' ' -f1)
  pcr7=$(tpm_pcr_hex 7)
  rules+="{\"name\":\"node-$x\",\"tee\":\"tpm\",\"trusted_aks\":[\"${AK[$x]}\"],\"pcrs\":{\"7\":\"$pcr7\"},\"resources\":[\"bulwark/mesh/\"]},"
  printf '  node %s: swtpm, AK %s..., PCR 7 = %s...\n' "$x" "${AK[$x]:0:12}" "${pcr7:0:12}"
done
ks_policy "$KS_DIR/policy.json" "{\"rules\":[${rules%,}]}"
ks_wire_start mesh 198.19.0.250 8443 "$KS_DIR/policy.json" || die "key service on the wire"
echo "  key service: $KS_URL, policy: bulwark/mesh/ for those three AKs with those PCR 7 values (sample evidence refused)"
# Node c's boot changes after the policy was written.
TPM2TOOLS_TCTI=${TCTI[c]} tpm_pcr_extend 7 "an unexpected bootloader" >/dev/null
echo "  node c: PCR 7 extended after the policy was written (a modified boot)"

for x in a b c d; do
  mkdir -p "$TMP/state-$x"; (umask 077; wg genkey > "$TMP/state-$x/wg.key")
  wg pubkey < "$TMP/state-$x/wg.key" > "$TMP/$x.pub"
done
for x in a b c; do
  sed -i "/^\[Node\]/a MeshSecret = bulwark/mesh/1\nKeyService = $KS_URL\nKeyServiceCA = $KS_DIR/ca.pem\nAttester = tpm\nTPMTcti = ${TCTI[$x]}" "${CONF[$x]}"
done
i=0
for x in a b c d; do
  i=$((i + 1))
  for y in a b c d; do [ "$x" = "$y" ] || cluster_peer_file "$TMP/peers-$y/$x.conf" "$(cat "$TMP/$x.pub")" "$i"; done
done
echo "  every node's peer set holds all four keys (d's key injected: it is the rogue)"
for x in a b c d; do
  nsx "${NS[$x]}" bulwarkd --config "${CONF[$x]}" --pin-dir "${PIN[$x]}" > "$TMP/agent-$x.log" 2>&1 &
  at_exit "kill $!"
done
expect "node a attested with its TPM and fetched the mesh secret" wait_for 300 grep -q "mesh secret bulwark/mesh/1 fetched" "$TMP/agent-a.log"
expect "node b too" wait_for 300 grep -q "mesh secret bulwark/mesh/1 fetched" "$TMP/agent-b.log"
expect "node c's attestation was refused (PCR 7): its peers stay down" wait_for 300 grep -q "peers stay down" "$TMP/agent-c.log"
grep -h "mesh secret" "$TMP/agent-a.log" "$TMP/agent-c.log" | head -2 | sed 's/^/  /'
psk() { nsx "${NS[$1]}" wg show "bwg$BW_ID$1" preshared-keys | awk -v k="$(cat "$TMP/$2.pub")" '$1 == k { print $2 }'; }
same_psk() { local p; p=$(psk a b); [ -n "$p" ] && [ "$p" != "(none)" ] && [ "$p" = "$(psk b a)" ]; }
wait_for 100 same_psk
expect "a and b hold the same derived PSK for each other (not shown: it is a key)" same_psk
expect "node c has no peer at all (never one without a PSK)" test -z "$(nsx "${NS[c]}" wg show "bwg${BW_ID}c" peers)"

cluster_capture_start mesh
expect "pod a -> pod b through the attested mesh" nsx "${POD[a]}" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2
for y in 1 2; do nsx "${POD[d]}" ping -c 3 -i 0.3 -W 1 -q "198.18.$y.2" >/dev/null 2>&1; done
expect "rogue pod d reaches no pod (its handshakes fail: it cannot derive the PSKs)" \
  exits 1 nsx "${POD[d]}" ping -c 2 -i 0.3 -W 1 -q 198.18.1.2
expect "pod c reaches no pod (node c failed attestation)" exits 1 nsx "${POD[c]}" ping -c 2 -i 0.3 -W 1 -q 198.18.1.2
cluster_capture_stop
hs() { nsx "${NS[$1]}" wg show "bwg$BW_ID$1" latest-handshakes | awk -v k="$(cat "$TMP/d.pub")" '$1 == k { print $2 }'; }
printf '  latest handshake with the rogue: node a %s, node b %s (0 = never)\n' "$(hs a)" "$(hs b)"
expect "no handshake with the rogue ever completed" test "$(hs a)" = 0 -a "$(hs b)" = 0
expect "nothing with a pod address in clear on the wire (capture live: markers, no drops)" \
  cap_clear net 198.18.0.0/16 or net fd00:10::/32
printf '  on the wire: %s WireGuard packets (handshake attempts included)\n' "$(cap_count udp port $WG_PORT)"
echo
[ $failed -eq 0 ] || echo "demo-mesh: some step FAILED"
exit $failed
