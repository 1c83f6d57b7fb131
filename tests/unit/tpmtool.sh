#!/usr/bin/env bash
# The tpm component against tpm2-tools on a real software TPM (swtpm), driven through tpmtool
# (build/tests/unit/tpmtool runs this script when started without arguments; $TPMTOOL is it):
#  - our quote is accepted by tpm2_checkquote (RSA and ECC AKs), and rejected for another nonce;
#  - a quote made by tpm2_quote, packaged as evidence, verifies with bw_tpm_verify;
#  - a tpm2_quote over another PCR selection is refused as malformed;
#  - the claims carry the AK id (= SHA-256 of tpm2_readpublic's DER) and the PCR values
#    tpm2_pcrread reports (all 24, through the 8-per-call PCR_Read loop).
. "$(dirname "$0")/../lib.sh"
. "$BULWARK_TOP/tests/lib-tpm.sh"
T=${TPMTOOL:-$BUILD/tests/unit/tpmtool}
PY=/usr/bin/python3
to() { local f=$1; shift; "$@" > "$f"; }   # check "x" to FILE cmd...: cmd's stdout into FILE

if miss=$(tpm_tools_missing); then
  skip "TPM tools missing: $miss (scripts/install-deps.sh)"
fi
tpm_start || die "swtpm did not start"
tpm_create_ak 0x81010002 rsa || die "create RSA AK"
tpm_create_ak 0x81010003 ecc || die "create ECC AK"
# One extended PCR in each group of eight: PCR_Read hands out at most eight per call.
for p in 3 9 16 23; do tpm_pcr_extend "$p" "bulwark-$p" || die "extend PCR $p"; done
d=$TPM_DIR
rd=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
nonce=${rd:0:64}   # the quote's qualifying data: report data truncated to 32 bytes

# Split evidence JSON into tpm2_checkquote's inputs: message, signature (TPMT_SIGNATURE), PCR values.
split_evidence() { # evidence.json outprefix
  $PY - "$1" "$2" <<'PY'
import base64, json, struct, sys
ev = json.load(open(sys.argv[1]))
q, out = ev["tpm_quote"], sys.argv[2]
open(out + ".msg", "wb").write(base64.b64decode(q["message"]))
open(out + ".sig", "wb").write(base64.b64decode(q["signature"]))
# tpm2-tools 5.4's checkquote rejects plain PCR values ("Failed to hash PCR values" even for
# tpm2_quote -F values output); it reads its "serialized" form: the in-memory little-endian
# TPML_PCR_SELECTION (count + 16 x 8-byte TPMS_PCR_SELECTION), a u32 count of TPML_DIGEST, and
# that many TPML_DIGEST (count + 8 x TPM2B_DIGEST of 2 + 64 bytes).
vals = [bytes.fromhex(p) for p in q["pcrs"]]
sel = struct.pack("<IHB4sx", 1, 0x000b, 3, b"\xff\xff\xff\x00") + bytes(15 * 8)
lists = b"".join(struct.pack("<I", 8) + b"".join(struct.pack("<H", 32) + v + bytes(32)
                 for v in vals[i:i + 8]) for i in range(0, 24, 8))
open(out + ".pcrs", "wb").write(sel + struct.pack("<I", 3) + lists)
open(out + ".ak.der", "wb").write(base64.b64decode(ev["ak_public"]))
PY
}
# The reverse: tpm2_quote's outputs plus the AK's DER as evidence JSON.
make_evidence() { # prefix ak.der > evidence.json
  $PY - "$1" "$2" <<'PY'
import base64, json, sys
p = sys.argv[1]
b = lambda f: base64.b64encode(open(f, "rb").read()).decode()
vals = open(p + ".pcrs", "rb").read()
print(json.dumps({"tpm_quote": {"signature": b(p + ".sig"), "message": b(p + ".msg"),
      "pcrs": [vals[i:i + 32].hex() for i in range(0, len(vals), 32)]}, "ak_public": b(sys.argv[2])}))
PY
}
sel=sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23
quiet() { "$@" > /dev/null; }   # tpm2_checkquote prints every PCR on success
claim() { $PY -c 'import json,sys; c=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

for ak in 0x81010002:rsa 0x81010003:ecc; do
  h=${ak%%:*} alg=${ak#*:}
  check "$alg: evidence from the TPM" to "$d/$alg.json" "$T" evidence --tcti "$TPM_TCTI" \
    --ak-handle "$h" --report-data "$rd"
  check "$alg: bw_tpm_verify accepts it" to "$d/$alg.claims" "$T" verify \
    --evidence "$d/$alg.json" --report-data "$rd"
  split_evidence "$d/$alg.json" "$d/$alg"
  check "$alg: ak_public is the AK tpm2_readpublic reports" cmp "$d/$alg.ak.der" "$d/ak-$h.der"
  check "$alg: ak_id is SHA-256 of that DER" \
    test "$(claim "$d/$alg.claims" 'c["ak_id"]')" = "$(sha256sum < "$d/ak-$h.der" | cut -d' ' -f1)"
  check "$alg: tpm2_checkquote accepts our quote (signature, nonce, PCR values)" \
    quiet tpm2_checkquote -u "$d/ak-$h.pem" -m "$d/$alg.msg" -s "$d/$alg.sig" -f "$d/$alg.pcrs" \
    -g sha256 -q "$nonce"
  check "$alg: tpm2_checkquote rejects it for another nonce" fails \
    quiet tpm2_checkquote -u "$d/ak-$h.pem" -m "$d/$alg.msg" -s "$d/$alg.sig" -f "$d/$alg.pcrs" \
    -g sha256 -q "ff${nonce:2}"
  # the same with one PCR value changed (the last byte of PCR 23's digest in the file)
  cp "$d/$alg.pcrs" "$d/$alg.bad"
  printf '\x5a' | dd of="$d/$alg.bad" bs=1 seek=$((136 + 2 * 532 + 4 + 7 * 66 + 2 + 31)) \
    conv=notrunc status=none
  check "$alg: tpm2_checkquote rejects it with one PCR value changed" fails \
    quiet tpm2_checkquote -u "$d/ak-$h.pem" -m "$d/$alg.msg" -s "$d/$alg.sig" -f "$d/$alg.bad" \
    -g sha256 -q "$nonce"
done

# The PCR values in the claims are what tpm2_pcrread sees, for all 24.
want=$(tpm2_pcrread "$sel" | awk '/: 0x/ { sub(/.*0x/, ""); print tolower($0) }')
check "claims hold all 24 PCR values as tpm2_pcrread reads them (3, 9, 16, 23 extended)" \
  test "$(claim "$d/rsa.claims" '"\n".join(c["pcrs"])')" = "$want"
check "the default AK handle is 0x81010002" \
  bash -c '"$1" evidence --tcti "$2" --report-data "$3" > "$4" &&
           "$1" verify --evidence "$4" --report-data "$3" | grep -q "$5"' _ \
  "$T" "$TPM_TCTI" "$rd" "$d/default.json" "$(sha256sum < "$d/ak-0x81010002.der" | cut -d' ' -f1)"

# Other direction: tpm2_quote's quote over the same selection verifies with bw_tpm_verify.
tpm2_quote -c 0x81010002 -l "$sel" -q "$nonce" -g sha256 -m "$d/tq.msg" -s "$d/tq.sig" \
  -o "$d/tq.pcrs" -F values >/dev/null
make_evidence "$d/tq" "$d/ak-0x81010002.der" > "$d/tq.json"
check "a tpm2_quote quote packaged as evidence verifies" to /dev/null \
  "$T" verify --evidence "$d/tq.json" --report-data "$nonce"
"$T" verify --evidence "$d/tq.json" --report-data "ff${nonce:2}" 2>"$d/err"
check "... and not for another nonce (exit 4, nonce named)" \
  test $? -eq 4 -a -n "$(grep 'nonce' "$d/err")"
# A quote over fewer PCRs is well signed but is not what we accept.
tpm2_quote -c 0x81010002 -l sha256:0,1,2,3,4,5,6,7 -q "$nonce" -g sha256 -m "$d/few.msg" \
  -s "$d/few.sig" -o "$d/few8.pcrs" -F values >/dev/null
cat "$d/few8.pcrs" "$d/few8.pcrs" "$d/few8.pcrs" > "$d/few.pcrs"   # 24 values, digest of 8
make_evidence "$d/few" "$d/ak-0x81010002.der" > "$d/few.json"
"$T" verify --evidence "$d/few.json" --report-data "$nonce" 2>"$d/err"
check "a quote over PCRs 0-7 only is refused as malformed (exit 3, selection named)" \
  test $? -eq 3 -a -n "$(grep 'PCR selection' "$d/err")"
"$T" evidence --tcti "$TPM_TCTI" --ak-handle 0x81010009 --report-data "$rd" >/dev/null 2>"$d/err"
check "no key at the AK handle fails" test $? -ne 0 -a -n "$(grep 'no key at handle 0x81010009' "$d/err")"
finish
