#!/usr/bin/env bash
# JWE interoperability with python3-jwcrypto, service side: an independent Python client (its own
# RCAR messages, jwcrypto keys) gets the key service's JWE and jwcrypto decrypts it to the HKDF
# value `openssl kdf` computes. (The other direction, jwcrypto encrypting to the bulwark client's
# key, is in tests/unit/test_kbs.c.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_require_jwcrypto
ks_init
ks_policy "$KS_DIR/p.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'
ks_start a 8443 "$KS_DIR/p.json"
want=$(ks_hkdf key-vol-7)
got=$(kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" https://127.0.0.1:8443 "$KS_DIR/ca.pem" fetch bulwark/volume/vol-7)
check "jwcrypto decrypts the service's ECDH-ES+A256KW/A256GCM JWE to the HKDF key ($got)" test -n "$got" -a "$got" = "$want"
got=$(kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" https://127.0.0.1:8443 "$KS_DIR/ca.pem" fetch-rsa bulwark/volume/vol-7)
check "jwcrypto decrypts the service's RSA-OAEP-256/A256GCM JWE to the same key" test -n "$got" -a "$got" = "$want"
check "bulwark's own client gets the same key" \
  test "$(kx bulwark key fetch --service https://127.0.0.1:8443 --resource bulwark/volume/vol-7 --attester sample --ca "$KS_DIR/ca.pem")" = "$want"
finish
