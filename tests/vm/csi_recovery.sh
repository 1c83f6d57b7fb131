#!/usr/bin/env bash
# bulwark-csi when things go wrong, over its socket with a real gRPC client: a wrong key; devices
# and volumes holding data are never formatted (a foreign filesystem on the disk, raw block data
# inside the volume); concurrent stages of one volume; the plugin
# SIGKILLed mid-wipe and NodeStageVolume retried finishes the wipe without reformatting.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/csi_lib"
token() { cryptsetup token export --token-id 0 "$1" | "$PY" -c "import json,sys; t=json.load(sys.stdin); print(t['$2'])"; }
mkdir -p $T/staging
csi_start

# --- wrong key ---
newdev d1 32M
check "stage (block) with the right key" c Node/NodeStageVolume "$(stage_req pvc-k "$d1" "$(cap block)" $T/staging/k false)"
head -c 1M /dev/urandom > $T/data
dd if=$T/data of="$(mapped pvc-k)" bs=1M oflag=direct status=none
c Node/NodeUnstageVolume "$(unstage_req pvc-k $T/staging/k)" > /dev/null
check "stage with a wrong key: FAILED_PRECONDITION (9), 'wrong key'" \
  bash -c "test \$(code Node/NodeStageVolume '$(stage_req pvc-k "$d1" "$(cap block)" $T/staging/k false "$WRONG64")') -eq 9 && grep -q 'wrong key' $T/last.err"
check "...nothing mapped" bash -c "! dmsetup ls | grep -q '^bw-'"
check "...the right key still opens it with the data intact" \
  bash -c "c Node/NodeStageVolume '$(stage_req pvc-k "$d1" "$(cap block)" $T/staging/k false)' >/dev/null && same_data \$(mapped pvc-k) $T/data"
check "the key as 64 hex digits opens it too" \
  c Node/NodeStageVolume "$(stage_req pvc-k "$d1" "$(cap block)" $T/staging/k false "$(od -An -v -tx1 $T/key | tr -d ' \n')")"

# --- raw block data inside a volume is never formatted when it is staged for mount ---
check "the same volume (raw data, no filesystem) staged as ext4: FAILED_PRECONDITION (9), not formatted" \
  bash -c "c Node/NodeUnstageVolume '$(unstage_req pvc-k $T/staging/k)' >/dev/null;
    test \$(code Node/NodeStageVolume '$(stage_req pvc-k "$d1" "$(cap ext4)" $T/staging/k false)') -eq 9 && grep -q 'refusing to format' $T/last.err"
check "...the block data is intact" same_data "$(mapped pvc-k)" $T/data
c Node/NodeUnstageVolume "$(unstage_req pvc-k $T/staging/k)" > /dev/null

# --- a foreign filesystem on the disk is never formatted ---
newdev d2 32M
mkfs.ext4 -q "$d2"; before=$(sum "$d2")
check "a disk holding ext4: FAILED_PRECONDITION (9) naming it" \
  bash -c "test \$(code Node/NodeStageVolume '$(stage_req pvc-f "$d2" "$(cap ext4)" $T/staging/f false)') -eq 9 && grep -q ext4 $T/last.err"
check "...and the disk is unchanged" test "$(sum "$d2")" = "$before"
check "...nothing mounted at the staging path" fails mountpoint -q $T/staging/f

# --- concurrent stages of one volume: one works, the other is ABORTED or finds it done ---
newdev d4 40M
c1 Node/NodeStageVolume "$(stage_req pvc-c "$d4" "$(cap ext4)" $T/staging/c false)" > $T/c1.out 2> $T/c1.err & a=$!
c1 Node/NodeStageVolume "$(stage_req pvc-c "$d4" "$(cap ext4)" $T/staging/c false)" > $T/c2.out 2> $T/c2.err & b=$!
wait $a; ra=$?; wait $b; rb=$?
check "concurrent stages: each OK or ABORTED (10), at least one OK ($ra, $rb)" \
  bash -c "[[ $ra =~ ^(0|10)$ && $rb =~ ^(0|10)$ ]] && [ $((ra * rb)) -eq 0 ]"
check "...a retry after ABORTED: OK" c Node/NodeStageVolume "$(stage_req pvc-c "$d4" "$(cap ext4)" $T/staging/c false)"
check "...one keyslot, one filesystem mounted once" \
  bash -c "test \$(cryptsetup luksDump $d4 | grep -c '^  [0-9]*: luks2') -eq 1 && test \$(grep -c ' $T/staging/c ' /proc/self/mountinfo) -eq 1"
c Node/NodeUnstageVolume "$(unstage_req pvc-c $T/staging/c)" > /dev/null

# --- SIGKILL mid-wipe, restart, retry: the wipe finishes, no reformat ---
newdev d5 48M
: > $T/csi.log
c1 Node/NodeStageVolume "$(stage_req pvc-w "$d5" "$(cap ext4)" $T/staging/w true)" > $T/w.out 2> $T/w.err & cl=$!
wait_for 3000 grep -q "pvc-w': integrity wipe \(8\|1[0-9]\|2[0-9]\)/" $T/csi.log
kill -9 "$CSI_PID"; wait "$CSI_PID" 2>/dev/null; CSI_PID=
wait $cl 2>/dev/null
check "the plugin was SIGKILLed mid-wipe (progress seen, token state wiping)" \
  bash -c "grep -q 'integrity wipe' $T/csi.log && test \$(cryptsetup token export --token-id 0 $d5 | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])') = wiping"
u0=$(cryptsetup luksUUID "$d5"); off=$(token "$d5" wipe_offset)
: > $T/csi.log
csi_start
c Identity/Probe > /dev/null 2>&1 || c Identity/Probe > /dev/null 2>&1   # reconnects the long-lived client
# A fresh client, as a restarted kubelet plugin watcher would dial: the long-lived client's
# channel still holds the killed plugin's connection (its first call fails UNAVAILABLE).
check "after a restart, NodeStageVolume retried: OK, mounted" \
  bash -c "c1 Node/NodeStageVolume '$(stage_req pvc-w "$d5" "$(cap ext4)" $T/staging/w true)' >/dev/null && mountpoint -q $T/staging/w"
tail -n 20 $T/csi.log | sed 's/^/# plugin: /'   # what the plugin said about the retry
first=$(grep -o "pvc-w': integrity wipe [0-9]*/" $T/csi.log | head -1 | grep -o '[0-9]*/' | tr -d /)
check "...the wipe resumed at the recorded offset ($((off >> 20)) MiB), not 0 (first progress: ${first:-none} MiB)" \
  test "${first:--1}" -eq $((off >> 20)) -a "$off" -gt 0
check "...without reformatting (same UUID, one keyslot, token ready)" \
  bash -c "test \$(cryptsetup luksUUID $d5) = $u0 && test \$(cryptsetup luksDump $d5 | grep -c '^  [0-9]*: luks2') -eq 1 && test \$(cryptsetup token export --token-id 0 $d5 | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])') = ready"
cp $T/data $T/staging/w/data; sync
c Node/NodeUnstageVolume "$(unstage_req pvc-w $T/staging/w)" > /dev/null
check "...and its filesystem is clean after use" \
  bash -c "bulwark volume stage --id pvc-w --device $d5 --key-file $T/key >/dev/null && e2fsck -fn \$(mapped pvc-w) >/dev/null 2>&1"
bulwark volume unstage --id pvc-w

check "the plugin never logged a key" bash -c "! grep -qF '$KEY64' $T/csi.log && ! grep -qF '$WRONG64' $T/csi.log"
finish
