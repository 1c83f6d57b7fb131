#!/usr/bin/env bash
# Issue 11: no pod address in clear on the wire at any depth. Two nodes with wireguard-go and the
# datapath; the wire (the cloud host's view) is captured and every frame the nodes emit is parsed
# down through VLAN tags, encapsulations, fragments and ICMP quotes (tests/wire.py). Shapes, with
# node encryption off and on, IPv4 and IPv6:
#   ICMP errors from nodes about pod packets: time exceeded (TTL/hop limit 1 and 2), unreachable
#   for a vanished pod, fragmentation needed / packet too big; every tunnel device the kernel
#   offers (ipip, sit, gre, gretap, ip6gre, ip6tnl, vxlan 4789 / 8472, geneve) carrying pod
#   traffic, VXLAN fragmented by the uplink MTU; VLAN devices (reorder_hdr off, QinQ) when the
#   kernel has 8021q; hand-made frames of every encapsulation, tag and ICMP error sent through the
#   uplink's egress hook (for what the kernel here cannot build); forwarded traffic with UDP source
#   port 51820. A node marker and a deep attacker marker prove the capture and the parser work.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
cluster_up || die "cluster setup"
check "datapath attached on node A" cluster_attach a
check "datapath attached on node B" cluster_attach b
WIRE="python3 $BULWARK_TOP/tests/wire.py"
MAC_A=$(link_mac "$NS_A" uplink)
MAC_B=$(link_mac "$NS_B" uplink)

# ICMP errors without the kernel's rate limit, so every shape produces its error.
for ns in "$NS_A" "$NS_B"; do
  nsx "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
done
# Node B's pod link is narrower than WireGuard's: pod A's 1400-byte packets need PMTU errors.
nsx "$NS_B" ip link set pod mtu 1300

# An outside host on the wire (198.19.1.9, fd00:30::9: outside NodeCIDRs and the pod CIDRs).
ip link add atk netns "$NS_WIRE" type veth peer name atk0 netns "$NS_WIRE"
nsx "$NS_WIRE" ip link set atk master br0 up
nsx "$NS_WIRE" ip link set atk0 up
nsx "$NS_WIRE" ip addr add 198.19.1.9/32 dev atk0
nsx "$NS_WIRE" ip addr add fd00:30::9/128 dev atk0 nodad
nsx "$NS_WIRE" ip route add 198.19.0.0/24 dev atk0
nsx "$NS_WIRE" ip route add 198.18.2.0/24 via 198.19.0.1 dev atk0
nsx "$NS_WIRE" ip -6 route add fd00:20::/64 dev atk0
nsx "$NS_WIRE" ip -6 route add fd00:10:2::/64 via fd00:20::1 dev atk0
MAC_ATK=$(link_mac "$NS_WIRE" atk0)
nsx "$NS_A" ip route add 198.19.1.9/32 dev uplink
nsx "$NS_A" ip -6 route add fd00:30::9/128 dev uplink

# ---- tunnel devices on node A toward node B, each routing one pod B address ----
TUNNELS=() TUN_TARGETS=()
tunnel() { # name target l2 type args...
  local name=$1 target=$2 l2=$3; shift 3
  if ! nsx "$NS_A" ip link add "$name" type "$@" 2>/dev/null; then
    # Not a skip: the hand-made frames below carry this encapsulation through the same datapath,
    # and tests/vm/datapath_no_leaks_kernel.sh builds the real device on Debian's kernel.
    echo "# tunnel $1 ($*): not offered by this kernel; covered by hand-made frames"
    return 0
  fi
  nsx "$NS_A" ip link set "$name" up
  if [ "$l2" = l2 ]; then
    case $target in *:*) nsx "$NS_A" ip -6 addr add fd00:10:1::3${#TUNNELS[@]}/128 dev "$name" nodad 2>/dev/null ;;
                    *) nsx "$NS_A" ip addr add "198.18.1.$((30 + ${#TUNNELS[@]}))/32" dev "$name" ;; esac
    nsx "$NS_A" ip neigh replace "$target" lladdr 02:00:00:00:00:42 dev "$name"
  fi
  nsx "$NS_A" ip route replace "$target" dev "$name"
  TUNNELS+=("$name") TUN_TARGETS+=("$target")
}
tunnel bt-ipip 198.18.2.210 l3 ipip local 198.19.0.1 remote 198.19.0.2
tunnel bt-sit fd00:10:2::210 l3 sit local 198.19.0.1 remote 198.19.0.2
tunnel bt-gre 198.18.2.211 l3 gre local 198.19.0.1 remote 198.19.0.2
tunnel bt-gretap 198.18.2.212 l2 gretap local 198.19.0.1 remote 198.19.0.2
tunnel bt-ip6gre fd00:10:2::212 l3 ip6gre local fd00:20::1 remote fd00:20::2
tunnel bt-6in6 fd00:10:2::213 l3 ip6tnl mode ip6ip6 local fd00:20::1 remote fd00:20::2
tunnel bt-4in6 198.18.2.213 l3 ip6tnl mode ipip6 local fd00:20::1 remote fd00:20::2
tunnel bt-geneve 198.18.2.214 l2 geneve id 7 remote 198.19.0.2
tunnel bt-vx4789 198.18.2.215 l2 vxlan id 42 local 198.19.0.1 remote 198.19.0.2 dstport 4789 dev uplink
tunnel bt-vx8472 fd00:10:2::215 l2 vxlan id 43 local fd00:20::1 remote fd00:20::2 dstport 8472 dev uplink
check "VXLAN (the one tunnel this host's kernel always has) is among the tunnels" test "${#TUNNELS[@]}" -ge 2
# VXLAN fragmented by the uplink: a 1500-byte VXLAN device over a 1500-byte uplink.
if nsx "$NS_A" ip link add bt-vxfrag type vxlan id 44 local 198.19.0.1 remote 198.19.0.2 dstport 4789 2>/dev/null; then
  nsx "$NS_A" ip link set bt-vxfrag mtu 1500 up
  nsx "$NS_A" ip addr add 198.18.1.44/32 dev bt-vxfrag
  nsx "$NS_A" ip route add 198.18.2.216/32 dev bt-vxfrag
  nsx "$NS_A" ip neigh replace 198.18.2.216 lladdr 02:00:00:00:00:44 dev bt-vxfrag
fi
# VLAN devices with their tags in the frame (reorder_hdr off), single and QinQ.
VLANS=0
if nsx "$NS_A" ip link add link uplink name bv100 type vlan id 100 reorder_hdr off 2>/dev/null; then
  nsx "$NS_A" ip link set bv100 up
  nsx "$NS_A" ip addr add 198.19.100.1/24 dev bv100
  nsx "$NS_A" ip neigh replace 198.19.100.2 lladdr "$MAC_B" dev bv100
  nsx "$NS_A" ip route add 198.18.2.220/32 via 198.19.100.2 dev bv100
  nsx "$NS_A" ip -6 addr add fd00:20:100::1/64 dev bv100 nodad
  nsx "$NS_A" ip -6 neigh replace fd00:20:100::2 lladdr "$MAC_B" dev bv100
  nsx "$NS_A" ip -6 route add fd00:10:2::220/128 via fd00:20:100::2 dev bv100
  VLANS=1
  if nsx "$NS_A" ip link add link uplink name bv200 type vlan protocol 802.1ad id 200 2>/dev/null &&
     nsx "$NS_A" ip link add link bv200 name bv201 type vlan id 201 reorder_hdr off; then
    nsx "$NS_A" ip link set bv200 up; nsx "$NS_A" ip link set bv201 up
    nsx "$NS_A" ip addr add 198.19.201.1/24 dev bv201
    nsx "$NS_A" ip neigh replace 198.19.201.2 lladdr "$MAC_B" dev bv201
    nsx "$NS_A" ip route add 198.18.2.221/32 via 198.19.201.2 dev bv201
    VLANS=2
  fi
else
  echo "# VLAN devices: no 8021q in this kernel; hand-made tagged frames cover one and two tags"
fi

CRAFT="ipip4 4in6 sit4 6in6 gre4 gre6 gretap4 gretap6 vxlan4 vxlan6 vxlan8472_4 vxlan8472_6 geneve4 geneve6
       srv6 etherip4 etherip6 vxlanfrag4 vxlanfrag6 vxlanfrag_tail4 vxlanfrag_tail6 vlan1_4 vlan1_6 vlan2_4
       vlan2_6 icmperr4 icmperr6"

sum_counters() { # node: packets the datapath kept off the wire in clear
  echo $(( $(dp_counter "$1" redirected) + $(dp_counter "$1" dropped-no-peer) + $(dp_counter "$1" dropped-malformed) ))
}

one_mode() { # node encryption: false | true
  local enc=$1 tag="BW$BW_ID-$1" wgcap_a=$TMP/wg-a-$1.pcap wgcap_b=$TMP/wg-b-$1.pcap pa pb before after n
  local bg=()
  sed -i "s/^NodeEncryption = .*/NodeEncryption = $enc/" "$CONF_A" "$CONF_B"
  check "[$enc] apply NodeEncryption = $enc on node A" nsx "$NS_A" bulwark datapath apply --pin-dir "$PIN_A" --config "$CONF_A"
  check "[$enc] apply NodeEncryption = $enc on node B" nsx "$NS_B" bulwark datapath apply --pin-dir "$PIN_B" --config "$CONF_B"
  # What went into WireGuard (proof that each shape happened, and was encrypted).
  nsenter --net="/run/netns/$NS_A" tcpdump -i "$WG_A" -s 0 -U -n -w "$wgcap_a" >"$TMP/tcpdump-wga-$enc.log" 2>&1 &
  pa=$!; at_exit "kill $pa"
  nsenter --net="/run/netns/$NS_B" tcpdump -i "$WG_B" -s 0 -U -n -w "$wgcap_b" >"$TMP/tcpdump-wgb-$enc.log" 2>&1 &
  pb=$!; at_exit "kill $pb"
  wait_for 100 grep -q "listening on" "$TMP/tcpdump-wga-$enc.log"
  wait_for 100 grep -q "listening on" "$TMP/tcpdump-wgb-$enc.log"
  check "[$enc] the wire capture started (tcpdump listening)" wire_capture_start "$enc"

  # markers: node A -> the outside host (passes in clear: proves the capture sees node A's
  # frames in this window); the attacker's deep one (pod addresses under VLAN/GRE/ICMP quote)
  nsx "$NS_A" python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(sys.argv[1].encode(), ("198.19.1.9", 9))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.sendto(sys.argv[1].encode(), ("fd00:30::9", 9))' "$tag-NODE"
  nsx "$NS_WIRE" $WIRE send atk0 deep4 --src-mac "$MAC_ATK" --dst-mac "$MAC_A" --tag "$tag-ATK" >/dev/null

  # pod <-> pod baseline
  nsx "$NS_PA" ping -c 2 -i 0.2 -W 2 -q 198.18.2.2 >/dev/null
  nsx "$NS_PA" ping -6 -c 2 -i 0.2 -W 2 -q fd00:10:2::2 >/dev/null
  # ICMP errors from nodes: time exceeded at node B (TTL 2) and at node A (TTL 1, from pod B)
  nsx "$NS_PA" ping -c 1 -t 2 -W 1 198.18.2.2 >/dev/null
  nsx "$NS_PA" ping -6 -c 1 -t 2 -W 1 fd00:10:2::2 >/dev/null
  nsx "$NS_PB" ping -c 1 -t 1 -W 1 198.18.1.2 >/dev/null
  nsx "$NS_PB" ping -c 1 -t 2 -W 1 198.18.1.2 >/dev/null
  nsx "$NS_PB" ping -6 -c 1 -t 2 -W 1 fd00:10:1::2 >/dev/null
  # fragmentation needed / packet too big at node B (its pod link is 1300); forget the path MTU
  # the previous round learnt, or there is nothing to complain about
  for ns in "$NS_PA" "$NS_A"; do nsx "$ns" ip route flush cache; nsx "$ns" ip -6 route flush cache; done
  nsx "$NS_PA" ping -c 2 -i 0.3 -M do -s 1372 -W 1 198.18.2.2 >/dev/null
  nsx "$NS_PA" ping -6 -c 2 -i 0.3 -s 1352 -W 1 fd00:10:2::2 >/dev/null
  # a vanished pod: node B's neighbour resolution fails -> host / address unreachable
  nsx "$NS_PA" ping -c 1 -W 5 198.18.2.99 >/dev/null & bg+=($!)
  nsx "$NS_PA" ping -6 -c 1 -W 5 fd00:10:2::99 >/dev/null & bg+=($!)
  # every tunnel device, and VLAN devices, carrying pod A's packets
  before=$(sum_counters a)
  for t in "${TUN_TARGETS[@]}" 198.18.2.216 198.18.2.220 fd00:10:2::220 198.18.2.221; do
    case $t in *:*) nsx "$NS_PA" ping -6 -c 1 -W 1 "$t" >/dev/null & bg+=($!) ;;
                 *) nsx "$NS_PA" ping -c 1 -W 1 "$t" >/dev/null & bg+=($!) ;; esac
  done
  # VXLAN whose outer datagram the uplink fragments (node A's own 1478-byte packet)
  nsx "$NS_A" ping -c 1 -W 1 -I 198.18.1.44 -s 1450 198.18.2.216 >/dev/null 2>&1 & bg+=($!)
  # hand-made frames of every shape through node A's uplink egress hook
  n=$(nsx "$NS_A" $WIRE send uplink $CRAFT --src-mac "$MAC_A" --dst-mac "$MAC_B" --tag "$tag-CRAFT")
  # forwarded from outside toward pod B, from UDP port 51820
  nsx "$NS_WIRE" python3 -c 'import socket
for fam, src, dst in ((socket.AF_INET, "198.19.1.9", "198.18.2.2"), (socket.AF_INET6, "fd00:30::9", "fd00:10:2::2")):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((src, 51820)); s.sendto(b"forwarded", (dst, 9))'
  wait "${bg[@]}"
  after=$(sum_counters a)
  check "[$enc] all $(echo $CRAFT | wc -w) kinds of hand-made frames were sent (${n:-0} frames)" test "${n:-0}" -ge 29
  check "[$enc] node A's datapath kept the tunnels' and hand-made frames off the wire ($before -> $after, >= +$((${n:-0} + ${#TUN_TARGETS[@]})))" \
    test "$after" -ge $((before + ${n:-0} + ${#TUN_TARGETS[@]}))

  check "[$enc] the wire capture ran to the end without losing packets" wire_capture_stop
  kill -INT "$pa" "$pb"; wait "$pa" "$pb" 2>/dev/null
  check "[$enc] the capture parses (tests/wire.py)" wire_scan --marker "$tag-NODE" "$tag-ATK" "$tag-CRAFT"
  check "[$enc] the capture holds frames from the nodes ($(wire_json 'd["frames"]') frames)" \
    test "$(wire_json 'd["by_mac"].get("'"$MAC_A"'", 0)')" -gt 5
  check "[$enc] node A's marker is in the capture (IPv4 and IPv6)" test "$(wire_json "d['markers']['$tag-NODE']['frames']")" -ge 2
  check "[$enc] the parser finds the pod address under VLAN/GRE/ICMP quote in the attacker's marker" \
    test "$(wire_json "d['markers']['$tag-ATK']['pod_depth']")" -ge 2
  check "[$enc] none of the hand-made frames reached the wire" test "$(wire_json "d['markers']['$tag-CRAFT']['frames']")" -eq 0
  local leaks; leaks=$(wire_json 'len(d["leaks"])')
  [ "$leaks" -eq 0 ] || wire_json '"\n".join(json.dumps(l) for l in d["leaks"][:20])' >&2
  check "[$enc] zero packets from the nodes with a pod address in clear at any depth ($leaks)" test "$leaks" -eq 0

  # each shape happened, and went into WireGuard instead of the wire
  check "[$enc] node B's time exceeded (IPv4) went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp[0] == 11' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node B's time exceeded (IPv6) went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp6 and ip6[40] == 3' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node A's time exceeded for pod B went into WireGuard" test "$(tcpdump -n -r "$wgcap_a" 'icmp[0] == 11' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node B's fragmentation needed went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp[0] == 3 and icmp[1] == 4' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node B's packet too big went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp6 and ip6[40] == 2' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node B's host unreachable (vanished pod) went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp[0] == 3 and icmp[1] == 1' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] node B's address unreachable (vanished pod, IPv6) went into WireGuard" test "$(tcpdump -n -r "$wgcap_b" 'icmp6 and ip6[40] == 1' 2>/dev/null | wc -l)" -ge 1
  check "[$enc] forwarded UDP from port 51820 to pod B went into WireGuard (IPv4 and IPv6)" \
    test "$(tcpdump -n -r "$wgcap_a" 'udp src port 51820' 2>/dev/null | wc -l)" -ge 2
}

one_mode false
one_mode true
finish
