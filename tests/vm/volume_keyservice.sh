#!/usr/bin/env bash
# bulwark volume with keys from the attested key service (sample attester, TLS on the VM's
# loopback): stage formats with the service's key, unstage, restage after a service restart
# derives the same key (data intact); the LUKS2 keyslot opens with the HKDF value computed by
# `openssl kdf`; a volume outside the policy is refused untouched; the state disk gets
# bulwark/statedisk/<node>.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$BULWARK_TOP/tests/lib-keys.sh"
ks_init host
ks_policy "$KS_DIR/p.json" '{"sample":true,"rules":[{"name":"vm","tee":"sample",
  "resources":["bulwark/volume/pvc-ks","bulwark/statedisk/vm-node"]}]}'
ks_start a 8443 "$KS_DIR/p.json"
svc=(--key-service https://127.0.0.1:8443 --attester sample --ca "$KS_DIR/ca.pem")

newdev d1 48M
p=$(vol stage --id pvc-ks --device "$d1" "${svc[@]}"); rc=$?
check "stage with --key-service formats and maps the volume" test $rc -eq 0 -a -b "${p:-/nonexistent}"
[ -b "${p:-/nonexistent}" ] || die "no volume to test further"
head -c 4M /dev/urandom > $T/data
dd if=$T/data of="$p" bs=1M oflag=direct status=none
check "unstage" vol unstage --id pvc-ks
ks_hkdf_bin() { # info file: the raw 32-byte HKDF output
  openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:"$(od -An -v -tx1 "$KS_DIR/master" | tr -d ' \n')" \
    -kdfopt hexsalt:"$(od -An -v -tx1 "$KS_DIR/salt" | tr -d ' \n')" -kdfopt info:"$1" -binary -out "$2" HKDF
}
ks_hkdf_bin key-pvc-ks $T/hkdf
check "the LUKS2 keyslot opens with HKDF(master, salt, \"key-pvc-ks\") from openssl kdf (cryptsetup)" \
  cryptsetup open --test-passphrase --key-file $T/hkdf "$d1"

kill "$KS_PID_a"; wait "$KS_PID_a" 2>/dev/null
ks_start b 8443 "$KS_DIR/p.json"
p2=$(vol stage --id pvc-ks --device "$d1" "${svc[@]}")
check "restage after a key-service restart: same path" test "$p2" = "$p"
check "...and the data is intact (same key derived)" same_data "$p" $T/data
vol unstage --id pvc-ks

newdev d2 24M
vol stage --id pvc-other --device "$d2" "${svc[@]}" --json > $T/deny.json 2> $T/deny.err; rc=$?
check "a volume outside the policy is refused (exit 9, PolicyDeny in the message)" \
  sh -c "test $rc -eq 9 && grep -q PolicyDeny $T/deny.err && grep -q FAILED_PRECONDITION $T/deny.json"
check "...and its device was not touched (no LUKS header)" sh -c "! cryptsetup isLuks $d2"

newdev d3 32M
sp=$(bulwark statedisk open --device "$d3" "${svc[@]}" --node vm-node); rc=$?
check "statedisk open with --key-service (bulwark/statedisk/vm-node)" test $rc -eq 0 -a -b "${sp:-/nonexistent}"
bulwark statedisk close > /dev/null
ks_hkdf_bin bulwark/statedisk/vm-node $T/sdkey
check "the state disk's keyslot opens with HKDF info \"bulwark/statedisk/vm-node\"" \
  cryptsetup open --test-passphrase --key-file $T/sdkey "$d3"
finish
