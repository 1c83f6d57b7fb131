#!/usr/bin/env bash
# bulwarkd configured the way the DaemonSet does it: the node file and the peer files are two
# kubelet-style ConfigMap volumes (files are symlinks through ..data; an update writes a new
# timestamped directory and renames ..data onto it), the node file has no Name (NODE_NAME), and
# the peer set is shared by all nodes, so it holds this node's own file. Checked: three successive
# ..data swaps are each applied within 1 s (the peers directory is itself a symlink into ..data,
# so a watch that followed it would be dead after the first swap); the own file is ignored, said
# once in the log, and never reaches WireGuard or the datapath.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a b c

# kube_update VOL SRC: what kubelet's AtomicWriter does with the payload in directory SRC.
kube_update() {
  local vol=$1 src=$2 ts old name
  ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$RANDOM$RANDOM"
  mkdir -p "$vol"
  old=$(readlink "$vol/..data" || true)
  cp -r "$src" "$vol/$ts"
  for name in $(ls "$src"); do [ -L "$vol/$name" ] || ln -s "..data/$name" "$vol/$name"; done
  ln -s "$ts" "$vol/..data_tmp"
  mv -T "$vol/..data_tmp" "$vol/..data"
  date +%s%N > "$TMP/swapped"   # the moment the update is visible: latency counts from here
  for name in $(ls "$vol"); do [ -e "$src/$name" ] || rm -f "$vol/$name"; done
  [ -z "$old" ] || rm -rf "${vol:?}/$old"
}

mkdir -p "$TMP/state-a" "$TMP/src-node" "$TMP/src-peers/peers.d"
for x in a b c; do (umask 077; wg genkey > "$TMP/$x.key"); wg pubkey < "$TMP/$x.key" > "$TMP/$x.pub"; done
install -m 0600 "$TMP/a.key" "$TMP/state-a/wg.key"
grep -v '^Name = ' "${CONF[a]}" | sed "s|^PeersDir = .*|PeersDir = $TMP/vol-peers/peers.d|" > "$TMP/src-node/bulwark.conf"
cluster_peer_file "$TMP/src-peers/peers.d/a.conf" "$(cat "$TMP/a.pub")" 1
cluster_peer_file "$TMP/src-peers/peers.d/b.conf" "$(cat "$TMP/b.pub")" 2
kube_update "$TMP/vol-node" "$TMP/src-node"
kube_update "$TMP/vol-peers" "$TMP/src-peers"

nsenter --net="/run/netns/${NS[a]}" env NODE_NAME=a bulwarkd --config "$TMP/vol-node/bulwark.conf" \
  --pin-dir "${PIN[a]}" > "$TMP/agent.log" 2>&1 &
agent=$!
at_exit "kill $agent"
check "bulwarkd comes up from ConfigMap-style volumes, Name from NODE_NAME" \
  wait_for 300 grep -q "watching $TMP/vol-peers/peers.d" "$TMP/agent.log"
check "...named itself after NODE_NAME" grep -q "^node a:" <(nsx "${NS[a]}" env NODE_NAME=a bulwark net status --config "$TMP/vol-node/bulwark.conf" --pin-dir "${PIN[a]}" 2>&1)

wgpeers() { nsx "${NS[a]}" wg show "bwg${BW_ID}a" peers; }
dp() { nsx "${NS[a]}" bulwark datapath peers --pin-dir "${PIN[a]}"; }
allowed() { nsx "${NS[a]}" wg show "bwg${BW_ID}a" allowed-ips; }
check "own peer file ignored: WireGuard has only b" test "$(wgpeers)" = "$(cat "$TMP/b.pub")"
check "...and the datapath does not map this node's own pods" fails grep -q '198.18.1.0/24' <(dp)
check "...b's pods are mapped" grep -q '198.18.2.0/24' <(dp)

syncs() { grep -c 'sync: peers' "$TMP/agent.log"; }
applied_after() { # count cmd...: ms from the ..data rename until the agent logged sync count+1
  local n=$1; shift
  "$@"
  for _ in $(seq 500); do
    if [ "$(syncs)" -gt "$n" ]; then echo $(( ($(date +%s%N) - $(cat "$TMP/swapped")) / 1000000 )); return 0; fi
    sleep 0.01
  done
  echo 99999
}

# Swap 1: node c joins.
cluster_peer_file "$TMP/src-peers/peers.d/c.conf" "$(cat "$TMP/c.pub")" 3
n=$(syncs); ms=$(applied_after "$n" kube_update "$TMP/vol-peers" "$TMP/src-peers")
check "..data swap 1 (c joins) applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...c is in WireGuard and the datapath" sh -c "nsenter --net=/run/netns/${NS[a]} wg show bwg${BW_ID}a peers | grep -q '$(cat "$TMP/c.pub")'"
check "...c's pods are mapped" grep -q '198.18.3.0/24' <(dp)

# Swap 2: b gets another prefix.
cluster_peer_file "$TMP/src-peers/peers.d/b.conf" "$(cat "$TMP/b.pub")" 2 "198.18.2.0/24, fd00:10:2::/64, 198.18.99.0/24"
n=$(syncs); ms=$(applied_after "$n" kube_update "$TMP/vol-peers" "$TMP/src-peers")
check "..data swap 2 (b's prefixes change) applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...the new prefix is in WireGuard" grep -q '198.18.99.0/24' <(allowed)

# Swap 3: c leaves.
rm "$TMP/src-peers/peers.d/c.conf"
n=$(syncs); ms=$(applied_after "$n" kube_update "$TMP/vol-peers" "$TMP/src-peers")
check "..data swap 3 (c leaves) applied within 1 s (${ms} ms)" test "$ms" -le 1000
check "...c left WireGuard" fails grep -q "$(cat "$TMP/c.pub")" <(wgpeers)
check "...and the datapath" fails grep -q '198.18.3.0/24' <(dp)

check "the own peer file is reported exactly once, however many syncs" test "$(grep -c 'is this node' "$TMP/agent.log")" -eq 1
check "...naming the file" grep -q "peers.d/a.conf is this node" "$TMP/agent.log"

# The node file's volume is watched the same way: a swap there is applied too (b leaves because
# the peers now come from another directory holding only a).
mkdir -p "$TMP/src-peers2/peers.d"
cp "$TMP/src-peers/peers.d/a.conf" "$TMP/src-peers2/peers.d/"
kube_update "$TMP/vol-peers2" "$TMP/src-peers2"
sed -i "s|^PeersDir = .*|PeersDir = $TMP/vol-peers2/peers.d|" "$TMP/src-node/bulwark.conf"
kube_update "$TMP/vol-node" "$TMP/src-node"
check "a node file swap is applied too (new PeersDir: only the own file, so no peer)" wait_for 20 sh -c "[ -z \"\$(nsenter --net=/run/netns/${NS[a]} wg show bwg${BW_ID}a peers)\" ]"

check "no sync keeps re-adding a peer (+1 forever)" test "$(grep -c 'peers +1 ~0 -0' "$TMP/agent.log")" -le 1
kill -TERM $agent; wait $agent
finish
