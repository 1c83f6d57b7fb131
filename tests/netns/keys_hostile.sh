#!/usr/bin/env bash
# Hostile JWEs: a fake key service (tests/kbs_hostile.py: jwcrypto, any evidence accepted)
# answers the resource with a JWE the client must refuse — crit naming an unknown extension
# (protected or not), zip (compressed plaintext), an empty resource, a length other than
# expected — and the client exits non-zero without printing or writing a key. And hostile
# tee-pubkeys sent to the real service: RSA with e = 1, e = 3, even e, even n.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_require_jwcrypto
ks_init
port=8500
# hostile MODE [FETCH ARGS...]: start the fake service in MODE, run bulwark key fetch, print
# "EXIT OUTPUT-BYTES" and the error on fd 3.
hostile() {
  local mode=$1 rc pid; shift
  port=$((port + 1))
  # nsenter execs python: $! is the server itself (a function in the background would be a subshell).
  nsenter --net="/run/netns/$KS_NS" -- "$KS_PY" "$BULWARK_TOP/tests/kbs_hostile.py" $port "$KS_DIR/server.pem" \
    "$KS_DIR/server.key" "$mode" > /dev/null 2> "$KS_DIR/h.log" &
  pid=$!
  at_exit "kill $pid"
  wait_for 100 ks_curl -o /dev/null "https://127.0.0.1:$port/kbs/v0/resource/x/y/z" || { kill $pid; echo "no server"; return; }
  kx bulwark key fetch --service "https://127.0.0.1:$port" --attester sample --ca "$KS_DIR/ca.pem" --tries 1 "$@" \
    > "$KS_DIR/h.out" 2> "$KS_DIR/h.err"
  rc=$?
  kill $pid; wait $pid 2>/dev/null
  echo "$rc $(wc -c < "$KS_DIR/h.out")"
  echo "# $(cat "$KS_DIR/h.err")" >&2
}
r=$(hostile ok32 --resource bulwark/volume/v1)
check "control: a well-formed JWE of 32 bytes is accepted ($r)" test "$r" = "0 65" -a "$(cat "$KS_DIR/h.out")" = "$(printf '11%.0s' $(seq 32))"
r=$(hostile crit --resource bulwark/volume/v1)
check "crit naming an unknown extension (protected header): refused, no key ($r)" test "$r" = "1 0"
grep -q "crit" "$KS_DIR/h.err"; check "  the error names crit" test $? = 0
r=$(hostile crit-unprotected --resource bulwark/volume/v1)
check "crit in the unprotected header: refused, no key ($r)" test "$r" = "1 0"
r=$(hostile zip --resource bulwark/volume/v1)
check "zip: DEF (compressed plaintext): refused, no key ($r)" test "$r" = "1 0"
grep -q "zip" "$KS_DIR/h.err"; check "  the error names zip" test $? = 0
r=$(hostile empty --resource bulwark/volume/v1)
check "an empty resource: refused, no key ($r)" test "$r" = "1 0"
r=$(hostile empty --resource a/b/c --out "$KS_DIR/k.bin")
check "an empty resource with --out: refused, no file written ($r)" test "$r" = "1 0" -a ! -e "$KS_DIR/k.bin"
r=$(hostile len37 --resource bulwark/volume/v1)
check "37 bytes for a volume key (32 expected): refused, no key ($r)" test "$r" = "1 0"
r=$(hostile len37 --resource a/b/c --length 32)
check "37 bytes with --length 32: refused ($r)" test "$r" = "1 0"
r=$(hostile len37 --resource a/b/c --length 37)
check "37 bytes with --length 37: accepted ($r)" test "$r" = "0 75"

# Hostile tee-pubkeys against the real service: attestation refused (401), nothing encrypted.
ks_policy "$KS_DIR/sample.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'
ks_start a 8443 "$KS_DIR/sample.json"
for k in e1 e3 e-even n-even; do
  check "RSA tee-pubkey $k: 401 AttestationError" \
    test "$(kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" https://127.0.0.1:8443 "$KS_DIR/ca.pem" bad-rsa $k)" = "401 AttestationError"
done
check "  control: the same client with a sound RSA key gets the key" \
  test "$(kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" https://127.0.0.1:8443 "$KS_DIR/ca.pem" fetch-rsa bulwark/volume/v1)" = "$(ks_hkdf key-v1)"
finish
