# A two-node "cluster" in network namespaces for datapath/WireGuard tests. Source after lib.sh.
#
#   wire  (the cloud host's view): bridge br0; node A, node B and an attacker port hang off it
#   nodeA 198.19.0.1/24 fd00:20::1/64 on uplink "up" ; pods 198.18.1.0/24 fd00:10:1::/64
#   nodeB 198.19.0.2/24 fd00:20::2/64 on uplink "up" ; pods 198.18.2.0/24 fd00:10:2::/64
#   podA  198.18.1.2, fd00:10:1::2 (MTU 1420: room for WireGuard's overhead)   podB .2.2, :2::2
#
# WG_MODE=userspace (wireguard-go, the host default) or kernel (inside tests/vm).
# Exposes: $NS_WIRE $NS_A $NS_B $NS_PA $NS_PB $WG_A $WG_B $PIN_A $PIN_B $CONF_A $CONF_B $TMP
WG_MODE=${WG_MODE:-userspace}
WG_PORT=51820
WG_MARK=0x1e00

cluster_node() { # name idx
  local n=$1 i=$2 ns pod
  ns=$(netns_new "n$n"); pod=$(netns_new "p$n")
  for s in "$ns" "$pod"; do
    nsx "$s" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  # uplink to the wire
  ip link add name uplink netns "$ns" type veth peer name "w$n" netns "$NS_WIRE"
  nsx "$NS_WIRE" ip link set "w$n" master br0 up
  nsx "$ns" ip link set dev uplink up
  nsx "$ns" ip addr add "198.19.0.$i/24" dev uplink
  nsx "$ns" ip addr add "fd00:20::$i/64" dev uplink nodad
  # pod, behind a veth
  ip link add eth0 netns "$pod" mtu 1420 type veth peer name pod netns "$ns" mtu 1420
  nsx "$pod" ip link set eth0 up
  nsx "$ns" ip link set pod up
  nsx "$ns" ip addr add "198.18.$i.1/24" dev pod
  nsx "$ns" ip addr add "fd00:10:$i::1/64" dev pod nodad
  nsx "$pod" ip addr add "198.18.$i.2/24" dev eth0
  nsx "$pod" ip addr add "fd00:10:$i::2/64" dev eth0 nodad
  nsx "$pod" ip route add default via "198.18.$i.1"
  nsx "$pod" ip -6 route add default via "fd00:10:$i::1"
  echo "$ns $pod"
}

cluster_wg() { # ns ifname keyfile
  local ns=$1 ifn=$2 key=$3
  if [ "$WG_MODE" = kernel ]; then
    nsx "$ns" ip link add "$ifn" type wireguard || return 1
  else
    nsenter --net="/run/netns/$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go "$ifn" >"$TMP/wg-$ifn.log" 2>&1 &
    at_exit "kill $!; rm -f /var/run/wireguard/$ifn.sock"
    wait_for 50 test -S "/var/run/wireguard/$ifn.sock" || return 1
  fi
  nsx "$ns" wg set "$ifn" private-key "$key" listen-port "$WG_PORT" fwmark "$WG_MARK" || return 1
  nsx "$ns" ip link set "$ifn" mtu 1420 up
}

cluster_conf() { # file name idx wgdev peersdir
  cat > "$1" <<CONF
[Node]
Name = $2
Uplinks = uplink
ProtectedCIDRs = 198.18.0.0/16, fd00:10::/32
NodeCIDRs = 198.19.0.0/24, fd00:20::/64
PodCIDRs = 198.18.$3.0/24, fd00:10:$3::/64
NodeEncryption = ${NODE_ENCRYPTION:-false}
PeersDir = $5
StateDir = $TMP/state-$2

[Interface]
Device = $4
ListenPort = $WG_PORT
FwMark = $WG_MARK
CONF
}

cluster_peer_file() { # file pubkey idx [allowed]
  cat > "$1" <<PEER
[Peer]
Node = node$3
PublicKey = $2
Endpoint = 198.19.0.$3:$WG_PORT
AllowedIPs = ${4-198.18.$3.0/24, fd00:10:$3::/64}
PEER
}

cluster_up() {
  TMP=$(mktemp -d); at_exit "rm -rf $TMP"
  NS_WIRE=$(netns_new wire)
  nsx "$NS_WIRE" ip link add br0 type bridge
  nsx "$NS_WIRE" ip link set br0 up
  read -r NS_A NS_PA < <(cluster_node a 1)
  read -r NS_B NS_PB < <(cluster_node b 2)
  WG_A="bwg${BW_ID}a" WG_B="bwg${BW_ID}b"
  for x in a b; do (umask 077; wg genkey > "$TMP/$x.key"); wg pubkey < "$TMP/$x.key" > "$TMP/$x.pub"; mkdir -p "$TMP/peers-$x"; done
  cluster_wg "$NS_A" "$WG_A" "$TMP/a.key" || return 1
  cluster_wg "$NS_B" "$WG_B" "$TMP/b.key" || return 1
  nsx "$NS_A" wg set "$WG_A" peer "$(cat "$TMP/b.pub")" endpoint "198.19.0.2:$WG_PORT" allowed-ips 198.18.2.0/24,fd00:10:2::/64
  nsx "$NS_B" wg set "$WG_B" peer "$(cat "$TMP/a.pub")" endpoint "198.19.0.1:$WG_PORT" allowed-ips 198.18.1.0/24,fd00:10:1::/64
  # Plain routing sends remote pods out of the uplink; the datapath steers them into WireGuard.
  nsx "$NS_A" ip route add 198.18.2.0/24 via 198.19.0.2 dev uplink
  nsx "$NS_A" ip -6 route add fd00:10:2::/64 via fd00:20::2 dev uplink
  nsx "$NS_B" ip route add 198.18.1.0/24 via 198.19.0.1 dev uplink
  nsx "$NS_B" ip -6 route add fd00:10:1::/64 via fd00:20::1 dev uplink
  CONF_A=$TMP/a.conf CONF_B=$TMP/b.conf
  cluster_conf "$CONF_A" a 1 "$WG_A" "$TMP/peers-a"
  cluster_conf "$CONF_B" b 2 "$WG_B" "$TMP/peers-b"
  cluster_peer_file "$TMP/peers-a/b.conf" "$(cat "$TMP/b.pub")" 2
  cluster_peer_file "$TMP/peers-b/a.conf" "$(cat "$TMP/a.pub")" 1
  PIN_A=/sys/fs/bpf/bw-test-$BW_ID-a PIN_B=/sys/fs/bpf/bw-test-$BW_ID-b
  at_exit "rm -rf $PIN_A $PIN_B"
}

cluster_attach() { # node-letter
  local ns pin conf wg
  if [ "$1" = a ]; then ns=$NS_A pin=$PIN_A conf=$CONF_A wg=$WG_A; else ns=$NS_B pin=$PIN_B conf=$CONF_B wg=$WG_B; fi
  nsx "$ns" bulwark datapath attach --pin-dir "$pin" --uplink uplink --wg-dev "$wg" --config "$conf"
}

# Captures. A capture that is to show that nothing leaked proves it only when it demonstrably ran
# through the whole window, so every window is bracketed by marker packets that must be in it:
#   cap_start NAME NS DEV MARK_NS MARK_DST   tcpdump on DEV in netns NS into $TMP/NAME.pcap; once
#       it listens, MARK_NS sends a UDP marker (port 9, payload "bw-mark-$BW_ID-NAME-start") to
#       MARK_DST, and cap_start returns only when the marker is in the file (else it fails)
#   cap_stop NAME            the "end" marker, then SIGTERM (tcpdump reports its drops on exit)
#   cap_live NAME            it ran the whole window: the pcap reads, both markers are in it, and
#                            tcpdump exited on our SIGTERM reporting 0 packets dropped by kernel
#   cap_n NAME FILTER...     packets matching FILTER; prints nothing and fails on an unreadable pcap
#   cap_none NAME FILTER...  cap_live, and not one packet matches FILTER (a "nothing in clear" check)
# Diagnostics go to stderr.
declare -A CAP_PID CAP_MARK CAP_RC
cap_file() { echo "$TMP/$1.pcap"; }
cap_n() { # name filter...
  local f out; f=$(cap_file "$1"); shift
  out=$(tcpdump -n -r "$f" "$@" 2>/dev/null) || { echo "capture $f: unreadable" >&2; return 1; }
  [ -z "$out" ] && echo 0 || wc -l <<<"$out"
}
_cap_mark_send() { # name start|end
  local ns dst; read -r ns dst <<<"${CAP_MARK[$1]}"
  nsx "$ns" bash -c 'printf %s "$1" > "/dev/udp/$2/9"' _ "bw-mark-$BW_ID-$1-$2" "$dst"
}
_cap_marked() { # name start|end: the marker is in the pcap
  local f out; f=$(cap_file "$1")
  out=$(tcpdump -n -A -r "$f" udp port 9 2>/dev/null) || return 1
  grep -qF "bw-mark-$BW_ID-$1-$2" <<<"$out"
}
cap_start() { # name ns dev mark-ns mark-dst
  local name=$1 ns=$2 dev=$3 f
  f=$(cap_file "$name")
  CAP_MARK[$name]="$4 $5"
  # nsenter execs tcpdump, so $! is tcpdump itself (a backgrounded shell function would be a
  # subshell, and killing it would leave tcpdump running)
  nsenter --net="/run/netns/$ns" tcpdump -i "$dev" -B 16384 -U -n -w "$f" >"$TMP/$name.tcpdump.log" 2>&1 &
  CAP_PID[$name]=$!
  at_exit "kill ${CAP_PID[$name]}"
  wait_for 50 grep -q "listening on" "$TMP/$name.tcpdump.log" ||
    { echo "capture $name: tcpdump did not start: $(cat "$TMP/$name.tcpdump.log")" >&2; return 1; }
  # Resend until captured: the first may wait for neighbour resolution.
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    _cap_mark_send "$name" start 2>/dev/null
    wait_for 10 _cap_marked "$name" start && return 0
  done
  echo "capture $name: the start marker never showed up" >&2
  return 1
}
cap_stop() { # name
  local name=$1 pid=${CAP_PID[$1]} rc=0
  sleep 0.3 # stragglers of the window's traffic
  _cap_mark_send "$name" end 2>/dev/null
  wait_for 50 _cap_marked "$name" end
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || rc=$?
  CAP_RC[$name]=$rc
}
cap_live() { # name
  local name=$1 log=$TMP/$1.tcpdump.log m
  for m in start end; do
    _cap_marked "$name" "$m" || { echo "capture $name: no $m marker (capture dead or unreadable)" >&2; return 1; }
  done
  [ "${CAP_RC[$name]:-x}" = 0 ] || { echo "capture $name: tcpdump exit status ${CAP_RC[$name]:-none}" >&2; return 1; }
  grep -qx "0 packets dropped by kernel" "$log" ||
    { echo "capture $name: kernel drops: $(grep 'dropped by kernel' "$log" || echo 'not reported')" >&2; return 1; }
}
cap_none() { # name filter...
  local name=$1 n; shift
  cap_live "$name" || return 1
  n=$(cap_n "$name" "$@") || return 1
  [ "$n" -eq 0 ] || { echo "capture $name: $n packets match '$*'" >&2; return 1; }
}

# The cloud host's view: a capture on the wire's bridge, markers from the first node to the
# second over their node addresses (plain UDP: NodeEncryption is off in these clusters).
#   cluster_capture_start NAME, cluster_capture_stop; cap_count FILTER and cap_clear FILTER
#   (cap_n and cap_none of the last one); $CAP is its pcap.
cluster_capture_start() {
  local from=${NS_A:-${NS[a]:-}}
  CAP_NAME=wire-$1 CAP=$(cap_file "wire-$1")
  cap_start "$CAP_NAME" "$NS_WIRE" br0 "$from" 198.19.0.2 || die "the wire capture $1 did not start"
}
cluster_capture_stop() { cap_stop "$CAP_NAME"; }
cap_count() { cap_n "$CAP_NAME" "$@"; }
cap_clear() { cap_none "$CAP_NAME" "$@"; }

# Counter of one reason in a node's datapath.
dp_counter() { # node-letter reason
  local ns pin
  if [ "$1" = a ]; then ns=$NS_A pin=$PIN_A; else ns=$NS_B pin=$PIN_B; fi
  nsx "$ns" bulwark datapath status --json --pin-dir "$pin" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$2']['packets'])"
}

# Nodes managed by `bulwark net` (no hand-made WireGuard): net_cluster_up a b [c ...]
# Exposes NS[x] POD[x] CONF[x] PIN[x], and net X VERB... running `bulwark net` on node X.
declare -A NS POD CONF PIN
net_cluster_up() {
  local x i y
  TMP=$(mktemp -d); at_exit "rm -rf $TMP"
  NS_WIRE=$(netns_new wire)
  nsx "$NS_WIRE" ip link add br0 type bridge
  nsx "$NS_WIRE" ip link set br0 up
  at_exit "pkill -f 'wireguard-go bwg$BW_ID'"
  for x in "$@"; do
    i=$(( $(printf '%d' "'$x") - 96 ))
    read -r NS[$x] POD[$x] < <(cluster_node "$x" "$i")
    mkdir -p "$TMP/peers-$x"
    CONF[$x]=$TMP/$x.conf PIN[$x]=/sys/fs/bpf/bw-test-$BW_ID-$x
    at_exit "rm -rf ${PIN[$x]}"
    cluster_conf "${CONF[$x]}" "$x" "$i" "bwg$BW_ID$x" "$TMP/peers-$x"
    for y in 1 2 3 4; do
      [ "$y" = "$i" ] && continue
      nsx "${NS[$x]}" ip route add "198.18.$y.0/24" via "198.19.0.$y" dev uplink
      nsx "${NS[$x]}" ip -6 route add "fd00:10:$y::/64" via "fd00:20::$y" dev uplink
    done
  done
}
net() { local x=$1; shift; nsx "${NS[$x]}" bulwark net "$@" --config "${CONF[$x]}" --pin-dir "${PIN[$x]}"; }

# ---- wire captures parsed at every depth (tests/wire.py) ----
# wire_capture_start NAME: tcpdump on the wire into $TMP/wire-NAME.pcap (WCAP); fails when tcpdump
# does not start listening or dies. wire_capture_stop: stops it; fails when the kernel dropped
# packets (a capture with holes could miss a leak) or the file is not a readable pcap.
wire_capture_start() {
  WCAP=$TMP/wire-$1.pcap WCAP_LOG=$TMP/tcpdump-wire-$1.log
  nsenter --net="/run/netns/$NS_WIRE" tcpdump -i br0 -B 65536 -s 0 -U -n -w "$WCAP" >"$WCAP_LOG" 2>&1 &
  WCAP_PID=$!
  at_exit "kill $WCAP_PID"
  wait_for 100 grep -q "listening on" "$WCAP_LOG" && kill -0 "$WCAP_PID" 2>/dev/null
}
wire_capture_stop() {
  local dropped
  sleep 0.5
  kill -0 "$WCAP_PID" 2>/dev/null || { echo "tcpdump died: $(cat "$WCAP_LOG")" >&2; return 1; }
  kill -INT "$WCAP_PID"; wait "$WCAP_PID" 2>/dev/null
  dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$WCAP_LOG")
  [ -n "$dropped" ] && [ "$dropped" -eq 0 ] || { echo "tcpdump: ${dropped:-unknown} packets dropped by kernel" >&2; return 1; }
  [ -s "$WCAP" ]
}
# wire_scan [wire.py scan options...]: the JSON report of $WCAP into $WCAP.json; fails when the
# file cannot be parsed. Frames are counted as leaks only from the nodes' uplink MACs.
wire_scan() {
  python3 "$BULWARK_TOP/tests/wire.py" scan "$WCAP" --pods 198.18.0.0/16 fd00:10::/32 \
    --nodes 198.19.0.0/24 fd00:20::/64 \
    --from-mac "$(link_mac "$NS_A" uplink)" "$(link_mac "$NS_B" uplink)" "$@" > "$WCAP.json"
}
# link_mac NS DEV: a device's MAC address (nsx keeps the host's /sys, so not from sysfs).
link_mac() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
# wire_json EXPR: evaluate a python expression over the report (d).
wire_json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$WCAP.json"; }

# Nodes a and b brought up by `bulwark net`, each with the other's peer file, node b synced.
net_pair_up() {
  net_cluster_up a b
  check "net up on node b" net b up
  check "net up on node a" net a up
  net b export-peer > "$TMP/peers-a/b.conf"
  net a export-peer > "$TMP/peers-b/a.conf"
  check "sync on node b" net b sync
}

# bulwarkd on node x (extra options after it), logging to $TMP/agent.log; its pid in $AGENT.
agent_start() {
  local x=$1; shift
  nsenter --net="/run/netns/${NS[$x]}" bulwarkd --config "${CONF[$x]}" --pin-dir "${PIN[$x]}" "$@" \
    > "$TMP/agent.log" 2>&1 &
  AGENT=$!
  at_exit "kill $AGENT"
  check "bulwarkd is up and watching" wait_for 200 grep -q "watching" "$TMP/agent.log"
}

# The agent's log lines since wall-clock time t0 (date +%s.%N), as "<ms after t0> <message>".
agent_log_since() { # t0
  python3 - "$TMP/agent.log" "$1" <<'PY'
import sys, datetime
t0 = float(sys.argv[2])
for l in open(sys.argv[1]):
    if not l.startswith("ts="): continue
    t = datetime.datetime.strptime(l.split()[0][3:], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp()
    if t >= t0: print("%d %s" % ((t - t0) * 1000, l.split("msg=", 1)[1].strip()))
PY
}
