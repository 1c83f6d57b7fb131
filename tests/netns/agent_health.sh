#!/usr/bin/env bash
# bulwarkd's metrics and health (issue 16) and WireGuard supervision (issue 14 item 3):
#  - /healthz 200; /readyz 200 when enforced, 503 naming the uplink when a foreign filter runs
#    before ours; /metrics parses as Prometheus text and its drop counter rises during a flood,
#    counted by reason and direction; bpftool names the counter's reason and direction (BTF);
#    `datapath peers` shows the peer's key in base64;
#  - `kill -9` of wireguard-go (its socket left behind): the agent removes the stale socket,
#    starts wireguard-go again and re-applies within 5 s; meanwhile protected packets are counted
#    as dropped-no-device, not redirected;
#  - `bulwark status` exit 0 when complete, non-zero naming the uplink when not.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_pair_up
M=127.0.0.1:9962   # loopback of node a's namespace
agent_start a --resync 2 --metrics-address "$M"
check "pod a -> pod b through WireGuard" wait_for 50 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2
http() { nsx "${NS[a]}" curl -s -o "$TMP/body" -w '%{http_code}' "http://$M$1"; }
check "/healthz answers 200" test "$(http /healthz)" = 200
check "/readyz answers 200 when every uplink is enforced" test "$(http /readyz)" = 200
st() { nsx "${NS[a]}" bulwark status --config "${CONF[a]}" --pin-dir "${PIN[a]}" --agent "http://$M" "$@"; }
st > "$TMP/st.txt"; rc=$?
sed 's/^/# /' "$TMP/st.txt"
check "bulwark status exits 0 when enforcement is complete" test "$rc" -eq 0

# A strict parser of the Prometheus text format (0.0.4): every sample line must parse, every
# metric needs a TYPE before its samples. Prints "name{labels} value" lines for the checks.
prom() {
  python3 -c '
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r"[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\n]|\\\\[\\\\\"n])*\""
sample = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$" % (name, label, label))
types = {}
out = []
for n, line in enumerate(sys.stdin, 1):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, m, t = line.split(" ", 3)
        assert t in ("counter", "gauge", "histogram", "summary", "untyped"), line
        assert m not in types, "TYPE twice: " + m
        types[m] = t
        continue
    if line.startswith("#") or not line:
        continue
    s = sample.match(line)
    assert s, "line %d does not parse: %r" % (n, line)
    base = s.group(1)
    for suffix in ("_bucket", "_sum", "_count"):
        if base not in types and base.endswith(suffix) and types.get(base[:-len(suffix)]) == "histogram":
            if suffix == "_bucket":
                assert "le=\"" in (s.group(2) or ""), "bucket without le: " + line
            base = base[:-len(suffix)]
    assert base in types, "no TYPE for " + base
    if types[base] == "counter":
        assert base.endswith("_total"), "counter without _total: " + base
    float(s.group(3))
    out.append(line)
print("\n".join(out))
'
}
metrics() { http /metrics > /dev/null; prom < "$TMP/body"; }
check "/metrics parses as Prometheus text" metrics
metrics > "$TMP/m0"
val() { grep -F "$1 " "$2" | awk '{print $NF}'; }
check "...and says the uplink is enforced" grep -q '^bulwark_uplink_enforced{uplink="uplink",state="enforced"} 1$' "$TMP/m0"
check "...peers by state: 1 configured, 1 in the device, 1 with a recent handshake" sh -c "
  grep -qx 'bulwark_peers{state=\"configured\"} 1' $TMP/m0 && grep -qx 'bulwark_peers{state=\"in_device\"} 1' $TMP/m0 &&
  grep -qx 'bulwark_peers{state=\"handshake_recent\"} 1' $TMP/m0"
check "...the handshake age histogram holds that peer under 180 s" sh -c "
  grep -qx 'bulwark_peer_handshake_age_seconds_bucket{le=\"180\"} 1' $TMP/m0 &&
  grep -qx 'bulwark_peer_handshake_age_seconds_count 1' $TMP/m0"
check "...map fill levels and lost events are there" sh -c "
  grep -q '^bulwark_map_entries{map=\"bw_peer\"} [1-9]' $TMP/m0 && grep -q '^bulwark_map_capacity{map=\"bw_peer\"} ' $TMP/m0 &&
  grep -q '^bulwark_datapath_events_lost_total ' $TMP/m0"
# A flood to a pod network no peer covers (node 3 does not exist; its neighbour entry is static so
# that packets reach the uplink's egress): dropped-no-peer.
nsx "${NS[a]}" ip neigh replace 198.19.0.3 lladdr 02:00:00:00:00:03 dev uplink nud permanent
NP='bulwark_datapath_packets_total{reason="dropped-no-peer",direction="egress"}'
NPI='bulwark_datapath_packets_total{reason="dropped-no-peer",direction="ingress"}'
before=$(val "$NP" "$TMP/m0")
nsx "${POD[a]}" ping -f -i 0.002 -c 2000 -W 1 -q 198.18.3.2 > /dev/null 2>&1 &
flood=$!
sleep 0.5
metrics > "$TMP/m1"
wait $flood
metrics > "$TMP/m2"
mid=$(val "$NP" "$TMP/m1")
after=$(val "$NP" "$TMP/m2")
check "the drop counter rises during the flood ($before -> $mid -> $after)" test "$mid" -gt "$before" -a "$after" -ge $((before + 2000))
check "...counted by direction: egress, none in ingress ($(val "$NPI" "$TMP/m2"))" test "$(val "$NPI" "$TMP/m2")" = 0
# bpftool names each counter slot's reason and direction (BTF enums in the value: bpf/README.md).
bt=$(bpftool -j map dump pinned "${PIN[a]}/bw_stats" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    v = e["formatted"]["values"]
    if v[0]["value"]["reason"] == "BW_REASON_DROPPED_NO_PEER" and v[0]["value"]["dir"] == "BW_DIR_EGRESS":
        print(sum(c["value"]["packets"] for c in v))')
check "bpftool shows the slot as BW_REASON_DROPPED_NO_PEER / BW_DIR_EGRESS with the flood (${bt:-none})" \
  test "${bt:-0}" -ge "$after"
keyb=$(nsenter --net="/run/netns/${NS[b]}" wg show "bwg${BW_ID}b" public-key)
check "datapath peers shows node b's public key in base64, as wg does ($keyb)" sh -c \
  "nsenter --net=/run/netns/${NS[a]} bulwark datapath peers --pin-dir ${PIN[a]} | grep -qF -- ' $keyb '"

# The window starts at the newest counter sample at least 60 s old, else at the oldest sample
# (the agent's start): started less than 60 s ago, it holds the whole flood.
read -r secs recent < <(st --json | python3 -c 'import json,sys; d = json.load(sys.stdin)["agent"]["drops_recent"]; print(d["seconds"], d["dropped-no-peer"])')
if [ "$secs" -lt 60 ]; then
  check "bulwark status counts the flood in the drops of the last ${secs} s ($recent)" test "$recent" -ge 2000
else # the window starts inside or after the flood: part of it, never more than all drops
  check "bulwark status counts drops of the last ${secs} s (${recent}, of ${after} in all)" \
    test "$recent" -gt 0 -a "$recent" -le "$after"
fi
st | grep "drops in the last" | sed 's/^/# /'

# The monitor skips the flood's events still in the ring and prints new ones with wall-clock time.
mon() { nsx "${NS[a]}" bulwark datapath monitor --pin-dir "${PIN[a]}" --json "$@"; }
mon --count 1 --timeout 2 > "$TMP/old.json"
check "monitor started after old drops prints nothing (no new drop)" test ! -s "$TMP/old.json"
mon --count 1 --timeout 10 --reason dropped-no-peer --addr 198.18.3.2 > "$TMP/new.json" &
m=$!
sleep 0.5
nsx "${POD[a]}" ping -c 2 -i 0.3 -W 1 -q 198.18.3.2 > /dev/null 2>&1
wait $m
check "...and reports a new drop" grep -q '"reason":"dropped-no-peer".*"daddr":"198.18.3.2"' "$TMP/new.json"
check "...with today's wall-clock time" grep -q "\"time\":\"$(date -u +%Y-%m-%d)T" "$TMP/new.json"

# A foreign filter before ours: /readyz fails and says where; status exits 4.
nsx "${NS[a]}" tc filter add dev uplink egress pref 1 handle 0x7 bpf da obj "$BUILD/bw_pass.bpf.o" sec tc
check "/readyz answers 503 with a foreign filter before ours" test "$(http /readyz)" = 503
check "...naming the uplink and the filter" grep -q "uplink uplink: not enforced: foreign-filter-before-ours: tc filter pref 1 handle 0x7" "$TMP/body"
metrics > "$TMP/m3"
check "...and /metrics says so" grep -q '^bulwark_uplink_enforced{uplink="uplink",state="foreign-filter-before-ours"} 0$' "$TMP/m3"
st > "$TMP/st.txt"; rc=$?
check "bulwark status exits 4 (verdict not final)" test "$rc" -eq 4
check "...naming the uplink" grep -q "uplink uplink: NOT ENFORCED: foreign-filter-before-ours" "$TMP/st.txt"
nsx "${NS[a]}" tc filter del dev uplink egress pref 1 handle 0x7 bpf
check "foreign filter removed: /readyz 200 again" test "$(http /readyz)" = 200

# wireguard-go killed with SIGKILL: its UAPI socket stays behind, stale.
sock=/var/run/wireguard/bwg${BW_ID}a.sock
wgpid=$(pgrep -f "^wireguard-go bwg${BW_ID}a$" | head -1)
check "wireguard-go of node a found" test -n "$wgpid"
nsx "${POD[a]}" ping -i 0.005 -q 198.18.2.2 > /dev/null 2>&1 &
flood=$!
at_exit "kill $flood"
# On a quiet machine the agent restores the device about 10 ms after it sees it gone, and only
# packets sent in that window meet ifindex 0 and are counted as dropped-no-device. ping cannot
# show it: a drop at tc egress fails its send with ENOBUFS and ping backs off (0 or 1 counted,
# even at -i 0.0002). This sender ignores failed sends: a datagram every 0.2 ms to pod b's
# discard port until the stop file appears.
nsx "${POD[a]}" python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while not os.path.exists(sys.argv[1]):
    try:
        s.sendto(b"bulwark", ("198.18.2.2", 9))
    except OSError:
        pass
    time.sleep(0.0002)
' "$TMP/udp.stop" &
udp=$!
at_exit "kill $udp"
sleep 0.3
counter() { nsx "${NS[a]}" bulwark datapath status --json --pin-dir "${PIN[a]}" |
  python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$1']['packets'])"; }
nodev0=$(counter dropped-no-device)
cluster_capture_start wgkill
t0=$(date +%s.%N)
kill -9 "$wgpid"
check "...killed, socket left behind" test -S "$sock"
# Recovery is read off the wire: the first encrypted packet from node b back to node a after the
# new handshake (a reply to the flood: pod traffic flows both ways again), relative to the kill.
# (Spawning a probe process right after the kill can itself stall for seconds on a loaded host.)
check "pod traffic flows again" wait_for 100 nsx "${POD[a]}" ping -n -c 1 -W 1 -q 198.18.2.2
kill $flood; wait $flood 2>/dev/null
touch "$TMP/udp.stop"; wait $udp 2>/dev/null
cluster_capture_stop
ms=$(tcpdump -tt -n -r "$CAP" 'udp port 51820' 2>/dev/null | python3 -c "
import sys
t0 = float('$t0'); hs = None
for l in sys.stdin:
    f = l.split(); t = float(f[0])
    if t < t0: continue
    if hs is None and f[2].startswith('198.19.0.2.') and 'length 92' in l: hs = t; continue
    if hs is not None and f[2].startswith('198.19.0.2.') and 'length 92' not in l:
        print(int((t - t0) * 1000)); break
else: print(99999)")
tcpdump -tt -n -r "$CAP" 'udp port 51820 and (udp[8] == 1 or udp[8] == 2)' 2>/dev/null |
  awk -v t0="$t0" '{ printf "# handshake %s %+.0f ms\n", ($0 ~ /length 148/ ? "initiation" : "response"), ($1 - t0) * 1000 }'
agent_log_since "$t0" | sed 's/^\([0-9]*\) /# agent +\1 ms: /'
check "the agent restored WireGuard: pod traffic back within 5 s of the kill (${ms} ms, on the wire)" test "$ms" -le 5000
check "...the device has its peer again" sh -c "nsenter --net=/run/netns/${NS[a]} wg show bwg${BW_ID}a peers | grep -q ."
grep -o "WireGuard device .* restored in [0-9]* ms" "$TMP/agent.log" | tail -1 | sed 's/^/# agent: /'
check "...it removed the stale socket and started wireguard-go again" grep -q "removed stale UAPI socket of bwg${BW_ID}a" "$TMP/agent.log"
check "...a new wireguard-go runs" sh -c "pgrep -f '^wireguard-go bwg${BW_ID}a$' | grep -qv '^$wgpid\$'"
nodev1=$(counter dropped-no-device)
check "protected packets during the outage counted as dropped-no-device ($nodev0 -> $nodev1)" test "$nodev1" -gt "$nodev0"
check "bulwark status exits 0 after the recovery" st
check "/readyz 200 after the recovery" test "$(http /readyz)" = 200
finish
