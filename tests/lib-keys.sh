# Helpers for key-service tests (source after lib.sh). The service runs in its own netns on
# 127.0.0.1, so ports never collide with other test runs.
#   ks_init [host]          netns KS_NS (none with "host": then pass ks_free_port as the port),
#                           work dir KS_DIR with a CA, server cert, master secret, salt
#   ks_free_port            a free 127.0.0.1 port in the current netns
#   ks_policy FILE JSON     write a policy file
#   ks_start NAME PORT POLICY [ARGS...]   start bulwark-keyservice, wait for /healthz ($KS_WRAP, e.g.
#                           "prlimit --nofile=1024:1024 --", runs it through a wrapper that execs)
#   ks_curl ARGS...         curl inside the netns, trusting the test CA
#   kx CMD...               run CMD inside the netns
KS_PY=/usr/bin/python3

# Skip when python3-jwcrypto is missing (tests/run makes a skip a failure under CI=true).
ks_require_jwcrypto() {
  [ -x "$KS_PY" ] && "$KS_PY" -c 'import jwcrypto' 2>/dev/null && return 0
  skip "python3-jwcrypto missing"
}

ks_init() {
  KS_NS=
  [ "${1:-}" = host ] || KS_NS=$(netns_new keys)
  KS_DIR=$(mktemp -d /tmp/bw-keys-$BW_ID.XXXXXX)
  at_exit "rm -rf $KS_DIR"
  local d=$KS_DIR
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bw-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || die "test CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || die "server CSR"
  printf 'subjectAltName=IP:127.0.0.1\n' > "$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null || die "server cert"
  # A second, unrelated CA for the bad-certificate checks.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bw-other-ca \
    -keyout "$d/other.key" -out "$d/other.pem" 2>/dev/null || die "other CA"
  (umask 077; head -c 32 /dev/urandom > "$d/master"; head -c 32 /dev/urandom > "$d/salt")
}

ks_policy() { printf '%s\n' "$2" > "$1"; }

kx() { if [ -n "$KS_NS" ]; then nsx "$KS_NS" "$@"; else "$@"; fi; }

ks_free_port() {
  local p
  while :; do
    p=$(( 20000 + (RANDOM * 2 + $$) % 40000 ))
    [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] && { echo "$p"; return; }
  done
}

ks_curl() { kx curl -sS --cacert "$KS_DIR/ca.pem" "$@"; }

ks_start() {
  local name=$1 port=$2 policy=$3; shift 3
  ${KS_NS:+nsenter --net=/run/netns/$KS_NS --} ${KS_WRAP:-} "$BUILD/bin/bulwark-keyservice" --listen 127.0.0.1:"$port" --cert "$KS_DIR/server.pem" --key "$KS_DIR/server.key" \
    --master-secret "$KS_DIR/master" --salt "$KS_DIR/salt" --policy "$policy" "$@" \
    2> "$KS_DIR/$name.log" &
  local pid=$!
  eval "KS_PID_$name=$pid"
  at_exit "kill $pid"
  wait_for 100 ks_curl -f "https://127.0.0.1:$port/healthz" || { cat "$KS_DIR/$name.log"; die "keyservice $name did not come up"; }
}

# HKDF-SHA256(master, salt, info, 32) computed by `openssl kdf`, lowercase hex without colons.
ks_hkdf() {
  openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:"$(od -An -v -tx1 "$KS_DIR/master" | tr -d " \n")" \
    -kdfopt hexsalt:"$(od -An -v -tx1 "$KS_DIR/salt" | tr -d " \n")" -kdfopt info:"$1" HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}

# ks_latency N URL RESOURCE [ARGS...]: N sequential `bulwark key fetch` runs (each a new process:
# TLS, auth, attest, resource), timed from outside. Prints "p50 p99 max failures" (ms).
ks_latency() {
  local n=$1 url=$2 res=$3 i t0 fails=0; shift 3
  local f=$KS_DIR/lat.$BASHPID
  : > "$f"
  for ((i = 0; i < n; i++)); do
    t0=$(date +%s%N)
    if kx bulwark key fetch --service "$url" --resource "$res" --attester sample --ca "$KS_DIR/ca.pem" --tries 1 "$@" \
         > /dev/null 2>> "$KS_DIR/lat.err"; then
      echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$f"
    else
      fails=$((fails + 1))
    fi
  done
  sort -n "$f" | awk -v fails="$fails" '{ v[NR] = $1 } END {
    if (NR == 0) { print "0 0 0", fails; exit }
    p50 = v[int(0.50 * (NR - 1) + 1.5) > NR ? NR : int(0.50 * (NR - 1) + 1.5)]
    p99 = v[int(0.99 * (NR - 1) + 1.5) > NR ? NR : int(0.99 * (NR - 1) + 1.5)]
    print p50, p99, v[NR], fails }'
}

# ks_metric URL NAME: the value of a /metrics line starting with NAME (exact name and labels).
ks_metric() { ks_curl "$1/metrics" | awk -v n="$2" 'index($0, n " ") == 1 { print $2 }'; }

KS_FAKETIME=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1

# ks_two_fetches_held URL BETWEEN DENIED ATTESTS: one `bulwark key fetch` process of
# bulwark/volume/v1 then v2, stopped between the two (its stdout is a pipe we keep full, so its
# write of the first key blocks), BETWEEN is eval'ed there, then it goes on. Succeeds when both
# keys are the HKDF values and the service that answered the second fetch counted DENIED refused
# resource requests (the stale token) and ATTESTS successful attestations.
ks_two_fetches_held() {
  local url=$1 between=$2 denied=$3 attests=$4 fifo=$KS_DIR/held.$BASHPID pid k1= k2= rc fd
  mkfifo "$fifo"
  exec {fd}<>"$fifo"
  head -c 65536 /dev/zero >&$fd   # a pipe holds 64 KiB: the client's first write will block
  kx bulwark key fetch --service "$url" --resource bulwark/volume/v1 --resource bulwark/volume/v2 \
    --attester sample --ca "$KS_DIR/ca.pem" --tries 1 > "$fifo" 2> "$KS_DIR/held.err" &
  pid=$!
  # The first key is fetched (and the client blocked on writing it) once the service counts it.
  wait_for 100 sh -c "[ \"\$(nsenter --net=/run/netns/$KS_NS curl -sS --cacert $KS_DIR/ca.pem $url/metrics |
    awk '/^bulwark_keyservice_resource_total{result=\"ok\"}/ { print \$2 }')\" = 1 ]" || { echo "# first fetch not seen"; kill $pid; exec {fd}>&-; return 1; }
  eval "$between"
  dd bs=65536 count=1 iflag=fullblock <&$fd > /dev/null 2>&1
  read -r -t 30 -u $fd k1; read -r -t 30 -u $fd k2
  wait $pid; rc=$?
  exec {fd}>&-
  rm -f "$fifo"
  echo "# exit $rc, keys $k1 $k2; $(cat "$KS_DIR/held.err")"
  echo "# service: denied $(ks_metric "$url" 'bulwark_keyservice_resource_total{result="denied"}'), attestations $(ks_metric "$url" 'bulwark_keyservice_attest_total{result="ok"}')"
  [ "$rc" = 0 ] && [ "$k1" = "$(ks_hkdf key-v1)" ] && [ "$k2" = "$(ks_hkdf key-v2)" ] &&
    [ "$(ks_metric "$url" 'bulwark_keyservice_resource_total{result="denied"}')" = "$denied" ] &&
    [ "$(ks_metric "$url" 'bulwark_keyservice_attest_total{result="ok"}')" = "$attests" ]
}

# The key service on a cluster's wire (lib-cluster.sh's $NS_WIRE), so that nodes reach it over
# their uplinks: ks_wire_start NAME IP PORT POLICY — a server certificate for IP from the test
# CA (ks_init first), IP added to br0, the service started there; KS_URL, KS_PID_<NAME> set.
ks_wire_start() {
  local name=$1 ip=$2 port=$3 policy=$4 pid
  if [ ! -f "$KS_DIR/wire-$ip.pem" ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ip" \
      -keyout "$KS_DIR/wire-$ip.key" -out "$KS_DIR/wire-$ip.csr" 2>/dev/null || return 1
    printf 'subjectAltName=IP:%s\n' "$ip" > "$KS_DIR/wire-$ip.ext"
    openssl x509 -req -in "$KS_DIR/wire-$ip.csr" -CA "$KS_DIR/ca.pem" -CAkey "$KS_DIR/ca.key" -CAcreateserial \
      -days 2 -extfile "$KS_DIR/wire-$ip.ext" -out "$KS_DIR/wire-$ip.pem" 2>/dev/null || return 1
    nsx "$NS_WIRE" ip addr add "$ip/24" dev br0 || return 1
  fi
  nsenter --net="/run/netns/$NS_WIRE" "$BUILD/bin/bulwark-keyservice" --listen "$ip:$port" \
    --cert "$KS_DIR/wire-$ip.pem" --key "$KS_DIR/wire-$ip.key" --master-secret "$KS_DIR/master" \
    --salt "$KS_DIR/salt" --policy "$policy" 2>> "$KS_DIR/$name.log" &
  pid=$!
  eval "KS_PID_$name=$pid"
  at_exit "kill $pid 2>/dev/null"
  KS_URL=https://$ip:$port
  wait_for 100 nsx "$NS_WIRE" curl -sf --cacert "$KS_DIR/ca.pem" "$KS_URL/healthz" ||
    { cat "$KS_DIR/$name.log" >&2; return 1; }
}
