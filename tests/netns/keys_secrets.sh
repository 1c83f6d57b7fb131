#!/usr/bin/env bash
# Key-service secret files as kubelet mounts them, and the rules every secret file follows
# (master secret, salt and --signing-key alike): symlinks are followed to the final file, which
# must be regular, ours, and neither group- nor other-readable.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_init
ks_policy "$KS_DIR/policy.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'

# A Secret volume the way kubelet writes it (atomic_writer): the files live in a timestamped
# directory, `..data` points at it, and each name is a symlink through `..data`.
sec=$KS_DIR/secret ts=..2026_12_01_02_40_00.$BW_ID
mkdir -p "$sec/$ts"
cp "$KS_DIR/master" "$KS_DIR/salt" "$sec/$ts/"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$sec/$ts/es256.pem" 2>/dev/null
chmod 0600 "$sec/$ts/"*
ln -s "$ts" "$sec/..data"
for f in master salt es256.pem; do ln -s "..data/$f" "$sec/$f"; done
check "kubelet layout: master -> ..data/master -> $ts/master" test -L "$sec/master" -a -L "$sec/..data"

ks_start kube 8443 "$KS_DIR/policy.json" --master-secret "$sec/master" --salt "$sec/salt" --signing-key "$sec/es256.pem"
key=$(kx bulwark key fetch --service https://127.0.0.1:8443 --resource bulwark/volume/pvc-1 --attester sample --ca "$KS_DIR/ca.pem")
check "the service starts from symlinked secrets and serves HKDF(master, salt) ($key)" \
  test -n "$key" -a "$key" = "$(ks_hkdf key-pvc-1)"
kill "$KS_PID_kube"; wait "$KS_PID_kube" 2>/dev/null

# refused WHAT ARGS...: the service exits 2 at start-up (before listening) naming the file.
refused() {
  local what=$1 rc; shift
  timeout 10 "$BUILD/bin/bulwark-keyservice" --listen 127.0.0.1:1 --cert "$KS_DIR/server.pem" --key "$KS_DIR/server.key" \
    --master-secret "$sec/master" --salt "$sec/salt" --signing-key "$sec/es256.pem" --policy "$KS_DIR/policy.json" \
    "$@" > /dev/null 2> "$KS_DIR/refused.log"
  rc=$?
  echo "# exit $rc: $(cat "$KS_DIR/refused.log")"
  [ "$rc" = 2 ] && grep -q "$what" "$KS_DIR/refused.log"
}
for f in master salt es256.pem; do
  chmod 0644 "$sec/$ts/$f"
  check "a 0644 $f behind the kubelet symlinks is refused (exit 2)" refused "$sec/$f: Operation not permitted"
  chmod 0640 "$sec/$ts/$f"
  check "a group-readable (0640) $f behind the symlinks is refused" refused "$sec/$f: Operation not permitted"
  chmod 0600 "$sec/$ts/$f"
done
cp "$sec/$ts/es256.pem" "$KS_DIR/plain.pem"; chmod 0644 "$KS_DIR/plain.pem"
check "--signing-key: a plain 0644 file is refused like master and salt" \
  refused "signing key $KS_DIR/plain.pem: Operation not permitted" --signing-key "$KS_DIR/plain.pem"
chmod 0600 "$KS_DIR/plain.pem"; chown 65534 "$KS_DIR/plain.pem"
check "--signing-key owned by another user is refused" \
  refused "signing key $KS_DIR/plain.pem: Operation not permitted" --signing-key "$KS_DIR/plain.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KS_DIR/rsa.pem" 2>/dev/null; chmod 0600 "$KS_DIR/rsa.pem"
check "--signing-key that is not EC P-256 is refused" refused "not an EC P-256 private key" --signing-key "$KS_DIR/rsa.pem"
mkfifo -m 0600 "$KS_DIR/fifo"
start=$(date +%s)
check "a FIFO as master secret is refused at once, not waited on" refused "master secret $KS_DIR/fifo: Invalid argument" --master-secret "$KS_DIR/fifo"
check "  (within 5 s: $(( $(date +%s) - start )) s)" test $(( $(date +%s) - start )) -lt 5
ln -sfn "$KS_DIR/nowhere" "$sec/dangling"
check "a dangling symlink is refused" refused "master secret $sec/dangling: No such file" --master-secret "$sec/dangling"
finish
