#!/usr/bin/env bash
# `bulwark net up` on a machine where bpffs is not mounted (a fresh boot): it mounts bpffs itself
# and comes up; where it must not mount one (`ip netns exec`'s private /sys), it names the cause
# and starts nothing; and a net up that fails part-way removes the device it created.
# The unmounted case runs in a private mount namespace (unshare -m): the host's bpffs, which
# other tests use concurrently, is never touched.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cluster.sh"
require_root
bpffs_ensure
net_cluster_up a
dev=bwg${BW_ID}a sock=/var/run/wireguard/bwg${BW_ID}a.sock
gone() { ! nsx "${NS[a]}" ip link show "$dev" >/dev/null 2>&1 && [ ! -e "$sock" ] &&
  ! pgrep -f "wireguard-go $dev" >/dev/null; }

# 1. bpffs unmounted: a private mount namespace with /sys/fs/bpf unmounted, bulwark started from
# a shell inside it (as on a fresh host). A PID namespace too, so that its wireguard-go cannot
# outlive the test.
out=$(unshare -m -p -f --mount-proc --propagation private bash -c '
  umount /sys/fs/bpf 2>/dev/null
  echo "before: $(stat -f -c %T /sys/fs/bpf)"
  nsenter --net=/run/netns/'"${NS[a]}"' bulwark net up --config '"${CONF[a]}"' --pin-dir '"${PIN[a]}"' 2>&1
  echo "net-up-rc: $?"
  echo "after: $(stat -f -c %T /sys/fs/bpf)"
  ls '"${PIN[a]}"' | sed "s/^/pin: /"
  nsenter --net=/run/netns/'"${NS[a]}"' bulwark datapath status --pin-dir '"${PIN[a]}"' >/dev/null 2>&1
  echo "status-rc: $?"
  # wireguard-go lives in this PID namespace: stop it cleanly before the namespace dies.
  nsenter --net=/run/netns/'"${NS[a]}"' bulwark net down --config '"${CONF[a]}"' --pin-dir '"${PIN[a]}"' >/dev/null 2>&1
  for i in $(seq 50); do [ -e '"$sock"' ] || break; sleep 0.1; done' 2>&1)
printf '%s\n' "$out" | sed 's/^/# /'
check "bpffs was not mounted in the private namespace" grep -qx "before: sysfs" <<<"$out"
check "net up succeeds without bpffs mounted" grep -qx "net-up-rc: 0" <<<"$out"
check "...because it mounted bpffs on /sys/fs/bpf" grep -qx "after: bpf_fs" <<<"$out"
check "...and says so" grep -q "mounted bpffs on /sys/fs/bpf" <<<"$out"
check "...and pinned its maps there" grep -qx "pin: bw_peer_v4" <<<"$out"
check "...which the datapath status reads" grep -qx "status-rc: 0" <<<"$out"
check "the host's bpffs was left alone (still mounted, no pins of that run)" \
  sh -c "[ \"\$(stat -f -c %T /sys/fs/bpf)\" = bpf_fs ] && [ ! -e ${PIN[a]} ]"
check "...and nothing of it is left" wait_for 50 gone

# 2. Under `ip netns exec` (a private mount namespace with a fresh /sys) bpffs must not be mounted:
# the pins would die with that namespace. It refuses, names the cause, and starts nothing.
out=$(ip netns exec "${NS[a]}" bulwark net up --config "${CONF[a]}" --pin-dir "${PIN[a]}" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check "net up under ip netns exec fails (exit $rc)" test "$rc" -ne 0
check "...naming the cause: no bpffs, and a private mount namespace" \
  grep -q "not a bpffs mount in this mount namespace, a private one made for us" <<<"$out"
check "...before starting anything (no device, no wireguard-go, no socket)" gone

# 3. A net up that fails after creating the device (an uplink that does not exist) rolls back.
sed "s/^Uplinks *=.*/Uplinks = nouplink$BW_ID/" "${CONF[a]}" > "$TMP/bad.conf"
check "the broken configuration names a missing uplink" grep -q "nouplink$BW_ID" "$TMP/bad.conf"
out=$(nsx "${NS[a]}" bulwark net up --config "$TMP/bad.conf" --pin-dir "${PIN[a]}" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check "net up with a missing uplink fails (exit $rc)" test "$rc" -ne 0
check "...and rolls back: no device, no wireguard-go, no socket" gone
check "...saying so" grep -q "rolled back: removed $dev" <<<"$out"
check "a good net up still works afterwards" net a up

# The same one check guards `bulwark datapath attach` and bulwarkd.
why="not a bpffs mount in this mount namespace, a private one made for us"
out=$(ip netns exec "${NS[a]}" bulwark datapath attach --uplink uplink --wg-dev "$dev" --pin-dir "${PIN[a]}" 2>&1); rc=$?
check "datapath attach under ip netns exec fails (exit $rc), naming the cause" \
  sh -c '[ "$1" -ne 0 ] && printf "%s" "$2" | grep -q "$3"' _ "$rc" "$out" "$why"
out=$(ip netns exec "${NS[a]}" timeout 30 bulwarkd --config "${CONF[a]}" --pin-dir "${PIN[a]}" 2>&1); rc=$?
check "bulwarkd under ip netns exec exits at once (exit $rc), naming the cause" \
  sh -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ] && printf "%s" "$2" | grep -q "$3"' _ "$rc" "$out" "$why"
finish
