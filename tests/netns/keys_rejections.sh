#!/usr/bin/env bash
# Key service rejections: each is an error answer (status + ErrorInformation type) and no key.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_require_jwcrypto
ks_init
ks_policy "$KS_DIR/sample.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'
ks_policy "$KS_DIR/nosample.json" '{"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'
ks_start a 8443 "$KS_DIR/sample.json"
ks_start b 8444 "$KS_DIR/sample.json" --token-lifetime 2
ks_start c 8445 "$KS_DIR/nosample.json"
A=https://127.0.0.1:8443 B=https://127.0.0.1:8444 C=https://127.0.0.1:8445
py() { kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" "$@"; }

# answer STATUS TYPE curl-args...: the status and error type match and the body holds no JWE.
answer() {
  local want=$1 type=$2 got; shift 2
  got=$(ks_curl -o "$KS_DIR/body" -D "$KS_DIR/hdrs" -w '%{http_code}' "$@") || return 1
  [ "$got" = "$want" ] && grep -q "errors/$type\"" "$KS_DIR/body" && ! grep -q ciphertext "$KS_DIR/body" ||
    { echo "# got $got: $(cat "$KS_DIR/body")"; return 1; }
}
# fetch_fails CODE URL RESOURCE [ARGS]: bulwark key fetch exits CODE and prints no key.
fetch_fails() {
  local code=$1 url=$2 res=$3 rc; shift 3
  kx bulwark key fetch --service "$url" --resource "$res" --attester sample --ca "$KS_DIR/ca.pem" --tries 1 "$@" \
    > "$KS_DIR/out" 2> "$KS_DIR/err"
  rc=$?
  echo "# exit $rc: $(cat "$KS_DIR/err")"
  [ "$rc" = "$code" ] && [ ! -s "$KS_DIR/out" ]
}

check "wrong protocol version: 401 ProtocolVersion, no session cookie" \
  sh -c "$(declare -f answer ks_curl kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; answer 401 ProtocolVersion -X POST -d '{\"version\":\"0.3.0\",\"tee\":\"sample\",\"extra-params\":{}}' $A/kbs/v0/auth && ! grep -qi set-cookie $KS_DIR/hdrs"
check "replayed nonce (second attestation on a session): 401 AttestationError" test "$(py $A "$KS_DIR/ca.pem" replay)" = "401 AttestationError"
check "evidence bound to another nonce: 401 AttestationError" test "$(py $A "$KS_DIR/ca.pem" other-nonce)" = "401 AttestationError"
check "attestation replayed into another session: 401 AttestationError" test "$(py $A "$KS_DIR/ca.pem" cross-session)" = "401 AttestationError"
check "tampered evidence (tee-pubkey swapped after binding): 401 AttestationError" test "$(py $A "$KS_DIR/ca.pem" swap-key)" = "401 AttestationError"

tok_b=$(kx bulwark key attest --service $B --attester sample --ca "$KS_DIR/ca.pem")
tok_a=$(kx bulwark key attest --service $A --attester sample --ca "$KS_DIR/ca.pem")
check "token from another service's key: 401 TokenVerifierError" \
  answer 401 TokenVerifierError -H "Authorization: Bearer $tok_b" $A/kbs/v0/resource/bulwark/volume/v1
check "a valid token is accepted (control for the two token checks)" \
  sh -c "nsenter --net=/run/netns/$KS_NS curl -sS --cacert $KS_DIR/ca.pem -H 'Authorization: Bearer $tok_a' $A/kbs/v0/resource/bulwark/volume/v1 | grep -q ciphertext"
sleep 3
check "expired token: 401 TokenVerifierError" \
  answer 401 TokenVerifierError -H "Authorization: Bearer $tok_b" $B/kbs/v0/resource/bulwark/volume/v1
check "no token at all: 401 TokenNotFound" answer 401 TokenNotFound $A/kbs/v0/resource/bulwark/volume/v1
check "resource outside the policy: bulwark exits 3 (PolicyDeny), no key" \
  sh -c "$(declare -f fetch_fails kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; fetch_fails 3 $A bulwark/statedisk/node-1 && grep -q PolicyDeny $KS_DIR/err"
check "sample evidence when the policy does not enable sample: exit 3, no key" \
  sh -c "$(declare -f fetch_fails kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; fetch_fails 3 $C bulwark/volume/v1 && grep -q 'sample evidence is disabled' $KS_DIR/err"
check "malformed JSON Request: 400 MalformedRequest" answer 400 MalformedRequest -X POST -d '{"version":' $A/kbs/v0/auth
check "JSON with trailing garbage: 400 MalformedRequest" answer 400 MalformedRequest -X POST -d '{"version":"0.4.0","tee":"sample"} x' $A/kbs/v0/auth
check "malformed Attestation on a live session: 400 MalformedRequest" \
  sh -c "$(declare -f answer ks_curl kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS
    ks_curl -c $KS_DIR/jar -o /dev/null -X POST -d '{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{}}' $A/kbs/v0/auth &&
    answer 400 MalformedRequest -b $KS_DIR/jar -X POST -d '{\"runtime-data\":[]}' $A/kbs/v0/attest"
head -c 70000 /dev/zero | tr '\0' ' ' > "$KS_DIR/big"; printf '{"version":"0.4.0"}' >> "$KS_DIR/big"
big=$(ks_curl -o /dev/null -w '%{http_code}' -H 'Expect: 100-continue' -X POST --data-binary @"$KS_DIR/big" $A/kbs/v0/auth)
check "oversized JSON (70 kB): refused with 413 ($big)" test "$big" = 413
check "another method on a known endpoint: 405 MethodNotAllowed as JSON, with Allow: POST" \
  sh -c "$(declare -f answer ks_curl kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; answer 405 MethodNotAllowed -X DELETE $A/kbs/v0/auth && grep -qi '^Allow: POST' $KS_DIR/hdrs"
check "PUT on a resource: 405 MethodNotAllowed, Allow: GET" \
  sh -c "$(declare -f answer ks_curl kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; answer 405 MethodNotAllowed -X PUT -d x $A/kbs/v0/resource/bulwark/volume/v1 && grep -qi '^Allow: GET' $KS_DIR/hdrs"
# A version of 40 two-byte characters: the detail quotes at most 32 bytes of it (cut mid-
# character before); the body must still be valid UTF-8 JSON.
printf '{"version":"%s","tee":"sample","extra-params":{}}' "$(printf '\xc3\xa9%.0s' $(seq 40))" > "$KS_DIR/utf8.json"
check "an error quoting client bytes is valid UTF-8 JSON (401 ProtocolVersion)" \
  sh -c "$(declare -f answer ks_curl kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; answer 401 ProtocolVersion -X POST --data-binary @$KS_DIR/utf8.json $A/kbs/v0/auth &&
    $KS_PY -c 'import json,sys; json.loads(open(sys.argv[1],\"rb\").read().decode(\"utf-8\"))' $KS_DIR/body"
check "invalid resource path (..): 404 InvalidRequestPath" \
  answer 404 InvalidRequestPath --path-as-is -H "Authorization: Bearer $tok_a" $A/kbs/v0/resource/bulwark/../x
check "server certificate from another CA: bulwark exits 5, no key" \
  sh -c "$(declare -f fetch_fails kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; fetch_fails 5 $A bulwark/volume/v1 --ca $KS_DIR/other.pem"
check "server certificate for another name (localhost vs IP SAN): exit 5, no key" \
  sh -c "$(declare -f fetch_fails kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; fetch_fails 5 https://localhost:8443 bulwark/volume/v1"
check "a plain http:// service URL is refused by the client (exit 2, no request)" \
  sh -c "$(declare -f fetch_fails kx nsx); KS_DIR=$KS_DIR KS_NS=$KS_NS; fetch_fails 2 http://127.0.0.1:8443 bulwark/volume/v1"

# The 401 -> re-handshake path of a client that reuses its token: one `bulwark key fetch` of two
# resources, held between them by a full stdout pipe (its write of the first key blocks) while the
# token is made invalid behind its back; the second fetch presents the old token, gets 401, and
# must attest again. Service e's clock (libfaketime, offset file) jumps 400 s ahead: the token
# (300 s) has expired for the service while the client, by its own clock, still holds a valid one.
check "re-handshake: faketime is installed (scripts/install-deps.sh)" test -e "$KS_FAKETIME"
echo "+0" > "$KS_DIR/clock"
KS_WRAP="env LD_PRELOAD=$KS_FAKETIME FAKETIME_TIMESTAMP_FILE=$KS_DIR/clock FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1" \
  ks_start e 8446 "$KS_DIR/sample.json"
E=https://127.0.0.1:8446
m() { ks_metric "$1" "$2"; }
check "re-handshake after the service's clock passed the token's exp: both keys right, 2 attestations, 1 refused token" \
  ks_two_fetches_held $E "echo +400 > $KS_DIR/clock" 1 2
# The same when the service restarted with another signing key (no --signing-key: a new one).
ks_start f 8447 "$KS_DIR/sample.json"
F=https://127.0.0.1:8447
restart_f() { kill "$KS_PID_f"; wait "$KS_PID_f" 2>/dev/null; ks_start f 8447 "$KS_DIR/sample.json"; }
check "re-handshake after a service restart with a new signing key: both keys right" \
  ks_two_fetches_held $F restart_f 1 1
# Policy reload: the token's rule changed (now another resource prefix), so the token lapses.
ks_policy "$KS_DIR/sample.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/other/"]}]}'
kill -HUP "$KS_PID_a"; sleep 0.5
check "after a policy edit + SIGHUP, a token issued under the old rule is denied: 403 PolicyDeny" \
  answer 403 PolicyDeny -H "Authorization: Bearer $tok_a" $A/kbs/v0/resource/bulwark/volume/v1
finish
