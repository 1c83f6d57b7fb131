#!/usr/bin/env bash
# bulwark-csi's transport on the host (no device-mapper needed), probed like a hostile client
# would: raw gRPC calls with hand-encoded protobuf bytes and no generated stubs (grpcurl-style),
# an unknown method, a malformed message, an oversized message, many concurrent calls, a stale
# socket file from a killed plugin, a regular file in the socket's place, SIGTERM.
. "$(dirname "$0")/../lib.sh"
require_root
PY=/usr/bin/python3
"$PY" -c 'import grpc' 2>/dev/null || skip "python3-grpcio missing"
T=$(mktemp -d); at_exit "rm -rf $T"
S=$T/csi.sock
start() { bulwark-csi --endpoint "unix://$S" --node-id host-$BW_ID "$@" 2>> $T/csi.log & PID=$!; at_exit "kill -9 $PID"; }
start
wait_for 100 test -S $S || die "bulwark-csi did not start"
check "the socket is private (mode 0700)" test "$(stat -c %a $S)" = 700

cat > $T/raw.py <<'EOF'
import sys, threading, grpc
sock = sys.argv[1]
ch = grpc.insecure_channel("unix://" + sock)
ident = lambda b: b
def call(method, body, timeout=30):
    f = ch.unary_unary(method, request_serializer=ident, response_deserializer=ident)
    try:
        return 0, f(body, timeout=timeout, wait_for_ready=True)
    except grpc.RpcError as e:
        return e.code().value[0], e.details()
def field1(buf):  # field 1, wire type 2 (a string): tag 0x0a, one-byte length
    assert buf[0] == 0x0a, buf
    return buf[2:2 + buf[1]].decode()
what = sys.argv[2]
if what == "info":
    rc, r = call("/csi.v1.Identity/GetPluginInfo", b"")
    print(rc, field1(r))
elif what == "nodeinfo":
    rc, r = call("/csi.v1.Node/NodeGetInfo", b"")
    print(rc, field1(r))
elif what == "unknown":
    print(call("/csi.v1.Controller/CreateVolume", b"")[0], call("/nope/Nope", b"")[0])
elif what == "malformed":
    # field 1 (volume_id) claiming 100 bytes but giving 3; then a bad wire type 7
    print(call("/csi.v1.Node/NodeUnstageVolume", b"\x0a\x64abc")[0], call("/csi.v1.Node/NodeUnstageVolume", b"\x0f")[0])
elif what == "big":
    body = b"\x0a\x05vol-1\x12" + bytes([0x80 | (200000 & 0x7f), 0x80 | ((200000 >> 7) & 0x7f), 200000 >> 14]) + b"/" * 200000
    print(call("/csi.v1.Node/NodeUnstageVolume", body)[0])
elif what == "many":
    out = []
    def one():
        out.append(call("/csi.v1.Identity/GetPluginInfo", b"")[0])
    ts = [threading.Thread(target=one) for _ in range(64)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(out.count(0))
EOF
raw() { "$PY" $T/raw.py $S "$@"; }
check "GetPluginInfo with raw bytes and no stubs: OK, name csi.bulwark.example" test "$(raw info)" = "0 csi.bulwark.example"
check "NodeGetInfo: the node id" test "$(raw nodeinfo)" = "0 host-$BW_ID"
check "Controller and unknown methods: UNIMPLEMENTED (12)" test "$(raw unknown)" = "12 12"
check "malformed protobuf (truncated field, bad wire type): INVALID_ARGUMENT (3)" test "$(raw malformed)" = "3 3"
check "a 200 KB request: RESOURCE_EXHAUSTED (8), the 64 KiB bound" test "$(raw big)" = 8
check "64 concurrent calls (16 served at once): all answered OK" test "$(raw many)" = 64
check "...and the plugin still answers" test "$(raw info)" = "0 csi.bulwark.example"

kill -9 $PID; wait $PID 2>/dev/null
check "a killed plugin leaves its socket file behind" test -S $S
start
check "a restart over the stale socket file serves again" wait_for 100 sh -c "test \"\$($PY $T/raw.py $S info)\" = '0 csi.bulwark.example'"
kill $PID; wait $PID; rc=$?
check "SIGTERM: exit 0 and the socket file is removed" test $rc -eq 0 -a ! -e $S
: > $S
bulwark-csi --endpoint "unix://$S" 2> $T/busy.err; rc=$?
check "a regular file in the socket's place: exit 1 with a message, the file kept" \
  sh -c "test $rc -eq 1 && grep -q 'cannot listen' $T/busy.err && test -f $S"
bulwark-csi --endpoint tcp://127.0.0.1:1 2> $T/tcp.err; rc=$?
check "a non-unix endpoint is refused" sh -c "test $rc -eq 1 && grep -q 'not a unix socket' $T/tcp.err"
check "--help works" sh -c "bulwark-csi --help | grep -q endpoint"
finish
