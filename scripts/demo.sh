#!/usr/bin/env bash
# `sudo make demo`: bulwark end to end on one machine, in network namespaces (and, for the
# storage part, in the test VM, because this kernel has no device-mapper).
#
#   1. two nodes with a pod each, joined by a "wire" the cloud host can watch; bulwarkd on each
#      brings up WireGuard and the datapath; pod-to-pod traffic crosses the wire only as WireGuard;
#   2. a peer file is removed: its pods' traffic is dropped and counted, never sent in clear;
#   3. the reference key service hands a volume key to an attested client (a TPM quote from swtpm);
#   4. (VM) that key stages an encrypted, integrity-protected volume; cryptsetup shows it;
#   5. the attested mesh (scripts/demo-mesh.sh): only nodes whose TPM quote the key service trusts
#      get the mesh secret; a node with a changed PCR and a rogue with an injected key cannot
#      complete a handshake, and nothing leaves in clear.
#
# Everything it creates is removed on exit. Exit status: 0 when every step did what it shows.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib-demo.sh"

step "1. Two nodes, a pod on each, a wire between them (198.19.0.0/24, pods 198.18.x.0/24)"
net_cluster_up a b
net b up > /dev/null
nsenter --net="/run/netns/${NS[a]}" bulwarkd --config "${CONF[a]}" --pin-dir "${PIN[a]}" > "$TMP/bulwarkd-a.log" 2>&1 &
at_exit "kill $!"
wait_for 200 grep -q watching "$TMP/bulwarkd-a.log" || { cat "$TMP/bulwarkd-a.log"; die "bulwarkd did not start"; }
net a export-peer > "$TMP/peers-b/a.conf"
net b export-peer > "$TMP/peers-a/.b" && mv "$TMP/peers-a/.b" "$TMP/peers-a/b.conf"
net b sync > /dev/null
# 0: node A's device has a peer, 1: it has none, 2: the query failed.
a_has_peer() { local out; out=$(nsx "${NS[a]}" wg show "bwg${BW_ID}a" peers) || return 2; [ -n "$out" ]; }
expect "bulwarkd on node A took node B in as a peer" wait_for 50 a_has_peer
show cat "$TMP/bulwarkd-a.log"
show nsx "${NS[a]}" wg show "bwg${BW_ID}a"

step "Pod A talks to pod B; the cloud host captures the wire"
cluster_capture_start demo
show nsx "${POD[a]}" ping -c 3 -i 0.2 -W 2 198.18.2.2
show nsx "${POD[a]}" ping -6 -c 3 -i 0.2 -W 2 fd00:10:2::2
cluster_capture_stop
printf '  on the wire: %s WireGuard packets, %s packets with a pod address in clear\n' \
  "$(cap_count udp port $WG_PORT)" "$(cap_count net 198.18.0.0/16 or net fd00:10::/32)"
tcpdump -n -r "$CAP" not udp port 9 2>/dev/null | head -4 | sed 's/^/  /'   # (port 9: the capture's markers)
expect "pod traffic reached the other pod" nsx "${POD[a]}" ping -c 1 -W 2 -q 198.18.2.2
expect "nothing in clear on the wire (the capture saw its markers, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32
expect "WireGuard carried it" test "$(cap_count udp port $WG_PORT)" -gt 0

step "2. Node B's peer file is removed from node A: fail closed"
rm "$TMP/peers-a/b.conf"
expect "bulwarkd on node A took node B out of its device" wait_for 20 exits 1 a_has_peer
cluster_capture_start nopeer
show nsx "${POD[a]}" ping -c 3 -i 0.2 -W 1 198.18.2.2
cluster_capture_stop
show nsx "${NS[a]}" bulwark datapath status --pin-dir "${PIN[a]}"
expect "pod traffic is dropped" exits 1 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2
dropped=$(nsx "${NS[a]}" bulwark datapath status --json --pin-dir "${PIN[a]}" |
  python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['dropped-no-peer']['packets'])")
expect "...and counted as dropped-no-peer ($dropped)" test "$dropped" -gt 0
expect "...and nothing went out in clear (the capture saw its markers, no drops)" cap_clear net 198.18.0.0/16 or net fd00:10::/32

step "3. The key service gives a volume key to a client attested by its TPM (swtpm)"
ks_init
TPM_UNIX=1 tpm_start "$TMP/tpm" >/dev/null && tpm_create_ak 0x81010002 rsa || die "swtpm"
ak=$(sha256sum < "$TPM_DIR/ak-0x81010002.der" | cut -d' ' -f1)
ks_policy "$KS_DIR/policy.json" "{\"rules\":[{\"name\":\"demo\",\"tee\":\"tpm\",\"trusted_aks\":[\"$ak\"],
  \"pcrs\":{\"7\":\"$(tpm_pcr_hex 7)\"},\"resources\":[\"bulwark/volume/\"]}]}"
ks_start demo 8443 "$KS_DIR/policy.json"
printf '$ bulwark key fetch --service https://127.0.0.1:8443 --resource bulwark/volume/pvc-demo --attester tpm --tcti %s --ca ca.pem --out key\n' "$TPM_TCTI"
kx bulwark key fetch --service https://127.0.0.1:8443 --resource bulwark/volume/pvc-demo --attester tpm \
  --tcti "$TPM_TCTI" --ca "$KS_DIR/ca.pem" --out "$KS_DIR/pvc-demo.key" > /dev/null
fp() { printf '%s' "$1" | sha256sum | cut -c1-16; }  # never print a key, only a fingerprint
gothex=$(od -An -v -tx1 "$KS_DIR/pvc-demo.key" 2>/dev/null | tr -d ' \n')
wanthex=$(ks_hkdf key-pvc-demo)
got=$(fp "$gothex") want=$(fp "$wanthex")
printf '  fetched key: fingerprint %s   HKDF(master, salt, "key-pvc-demo") by openssl kdf: fingerprint %s\n' "$got" "$want"
# Two empty strings have equal fingerprints too: both must be 32-byte keys first.
key32() { [[ $1 =~ ^[0-9a-f]{64}$ ]]; }
same_key() { key32 "$gothex" && key32 "$wanthex" && [ "$got" = "$want" ]; }
expect "the service derived the documented key (32 bytes, equal to openssl's HKDF)" same_key
# ...and only an attested client gets it: without a token, or with a forged one, the resource
# request is refused and no JWE comes back.
refused() { # curl-args...: 401 and no ciphertext in the body
  local code
  code=$(ks_curl -o "$KS_DIR/refused.body" -w '%{http_code}' "$@" https://127.0.0.1:8443/kbs/v0/resource/bulwark/volume/pvc-demo) &&
    test "$code" = 401 && ! grep -q ciphertext "$KS_DIR/refused.body"
}
printf '$ curl https://127.0.0.1:8443/kbs/v0/resource/bulwark/volume/pvc-demo   (no attestation)\n'
refused && printf '  HTTP 401: %s\n' "$(head -c 200 "$KS_DIR/refused.body")"
unattested_refused() { refused && refused -H 'Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.AAAA'; }
expect "...and sends it only to the attested client (no token: 401, forged token: 401, no JWE)" unattested_refused

step "4. An encrypted volume from that key (in the test VM: this kernel has no device-mapper)"
if [ -n "$(ls "${BULWARK_KERNEL_DIR:-$BULWARK_TOP/build/kernel}/current/boot" 2>/dev/null)" ]; then
  # The guest sees the repository, not the host's /tmp: hand the key over through build/.
  vmkey=$BUILD/demo-$BW_ID.key
  at_exit "rm -f $vmkey"
  install -m 0600 "$KS_DIR/pvc-demo.key" "$vmkey"
  "$BULWARK_TOP/tests/vm/run" --timeout 300 -- bash "$here/demo-volume.sh" "$vmkey" || failed=1
else
  echo "  (skipped: no test kernel; run scripts/fetch-test-kernel.sh)"
  failed=1
fi

# The mesh part runs as its own script with its own names (BW_ID) and cleanup.
BW_ID=${BW_ID}m bash "$here/demo-mesh.sh" || failed=1

echo
[ $failed -eq 0 ] && echo "demo: every step did what it shows" || echo "demo: some step FAILED"
exit $failed
