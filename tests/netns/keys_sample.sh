#!/usr/bin/env bash
# Key service end to end over TLS on loopback with the sample attester: the key bulwark fetches
# is the HKDF value `openssl kdf` computes for the same master secret, salt and info.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_init
ks_policy "$KS_DIR/policy.json" '{"sample":true,"rules":[{"name":"test","tee":"sample",
  "resources":["bulwark/volume/","bulwark/statedisk/node-1"]}]}'
ks_start a 8443 "$KS_DIR/policy.json"
url=https://127.0.0.1:8443

key=$(kx bulwark key fetch --service $url --resource bulwark/volume/pvc-1234 --attester sample --ca "$KS_DIR/ca.pem")
want=$(ks_hkdf key-pvc-1234)
check "fetched volume key equals openssl kdf HKDF(master, salt, \"key-pvc-1234\") ($key)" \
  test -n "$key" -a "$key" = "$want"
key2=$(kx bulwark key fetch --service $url --resource bulwark/statedisk/node-1 --attester sample --ca "$KS_DIR/ca.pem")
check "state-disk key equals HKDF with info \"bulwark/statedisk/node-1\"" \
  test -n "$key2" -a "$key2" = "$(ks_hkdf bulwark/statedisk/node-1)"
key9=$(kx bulwark key fetch --service $url --resource bulwark/volume/pvc-9 --attester sample --ca "$KS_DIR/ca.pem")
check "different volumes get different keys: the service's key for pvc-9 is HKDF(\"key-pvc-9\") and not pvc-1234's" \
  test -n "$key9" -a -n "$key" -a "$key9" = "$(ks_hkdf key-pvc-9)" -a "$key9" != "$key"

kx bulwark key fetch --service $url --resource bulwark/volume/pvc-1234 --attester sample --ca "$KS_DIR/ca.pem" \
  --out "$KS_DIR/key.bin" > /dev/null
check "--out writes the 32-byte key, mode 0600" \
  test "$(stat -c %a "$KS_DIR/key.bin")" = 600 -a "$(od -An -v -tx1 "$KS_DIR/key.bin" | tr -d ' \n')" = "$want"
json=$(kx bulwark key fetch --service $url --resource bulwark/volume/pvc-1234 --attester sample --ca "$KS_DIR/ca.pem" --json)
check "--json carries resource and key" sh -c "printf '%s' '$json' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"key\"]==\"$want\" and d[\"resource\"]==\"bulwark/volume/pvc-1234\"'"

# Same master secret and salt after a restart: same key (nothing is stored).
kill "$KS_PID_a"; wait "$KS_PID_a" 2>/dev/null
ks_start b 8443 "$KS_DIR/policy.json"
check "after a service restart the same key is derived" \
  test "$(kx bulwark key fetch --service $url --resource bulwark/volume/pvc-1234 --attester sample --ca "$KS_DIR/ca.pem")" = "$want"

# Token reuse: three resources in one call, one attestation.
a0=$(ks_curl "$url/metrics" | awk '/attest_total{result="ok"}/ { print $2 }')
three=$(kx bulwark key fetch --service $url --attester sample --ca "$KS_DIR/ca.pem" --resource bulwark/volume/a \
  --resource bulwark/volume/b --resource bulwark/volume/pvc-1234 | tail -1)
a1=$(ks_curl "$url/metrics" | awk '/attest_total{result="ok"}/ { print $2 }')
check "three resources with one attestation (token reused: attestations $a0 -> $a1)" \
  test "$((a1 - a0))" = 1 -a "$three" = "$want"
# Bounded retries with backoff: a listener on 8450 that accepts and hangs up counts the tries
# (the default is 5, so a count, not a time window, tells 3 from 5); 3 tries wait 0.2 + 0.4 s.
kx python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8450)); s.listen(16)
open(sys.argv[1] + ".up", "w").close()
n = 0
while True:
    c, _ = s.accept(); n += 1
    with open(sys.argv[1] + ".tmp", "w") as f: f.write("%d\n" % n)
    __import__("os").replace(sys.argv[1] + ".tmp", sys.argv[1])
    c.close()  # after the count is on disk: the client sees the hang-up only then' "$KS_DIR/tries" &
at_exit "kill $!"
wait_for 50 test -e "$KS_DIR/tries.up" || die "the counting listener did not start"
start=$(date +%s%N)
BULWARK_LOG=debug kx bulwark key fetch --service https://127.0.0.1:8450 --resource bulwark/volume/x --attester sample \
  --ca "$KS_DIR/ca.pem" --tries 3 > "$KS_DIR/out" 2>&1; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
tries=$(cat "$KS_DIR/tries" 2>/dev/null)
check "unreachable service: exactly 3 tries (${tries:-0} connections) with backoff (${ms} ms >= 600), exit 1, no key" \
  test "${tries:-0}" = 3 -a "$rc" = 1 -a "$ms" -ge 600 -a "$(grep -c '^[0-9a-f]\{64\}$' "$KS_DIR/out")" = 0
check "...each retry logged at debug level (the client library reports it, the CLI logs it)" \
  sh -c "grep -q '^bulwark: debug: kbs: handshake retry 1 after 200 ms: ' $KS_DIR/out &&
         grep -q '^bulwark: debug: kbs: handshake retry 2 after 400 ms: ' $KS_DIR/out"

m=$(ks_curl "$url/metrics")
check "/metrics counts attestations and resources" \
  sh -c "printf '%s\n' '$m' | grep -q '^bulwark_keyservice_resource_total{result=\"ok\"} 4' && printf '%s\n' '$m' | grep -q '^bulwark_keyservice_sessions 2'"
check "/healthz answers ok" sh -c "nsenter --net=/run/netns/$KS_NS curl -sS --cacert $KS_DIR/ca.pem $url/healthz | grep -q ok"
# An Attestation message that cannot be saved (--attestation-out into a missing directory): the
# handshake goes on and the CLI warns.
tok=$(kx bulwark key attest --service $url --attester sample --ca "$KS_DIR/ca.pem" \
  --attestation-out "$KS_DIR/nodir/att.json" 2> "$KS_DIR/attest.err"); rc=$?
check "unsaved attestation message: attest still succeeds (exit $rc) with a token" test "$rc" = 0 -a -n "$tok"
check "...and warns that it could not save it" \
  grep -qx "bulwark: warning: cannot save the attestation message to $KS_DIR/nodir/att.json" "$KS_DIR/attest.err"
check "the master secret never appears in the service log" \
  sh -c "! grep -q \"$(od -An -v -tx1 "$KS_DIR/master" | tr -d ' \n' | cut -c1-16)\" $KS_DIR/*.log"
finish
