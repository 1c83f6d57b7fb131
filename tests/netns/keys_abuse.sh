#!/usr/bin/env bash
# Key service under abuse with an honest client alongside (issue 12 items 12-13): connection
# floods (idle TLS, half-open TCP, trickled requests) from another address and from the honest
# client's own, descriptor exhaustion, and a session flood. The honest client is
# tests/kbs_client.py (independent of bulwark): a new TLS connection, key, session, attestation
# and resource per fetch, timed in-process; its p50/p99 are printed for each load next to the
# unloaded baseline of the same run. The service runs with a 1024-descriptor limit (soft = hard).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-keys.sh"
require_root
ks_require_jwcrypto
ks_init
ks_policy "$KS_DIR/policy.json" '{"sample":true,"rules":[{"name":"t","tee":"sample","resources":["bulwark/volume/"]}]}'
want=$(ks_hkdf key-v1)
flood() { kx "$KS_PY" "$BULWARK_TOP/tests/ks_flood.py" "$@"; }
# honest URL N: "p50 p99 max failures" of N cold fetches that must return the right key.
honest() { kx "$KS_PY" "$BULWARK_TOP/tests/kbs_client.py" "$1" "$KS_DIR/ca.pem" latency "$2" bulwark/volume/v1 "$want" 2>> "$KS_DIR/honest.err"; }
at_least() { local v; v=$(ks_metric "$1" "$2"); [ -n "$v" ] && [ "$v" -ge "$3" ]; }
# sample URL METRIC FILE: record METRIC every 0.2 s into FILE (in the background; pid in $!).
sample() { while :; do ks_metric "$1" "$2" >> "$3"; sleep 0.2; done & }
peak() { sort -n "$1" | tail -1; }
# ok_latency LABEL "p50 p99 max fails" MAX_P99: no failed fetch, p99 bounded.
ok_latency() {
  local label=$1 p50 p99 max fails; read -r p50 p99 max fails <<< "$2"
  check "$label: honest fetches all succeed with the right key, p50 $p50 ms p99 $p99 ms max $max ms (baseline p50 $b50 p99 $b99)" \
    test -n "$fails" -a "${fails:-1}" = 0 -a "${p99:-99999}" -le "$3"
}
export KS_WRAP="prlimit --nofile=1024:1024 --"

ks_start a 8443 "$KS_DIR/policy.json"
A=https://127.0.0.1:8443
check "the descriptor limit caps connections with headroom (1024 -> 960, logged)" grep -q "lowered to 960" "$KS_DIR/a.log"
read -r b50 b99 bmax bfail <<< "$(honest $A 40)"
check "baseline: 40 honest fetches, p50 $b50 ms p99 $b99 ms" test "$bfail" = 0
# Under load the bound is 3 s or 5x the unloaded p99 of this run, whichever is larger (the
# flooder shares the machine's cores with service and client, and the machine may be shared
# too); before the fix honest fetches took 5-10 s or timed out. The figures are printed.
bound=$(( b99 * 5 > 3000 ? b99 * 5 : 3000 ))

# 1. The issue's flood from another address: 1,000 idle TLS + 200 half-open. The source holds
#    at most its share (512); its extra connections are closed before any TLS work.
flood conns 127.0.0.1 8443 "$KS_DIR/ca.pem" 127.0.0.2 30 1000 200 > "$KS_DIR/f1.json" &
fp=$!
sample $A bulwark_keyservice_connections "$KS_DIR/s1"; sp=$!
check "flood 1 holds the source's share of connections (512)" wait_for 200 at_least $A bulwark_keyservice_connections 450
ok_latency "1,000 idle TLS + 200 half-open from 127.0.0.2" "$(honest $A 50)" "$bound"
kill "$sp" "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
check "  the flooding source never held more than its share (peak open $(peak "$KS_DIR/s1") <= 512 + honest + one accept burst)" \
  test "$(peak "$KS_DIR/s1")" -le 546
check "  its extra connections were closed (per_source $(ks_metric $A 'bulwark_keyservice_connections_closed_total{reason="per_source"}'))" \
  at_least $A 'bulwark_keyservice_connections_closed_total{reason="per_source"}' 1

# 2. The same flood when one source may hold everything (--max-connections-per-source 4096):
#    the global cap (960) holds, the least recently active connection makes room for the honest.
ks_start b 8444 "$KS_DIR/policy.json" --max-connections-per-source 4096
B=https://127.0.0.1:8444
flood conns 127.0.0.1 8444 "$KS_DIR/ca.pem" 127.0.0.2 30 1000 200 > "$KS_DIR/f2.json" &
fp=$!
sample $B bulwark_keyservice_connections "$KS_DIR/s2"; sp=$!
sample $B bulwark_keyservice_connections_closing "$KS_DIR/s2c"; sp2=$!
check "flood 2 fills the connection cap (960)" wait_for 300 at_least $B bulwark_keyservice_connections 940
ok_latency "connection cap full (960 of 1,200 attempted)" "$(honest $B 50)" "$bound"
kill "$sp" "$sp2" "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
check "  the least recently active connections made room (full: $(ks_metric $B 'bulwark_keyservice_connections_closed_total{reason="full"}'))" \
  at_least $B 'bulwark_keyservice_connections_closed_total{reason="full"}' 50
check "  open connections stay within the cap (peak $(peak "$KS_DIR/s2") <= 960; closing peak $(peak "$KS_DIR/s2c"))" \
  test "$(peak "$KS_DIR/s2")" -le 960
# 3. The flood from the honest client's own address.
flood conns 127.0.0.1 8444 "$KS_DIR/ca.pem" 127.0.0.1 25 1000 200 > "$KS_DIR/f3.json" &
fp=$!
wait_for 300 at_least $B bulwark_keyservice_connections 900
ok_latency "the same flood from the honest client's own address (127.0.0.1)" "$(honest $B 30)" "$bound"
kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
check "no accept() error spam in the logs (a.log $(wc -l < "$KS_DIR/a.log") lines, b.log $(wc -l < "$KS_DIR/b.log"))" \
  test "$(wc -l < "$KS_DIR/a.log")" -le 5 -a "$(wc -l < "$KS_DIR/b.log")" -le 5
kill "$KS_PID_a" "$KS_PID_b"; wait "$KS_PID_a" "$KS_PID_b" 2>/dev/null

# 4. Trickled requests: the deadline runs from the accept, whatever bytes arrive.
ks_start c 8445 "$KS_DIR/policy.json" --request-timeout 3
C=https://127.0.0.1:8445
flood conns 127.0.0.1 8445 "$KS_DIR/ca.pem" 127.0.0.2 9 0 0 10 > "$KS_DIR/f4.json"
lives=$(python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['trickle_lifetimes']; print(len(l), max(l) if l else 99)" "$KS_DIR/f4.json")
check "a request trickled at 2 bytes/s is cut at the 3 s deadline (closed, longest lived: $lives s)" \
  python3 -c "import sys; n, m = sys.argv[1].split(); sys.exit(not (int(n) >= 10 and float(m) <= 4.5))" "$lives"
check "  (timeout counter $(ks_metric $C 'bulwark_keyservice_connections_closed_total{reason="timeout"}'))" \
  at_least $C 'bulwark_keyservice_connections_closed_total{reason="timeout"}' 10

# 5. Descriptors exhausted anyway (the limit lowered under the running service): accept() fails
#    with EMFILE; the listener backs off, frees a connection, logs once per 10 s, and serves.
prlimit --pid "$KS_PID_c" --nofile=200:200
flood conns 127.0.0.1 8445 "$KS_DIR/ca.pem" 127.0.0.2 12 400 0 > "$KS_DIR/f5.json" &
fp=$!
check "EMFILE reached" \
  wait_for 200 at_least $C bulwark_keyservice_accept_errors_total 1
# Out of descriptors below the service's own cap, every new connection waits for one to be
# freed. With evhttp's 128-deep accept queue the flood's connections filled it while the listener
# backed off and honest SYNs were dropped and retransmitted (1 + 2 + 4 s: p99 7.2 s, the bound
# was 15 s); the service's own listening socket is 4096 deep (issue 18), measured p99 36 ms at
# load 14, so the bound is the same as under the other floods.
ok_latency "accept() failing with EMFILE" "$(honest $C 20)" "$bound"
kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
n=$(grep -c "accept: Too many open files" "$KS_DIR/c.log")
check "  logged once per period, not per failure ($n lines for $(ks_metric $C bulwark_keyservice_accept_errors_total) errors)" \
  test "$n" -ge 1 -a "$n" -le 3
kill "$KS_PID_c"; wait "$KS_PID_c" 2>/dev/null

# 6. Session flood: /auth needs no authentication; 1,000 sessions at most, 100 per source.
ks_start d 8446 "$KS_DIR/policy.json" --max-sessions 1000 --max-sessions-per-source 100
D=https://127.0.0.1:8446
flood sessions 127.0.0.1 8446 "$KS_DIR/ca.pem" 127.0.0.2 20 8 > "$KS_DIR/f6.json" &
fp=$!
sample $D bulwark_keyservice_sessions_unattested "$KS_DIR/s6"; sp=$!
check "session flood running (2,000 sessions opened)" \
  wait_for 200 at_least $D 'bulwark_keyservice_auth_total{result="ok"}' 2000
ok_latency "session flood (8 connections of POST /auth)" "$(honest $D 30)" "$bound"
kill "$sp"
check "  unattested sessions never exceed the flooding source's quota (peak $(peak "$KS_DIR/s6") <= 100 + honest)" \
  test "$(peak "$KS_DIR/s6")" -le 101
check "  evicted: $(ks_metric $D bulwark_keyservice_sessions_evicted_total)" at_least $D bulwark_keyservice_sessions_evicted_total 1000
wait "$fp"
check "  the flood itself was never refused with 503 either: $(cat "$KS_DIR/f6.json")" \
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d['auth_ok'] > 2000 and not d['auth_other']))" "$KS_DIR/f6.json"
finish
