#!/usr/bin/env bash
# Key service with TPM evidence: swtpm (socket TCTI) + tpm2-tools provision and persist the AK;
# bulwark's quote is verified by the service (AK signature, PCR digest, nonce binding, PCR and AK
# reference values) and accepted by tpm2_checkquote; tampering, an unknown AK, a quote for another
# nonce and a PCR extended after the policy was written are refused. The service listens on
# 127.0.0.1 in this netns (swtpm is there too), on a free port.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
. "$BULWARK_TOP/tests/lib-tpm.sh"
require_root
if miss=$(tpm_tools_missing); then
  skip "TPM tools missing: $miss (scripts/install-deps.sh)"
fi
ks_require_jwcrypto
tpm_start || die "swtpm did not start"
tpm_create_ak 0x81010002 rsa || die "create AK"
tpm_create_ak 0x81010003 ecc || die "create second AK"
ks_init host
ak=$(sha256sum < "$TPM_DIR/ak-0x81010002.der" | cut -d' ' -f1)
pcrs=$(for p in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do printf '"%s":"%s",' $p "$(tpm_pcr_hex $p)"; done)
ks_policy "$KS_DIR/p.json" "{\"rules\":[{\"name\":\"node-1\",\"tee\":\"tpm\",\"trusted_aks\":[\"$ak\"],
  \"pcrs\":{${pcrs%,}},\"resources\":[\"bulwark/volume/\",\"bulwark/statedisk/node-1\"]}]}"
port=$(ks_free_port)
ks_start a "$port" "$KS_DIR/p.json"
url=https://127.0.0.1:$port
fetch() { bulwark key fetch --service $url --attester tpm --tcti "$TPM_TCTI" --ca "$KS_DIR/ca.pem" --tries 1 "$@"; }
py() { "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" $url "$KS_DIR/ca.pem" tpm "$1" "$BUILD/tests/unit/tpmtool" "$TPM_TCTI" "${@:2}"; }

key=$(fetch --resource bulwark/volume/pvc-tpm)
check "tpm attester: the service verifies the quote, the key equals openssl kdf HKDF" \
  test -n "$key" -a "$key" = "$(ks_hkdf key-pvc-tpm)"
check "the state-disk resource of this node is allowed" \
  test "$(fetch --resource bulwark/statedisk/node-1)" = "$(ks_hkdf bulwark/statedisk/node-1)"
check "another node's state disk is not (exit 3)" sh -c "! $(declare -f fetch); url=$url TPM_TCTI=$TPM_TCTI KS_DIR=$KS_DIR; fetch --resource bulwark/statedisk/node-2 >/dev/null 2>&1; test \$? = 3"

# tpm2_checkquote accepts the very quote bulwark sent, with nonce = report data[:32] computed
# here from the saved Attestation message (JCS + SHA-384 in Python).
bulwark key attest --service $url --attester tpm --tcti "$TPM_TCTI" --ca "$KS_DIR/ca.pem" \
  --attestation-out "$KS_DIR/att.json" > /dev/null
"$KS_PY" - "$KS_DIR/att.json" "$KS_DIR/q" <<'PY'
import base64, hashlib, json, struct, sys
a = json.load(open(sys.argv[1])); out = sys.argv[2]
rt = a["runtime-data"]
rd = {"tee-pubkey": rt["tee-pubkey"], "nonce": rt["nonce"], "additional-evidence": ""}
digest = hashlib.sha384(json.dumps(rd, sort_keys=True, separators=(",", ":")).encode()).digest()
open(out + ".nonce", "w").write(digest[:32].hex())
q = a["tee-evidence"]["primary_evidence"]["tpm_quote"]
open(out + ".msg", "wb").write(base64.b64decode(q["message"]))
open(out + ".sig", "wb").write(base64.b64decode(q["signature"]))
# tpm2-tools 5.4 checkquote reads PCRs in its serialized form (see tests/unit/tpmtool.sh).
vals = [bytes.fromhex(p) for p in q["pcrs"]]
sel = struct.pack("<IHB4sx", 1, 0x000b, 3, b"\xff\xff\xff\x00") + bytes(15 * 8)
lists = b"".join(struct.pack("<I", 8) + b"".join(struct.pack("<H", 32) + v + bytes(32) for v in vals[i:i + 8])
                 for i in range(0, 24, 8))
open(out + ".pcrs", "wb").write(sel + struct.pack("<I", 3) + lists)
PY
check "tpm2_checkquote accepts the client's quote (AK public key, report-data nonce, PCRs)" \
  sh -c "tpm2_checkquote -u $TPM_DIR/ak-0x81010002.pem -m $KS_DIR/q.msg -s $KS_DIR/q.sig -f $KS_DIR/q.pcrs \
         -g sha256 -q $(cat "$KS_DIR/q.nonce") > /dev/null"

check "control: untampered tpmtool evidence for the session is accepted (200)" test "$(py ok)" = "200 -"
check "tampered quote signature: 401 AttestationError" test "$(py sig)" = "401 AttestationError"
check "tampered quote message: 401 AttestationError" test "$(py msg)" = "401 AttestationError"
check "tampered PCR value (digest mismatch): 401 AttestationError" test "$(py pcr)" = "401 AttestationError"
check "quote for another nonce: 401 AttestationError" test "$(py nonce)" = "401 AttestationError"
out=$(fetch --ak-handle 0x81010003 --resource bulwark/volume/pvc-tpm 2>&1); rc=$?
check "unknown AK (a second AK, not in the policy): exit 3, no key ($out)" \
  sh -c "test $rc = 3 && printf '%s' '$out' | grep -q 'matches no policy rule' && ! printf '%s' '$out' | grep -q '$key'"
tpm_pcr_extend 7 "bulwark: changed after the policy was written" > /dev/null
out=$(fetch --resource bulwark/volume/pvc-tpm 2>&1); rc=$?
check "PCR 7 extended after the policy was written: exit 3, no key ($out)" \
  sh -c "test $rc = 3 && printf '%s' '$out' | grep -q 'matches no policy rule' && ! printf '%s' '$out' | grep -q '$key'"
# A missing local device is one line, exit 6, no retry (it is checked before any network round:
# the service logs no request for it); a TPM that does not answer is one line too, not tss2's.
auths() { ks_curl "$url/metrics" | awk '/^bulwark_keyservice_auth_total/ {n += $NF} END {print n + 0}'; }
reqs0=$(auths)
t0=$(date +%s%N)
out=$(bulwark key fetch --service $url --attester tpm --tcti device:/dev/bw-no-tpm-$BW_ID --ca "$KS_DIR/ca.pem" \
  --tries 5 --resource bulwark/volume/pvc-tpm 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "no TPM device: exit 6, one line naming the device, no retry (${ms} ms): $out" \
  sh -c "test $rc = 6 && test $(printf '%s\n' "$out" | wc -l) = 1 && printf '%s' '$out' | grep -q '/dev/bw-no-tpm-$BW_ID'"
check "...and not one request reached the service (auth counter $reqs0)" test "$(auths)" = "$reqs0"
out=$(bulwark key fetch --service $url --attester tpm --tcti device:/dev/bw-no-tpm-$BW_ID --ca "$KS_DIR/ca.pem" \
  --resource bulwark/volume/pvc-tpm --json 2>/dev/null); rc=$?
check "...with --json: {error, code 6} on stdout ($out)" sh -c "test $rc = 6 && printf '%s' '$out' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"code\"] == 6 and \"no TPM\" in d[\"error\"]'"
dead=$(ks_free_port)
out=$(bulwark key fetch --service $url --attester tpm --tcti "swtpm:host=127.0.0.1,port=$dead" --ca "$KS_DIR/ca.pem" \
  --tries 1 --resource bulwark/volume/pvc-tpm 2>&1); rc=$?
check "a TPM that does not answer: exit 1 and one line, no tss2 noise ($out)" \
  sh -c "test $rc = 1 && test $(printf '%s\n' "$out" | wc -l) -le 2 && ! printf '%s' '$out' | grep -q 'ERROR:'"
finish
