#!/usr/bin/env bash
# Harness smoke test on the host kernel: load and attach a trivial tc program in a fresh netns,
# send traffic through it, read its counter with bpftool.
. "$(dirname "$0")/../lib.sh"
require_root
bpffs_ensure

a=$(netns_new a)
b=$(netns_new b)
ip link add "bw$BW_ID-a" netns "$a" type veth peer name "bw$BW_ID-b" netns "$b"
ip -n "$a" link set "bw$BW_ID-a" up
ip -n "$b" link set "bw$BW_ID-b" up
ip -n "$a" addr add 198.18.0.1/30 dev "bw$BW_ID-a"
ip -n "$b" addr add 198.18.0.2/30 dev "bw$BW_ID-b"

pin=/sys/fs/bpf/bw-test-$BW_ID
at_exit "rm -rf $pin"
check "bpftool loads the smoke program and pins it" \
  bpftool prog loadall "$BUILD/bw_smoke.bpf.o" "$pin" pinmaps "$pin/maps"
check "clsact qdisc added" nsx "$a" tc qdisc add dev "bw$BW_ID-a" clsact
check "tc filter attached from the pinned program" \
  nsx "$a" tc filter add dev "bw$BW_ID-a" ingress bpf direct-action pinned "$pin/bw_smoke"

check "ping across the veth" ip netns exec "$b" ping -c 5 -i 0.05 -W 1 198.18.0.1 -q

pkts=$(bpftool -j map dump pinned "$pin/maps/bw_smoke_stats" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["formatted"]["value"]["packets"])')
check "bpftool shows the counter by field name and it counted >= 5 packets ($pkts)" test "${pkts:-0}" -ge 5
check "the program is attached on the device" \
  sh -c "nsenter --net=/run/netns/$a tc filter show dev bw$BW_ID-a ingress | grep -q bw_smoke"
finish
