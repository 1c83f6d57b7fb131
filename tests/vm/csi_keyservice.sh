#!/usr/bin/env bash
# bulwark-csi with keys from the attested key service (sample attester, TLS on the VM's loopback)
# instead of node-stage secrets: stage formats with the service's key (resource
# bulwark/volume/<volume id>), restage gets the same key back, expand finds the service from what
# stage recorded, cryptsetup opens the volume with the HKDF value, and a volume outside the
# policy is refused with its device untouched.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/csi_lib"
head -c 1M /dev/urandom > $T/data
mkdir -p $T/staging
csi_start

# --- keys from the attested key service (sample attester, TLS on the VM's loopback) ---
. "$BULWARK_TOP/tests/lib-keys.sh"
ks_init host
ks_policy "$KS_DIR/p.json" '{"sample":true,"rules":[{"name":"vm","tee":"sample","resources":["bulwark/volume/pvc-ks"]}]}'
ks_start a 8443 "$KS_DIR/p.json"
ks_req() { # id device staging
  printf '{"volume_id":"%s","staging_target_path":"%s","volume_capability":%s,"volume_context":{"device":"%s","keyService":"https://127.0.0.1:8443","attester":"sample","keyServiceCA":"%s"}}' \
    "$1" "$3" "$(cap ext4)" "$2" "$KS_DIR/ca.pem"
}
newdev d6 32M
check "stage with the key from the key service (no secrets)" c Node/NodeStageVolume "$(ks_req pvc-ks "$d6" $T/staging/ks)"
cp $T/data $T/staging/ks/data; sync
c Node/NodeUnstageVolume "$(unstage_req pvc-ks $T/staging/ks)" > /dev/null
check "...restage: the same key comes back, the data is intact" \
  bash -c "c Node/NodeStageVolume '$(ks_req pvc-ks "$d6" $T/staging/ks)' >/dev/null && cmp -s $T/staging/ks/data $T/data"
check "...NodeExpandVolume finds the key service from what stage recorded" \
  c Node/NodeExpandVolume "{\"volume_id\":\"pvc-ks\",\"volume_path\":\"$T/staging/ks\"}"
c Node/NodeUnstageVolume "$(unstage_req pvc-ks $T/staging/ks)" > /dev/null
openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:"$(od -An -v -tx1 "$KS_DIR/master" | tr -d ' \n')" \
  -kdfopt hexsalt:"$(od -An -v -tx1 "$KS_DIR/salt" | tr -d ' \n')" -kdfopt info:key-pvc-ks -binary -out $T/hkdf HKDF
check "cryptsetup opens it with the key service's key (standard LUKS2)" cryptsetup open --test-passphrase --key-file $T/hkdf "$d6"
newdev d7 24M
check "a volume outside the key service's policy: FAILED_PRECONDITION (9), device untouched" \
  bash -c "test \$(code Node/NodeStageVolume '$(ks_req pvc-other "$d7" $T/staging/o)') -eq 9 && ! cryptsetup isLuks $d7"
check "the plugin never logged the key" bash -c "! grep -qiF \"$(base64 -w0 $T/hkdf)\" $T/csi.log"
finish
