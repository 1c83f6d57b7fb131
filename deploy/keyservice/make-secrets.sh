#!/bin/sh
# Make the key service's secrets in deploy/keyservice/secrets/ (mode 0600), never overwriting one
# that exists (the master secret and salt ARE every volume key: back them up offline):
#   make-secrets.sh NAME [NAME...]   NAMEs: the DNS names / IP addresses nodes use to reach it
# Writes master, salt (32 random bytes each), es256.pem (token signing key), a CA (ca.crt, ca.key)
# and tls.crt/tls.key for the NAMEs signed by it. Nodes get ca.crt (`--ca`).
set -eu
[ $# -ge 1 ] || { echo "usage: $0 NAME [NAME...]  (DNS names / IPs of the service)" >&2; exit 2; }
dir=$(dirname "$0")/secrets
umask 077
mkdir -p "$dir"
new() { [ -e "$dir/$1" ] && { echo "keeping $dir/$1"; return 1; }; return 0; }
new master && head -c 32 /dev/urandom > "$dir/master"
new salt && head -c 32 /dev/urandom > "$dir/salt"
new es256.pem && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/es256.pem"
if new ca.key; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=bulwark key service CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
if new tls.key; then
  san=""
  for n in "$@"; do
    if printf %s "$n" | grep -Eq '^[0-9.]+$|:'; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
  done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "${san#,}" > "$dir/tls.ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/tls.ext" "$dir/ca.srl"
fi
echo "secrets in $dir; give nodes $dir/ca.crt"
