#!/usr/bin/env bash
# bulwarkd keeps the filters in place (issue 11 items 7, 8; issue 16 truthful status):
#  - `tc qdisc del dev uplink clsact` under a running agent: filters back and pod traffic
#    encrypted again within 1 s (measured on a wire capture of a ping flood);
#  - the uplink deleted and re-created: filters on the new device within 1 s;
#  - a foreign tc filter inserted before bulwark's: `net status` exits 4 naming the uplink, the
#    agent logs it within one resync; removed again: exit 0;
#  - `datapath detach` with no agent: `net status`, `datapath status` and `bulwark status` exit 3
#    naming the uplink; the same after `tc qdisc del dev uplink clsact`.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_pair_up
agent_start a --resync 2
check "pod a -> pod b through WireGuard" wait_for 50 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2
check "net status: complete, exit 0" net a status
# Milliseconds from t0 until the agent logged a re-attach (99999: it did not).
reattach_ms() { agent_log_since "$1" | awk '/re-attached in/ { print $1; found = 1; exit } END { if (!found) print 99999 }'; }
ours() { nsx "${NS[a]}" tc filter show dev uplink egress | grep -q "handle 0xb0a.*bw_egress" &&
         nsx "${NS[a]}" tc filter show dev uplink ingress | grep -q "handle 0xb0a.*bw_ingress"; }
check "our filters are on the uplink" ours

# 1. qdisc deleted under a flood of pod traffic: when do filters and encryption come back?
cluster_capture_start qdisc
nsx "${POD[a]}" ping -i 0.002 -q 198.18.2.2 > /dev/null 2>&1 &
flood=$!
at_exit "kill $flood"
sleep 0.5
t0=$(date +%s.%N)
nsx "${NS[a]}" tc qdisc del dev uplink clsact
echo "# tc qdisc del took $(python3 -c "import time; print(int((time.time() - $t0) * 1000))") ms"
check "filters back after qdisc del" wait_for 30 ours
sleep 1
kill $flood; wait $flood 2>/dev/null
cluster_capture_stop
ms=$(reattach_ms "$t0")
check "filters back within 1 s of the deletion (agent logged the re-attach ${ms} ms after it)" test "$ms" -le 1000
grep -o "re-attached in [0-9.]* ms" "$TMP/agent.log" | tail -1 | sed 's/^/# agent: /'
# The last plaintext pod packet on the wire, relative to the deletion: the leak window.
last=$(tcpdump -tt -n -r "$CAP" 'net 198.18.0.0/16' 2>/dev/null | tail -1 | cut -d' ' -f1)
leak=$(python3 -c "print(int((float('${last:-0}') - $t0) * 1000) if '${last}' else 0)")
echo "# plaintext pod packets on the wire: $(cap_count net 198.18.0.0/16), last ${leak} ms after the deletion"
check "pod traffic encrypted again within 1 s of the deletion (last clear packet at ${leak} ms)" test "$leak" -le 1000
check "...and WireGuard carried the flood after that" test "$(cap_count udp port $WG_PORT)" -gt 100
check "net status: complete again" net a status

# 2. The uplink re-created (NIC re-plug): filters on the new device within 1 s.
nsx "${NS[a]}" ip link del uplink
check "uplink gone: net status exits 3 (not enforced)" test "$(net a status >/dev/null 2>&1; echo $?)" -eq 3
t0=$(date +%s.%N)
ip link add name uplink netns "${NS[a]}" type veth peer name "wa2" netns "$NS_WIRE"
check "filters on the re-created uplink" wait_for 30 ours
ms=$(reattach_ms "$t0")
check "...within 1 s of its creation (agent logged the re-attach ${ms} ms after it)" test "$ms" -le 1000
nsx "$NS_WIRE" ip link set wa2 master br0 up
nsx "${NS[a]}" ip link set dev uplink up
nsx "${NS[a]}" ip addr add 198.19.0.1/24 dev uplink
nsx "${NS[a]}" ip addr add fd00:20::1/64 dev uplink nodad
nsx "${NS[a]}" ip route add 198.18.2.0/24 via 198.19.0.2 dev uplink
cluster_capture_start replug
check "pod a -> pod b again" wait_for 50 nsx "${POD[a]}" ping -c 1 -W 1 -q 198.18.2.2
cluster_capture_stop
check "...with nothing in clear on the wire" test "$(cap_count net 198.18.0.0/16)" -eq 0

# 3. A foreign filter before ours (tc puts a new bpf filter of the same pref first in line).
nsx "${NS[a]}" tc filter add dev uplink egress pref 1 handle 0x7 bpf da obj "$BUILD/bw_pass.bpf.o" sec tc
nsx "${NS[a]}" tc filter show dev uplink egress | sed 's/^/# /'
net a status > "$TMP/status.txt"; rc=$?
sed 's/^/# /' "$TMP/status.txt"
check "foreign filter: net status exits 4 (verdict not final)" test "$rc" -eq 4
check "...and names the uplink and the filter" grep -q "uplink uplink: NOT ENFORCED: foreign-filter-before-ours.*pref 1 handle 0x7" "$TMP/status.txt"
check "...the agent reports it within one resync (2 s)" \
  wait_for 30 grep -q "uplink uplink: bulwark's egress verdict is not final: tc filter pref 1 handle 0x7" "$TMP/agent.log"
check "...the agent leaves the foreign filter alone" sh -c "nsenter --net=/run/netns/${NS[a]} tc filter show dev uplink egress | grep -q 'handle 0x7'"
nsx "${NS[a]}" tc filter del dev uplink egress pref 1 handle 0x7 bpf
check "foreign filter removed: net status exits 0" net a status

# 3b. A tcx program (Linux 6.6+) runs before every clsact filter: reported the same way.
tcx() { # attach|detach pinned-prog ifname, in node a (the netns going away detaches it too)
  nsx "${NS[a]}" python3 - "$@" <<'PY'
import ctypes, os, socket, struct, sys
op, pin, ifname = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(321, cmd, buf, 128)
    if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r
path = ctypes.create_string_buffer(pin.encode())
fd = bpf(7, struct.pack("=QII", ctypes.addressof(path), 0, 0))          # BPF_OBJ_GET
idx = socket.if_nametoindex(ifname)
bpf(8 if op == "attach" else 9, struct.pack("=IIIII", idx, fd, 47, 0, 0))  # PROG_(DE)ATTACH tcx egress
PY
}
tcxpin=/sys/fs/bpf/bw-test-$BW_ID-tcx
at_exit "rm -f $tcxpin"
if bpftool prog load "$BUILD/bw_pass.bpf.o" "$tcxpin" 2>/dev/null && tcx attach "$tcxpin" uplink 2>"$TMP/tcx.err"; then
  net a status > "$TMP/status.txt"; rc=$?
  sed 's/^/# /' "$TMP/status.txt"
  check "tcx program on the uplink: net status exits 4" test "$rc" -eq 4
  check "...naming the tcx program" grep -q "uplink uplink: NOT ENFORCED: foreign-filter-before-ours.*tcx program id" "$TMP/status.txt"
  check "...the agent reports it within one resync" wait_for 30 grep -q "egress verdict is not final: tcx program id" "$TMP/agent.log"
  tcx detach "$tcxpin" uplink
  check "tcx program detached: net status exits 0" wait_for 20 net a status
else
  echo "# tcx not available on this kernel: $(cat "$TMP/tcx.err" 2>/dev/null)"
fi

# 4. Without the agent, detach leaves status truthful.
kill -TERM $AGENT; wait $AGENT
nsx "${NS[a]}" bulwark datapath detach --pin-dir "${PIN[a]}"
net a status > "$TMP/status.txt"; rc=$?
check "after datapath detach: net status exits 3" test "$rc" -eq 3
check "...naming the uplink" grep -q "uplink uplink: NOT ENFORCED: not-attached" "$TMP/status.txt"
nsx "${NS[a]}" bulwark datapath status --pin-dir "${PIN[a]}" > "$TMP/dp.txt"; rc=$?
check "...datapath status exits 3 too" test "$rc" -eq 3
check "...and says no device has our filters" grep -q "NOT ENFORCED" "$TMP/dp.txt"
bst() { nsx "${NS[a]}" bulwark status --config "${CONF[a]}" --pin-dir "${PIN[a]}" --agent http://127.0.0.1:1; }
bst > "$TMP/bst.txt"; rc=$?
check "...bulwark status exits 3 too (not 7: the worst state wins)" test "$rc" -eq 3
check "...naming the uplink" grep -q "uplink uplink: NOT ENFORCED: not-attached" "$TMP/bst.txt"
# The same after `tc qdisc del` with no agent to put the filters back.
nsx "${NS[a]}" bulwark datapath attach --config "${CONF[a]}" --pin-dir "${PIN[a]}" 2>/dev/null
check "re-attached: net status exits 0" net a status
nsx "${NS[a]}" tc qdisc del dev uplink clsact
bst > "$TMP/bst.txt"; rc=$?
check "after tc qdisc del: bulwark status exits 3 naming the uplink" \
  sh -c "test $rc -eq 3 && grep -q 'uplink uplink: NOT ENFORCED' $TMP/bst.txt"
net a status > /dev/null 2>&1; rc=$?
check "...net status exits 3 too" test "$rc" -eq 3
finish
