#!/usr/bin/env bash
# bulwark-csi driven over its unix socket by a real gRPC client (python3-grpcio): identity, the
# kubelet sequence stage -> publish -> write -> unpublish -> unstage -> stage again -> data intact
# for mount and block access, with and without integrity; idempotency; read-only publish; stats;
# expand (plain grows online, integrity refused); a volume staged by the plugin opens with `cryptsetup open` and the same key.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/csi_lib"
modprobe xfs 2>/dev/null || true
csi_start

# --- identity ---
c Identity/GetPluginInfo > $T/info.json; rc=$?
check "GetPluginInfo answers over the socket: name and vendor_version" \
  bash -c "test $rc -eq 0 && grep -q '\"name\": \"csi.bulwark.example\"' $T/info.json && grep -q vendor_version $T/info.json"
c Node/NodeGetCapabilities > $T/caps.json
check "NodeGetCapabilities: STAGE_UNSTAGE_VOLUME, EXPAND_VOLUME, GET_VOLUME_STATS" \
  bash -c "grep -q STAGE_UNSTAGE_VOLUME $T/caps.json && grep -q EXPAND_VOLUME $T/caps.json && grep -q GET_VOLUME_STATS $T/caps.json"
check "Probe: ready" bash -c "c Identity/Probe | grep -q '\"ready\": true'"
check "NodeGetInfo: the node id" bash -c "c Node/NodeGetInfo | grep -q '\"node_id\": \"vm-node\"'"
check "GetPluginCapabilities: no controller service" bash -c "! c Identity/GetPluginCapabilities | grep -q CONTROLLER_SERVICE"

# --- mount access, no integrity: the kubelet sequence ---
newdev d1 48M
st1=$T/staging/m1; mkdir -p $T/staging $T/pods/a $T/pods/b
check "NodeStageVolume (ext4, blank device) formats, makes the filesystem and mounts it at the staging path" \
  bash -c "c Node/NodeStageVolume '$(stage_req pvc-m "$d1" "$(cap ext4)" $st1 false)' >/dev/null && mountpoint -q $st1"
check "...ext4 inside the encrypted volume" test "$(blkid -o value -s TYPE "$(mapped pvc-m)")" = ext4
check "NodeStageVolume again: OK (idempotent)" c Node/NodeStageVolume "$(stage_req pvc-m "$d1" "$(cap ext4)" $st1 false)"
check "...still one mount at the staging path" test "$(grep -c " $st1 " /proc/self/mountinfo)" -eq 1
check "the same volume staged there as block: ALREADY_EXISTS (6)" \
  test "$(code Node/NodeStageVolume "$(stage_req pvc-m "$d1" "$(cap block)" $st1 false)")" -eq 6
check "NodePublishVolume: bind mount at the target (created by the plugin)" \
  bash -c "c Node/NodePublishVolume '$(publish_req pvc-m $st1 $T/pods/a/mount "$(cap ext4)" false)' >/dev/null && mountpoint -q $T/pods/a/mount"
check "NodePublishVolume again: OK (idempotent)" c Node/NodePublishVolume "$(publish_req pvc-m $st1 $T/pods/a/mount "$(cap ext4)" false)"
head -c 3M /dev/urandom > $T/data
cp $T/data $T/pods/a/mount/data && sync
check "NodePublishVolume readonly at a second target" c Node/NodePublishVolume "$(publish_req pvc-m $st1 $T/pods/b/mount "$(cap ext4)" true)"
check "...reads the data" cmp -s $T/pods/b/mount/data $T/data
check "...and cannot write" fails touch $T/pods/b/mount/x
check "the read-only target published again read-write: ALREADY_EXISTS (6)" \
  test "$(code Node/NodePublishVolume "$(publish_req pvc-m $st1 $T/pods/b/mount "$(cap ext4)" false)")" -eq 6
c Node/NodeGetVolumeStats "{\"volume_id\":\"pvc-m\",\"volume_path\":\"$T/pods/a/mount\"}" > $T/stats.json
check "NodeGetVolumeStats: bytes and inodes of the filesystem" "$PY" -c "
import json; u = json.load(open('$T/stats.json'))['usage']
b = [x for x in u if x['unit'] == 'BYTES'][0]; i = [x for x in u if x['unit'] == 'INODES'][0]
assert int(b['total']) > 20 << 20 and int(b['used']) >= 3 << 20 and int(i['total']) > 0, u"
size0=$(df -B1 --output=size $T/pods/a/mount | tail -1)
truncate -s 80M "${loopfile[$d1]}"; losetup -c "$d1"
check "NodeExpandVolume of a volume keyed by a secret, without the secret: FAILED_PRECONDITION (9)" \
  test "$(code Node/NodeExpandVolume "{\"volume_id\":\"pvc-m\",\"volume_path\":\"$T/pods/a/mount\"}")" -eq 9
c Node/NodeExpandVolume "{\"volume_id\":\"pvc-m\",\"volume_path\":\"$T/pods/a/mount\",\"staging_target_path\":\"$st1\",\"secrets\":{\"key\":\"$KEY64\"}}" > $T/expand.json; rc=$?
check "NodeExpandVolume (plain, published): grows the volume and the filesystem online" \
  bash -c "test $rc -eq 0 && grep -q capacity_bytes $T/expand.json && test \$(df -B1 --output=size $T/pods/a/mount | tail -1) -gt $((size0 + 24 * 1048576))"
check "NodeExpandVolume again: OK (idempotent)" c Node/NodeExpandVolume "{\"volume_id\":\"pvc-m\",\"volume_path\":\"$T/pods/a/mount\",\"secrets\":{\"key\":\"$KEY64\"}}"
check "NodeUnpublishVolume (both targets)" bash -c "c Node/NodeUnpublishVolume '$(unpublish_req pvc-m $T/pods/a/mount)' >/dev/null &&
  c Node/NodeUnpublishVolume '$(unpublish_req pvc-m $T/pods/b/mount)' >/dev/null"
check "...the targets are unmounted and removed" bash -c "! test -e $T/pods/a/mount && ! test -e $T/pods/b/mount"
check "NodeUnpublishVolume again: OK (idempotent)" c Node/NodeUnpublishVolume "$(unpublish_req pvc-m $T/pods/a/mount)"
m=$(mapped pvc-m)
check "NodeUnstageVolume: unmounts and closes the volume" \
  bash -c "c Node/NodeUnstageVolume '$(unstage_req pvc-m $st1)' >/dev/null && ! mountpoint -q $st1 && ! test -e $m"
check "NodeUnstageVolume again: OK (idempotent)" c Node/NodeUnstageVolume "$(unstage_req pvc-m $st1)"
check "cryptsetup opens the volume with the same key (standard LUKS2)" cryptsetup open --key-file $T/key "$d1" interop$BW_ID
mkdir -p $T/x; mount -o ro /dev/mapper/interop$BW_ID $T/x
check "...and its ext4 holds the data written through the plugin" cmp -s $T/x/data $T/data
umount $T/x; cryptsetup close interop$BW_ID
check "stage again after unstage (existing volume: no mkfs)" c Node/NodeStageVolume "$(stage_req pvc-m "$d1" "$(cap ext4)" $st1 false)"
c Node/NodePublishVolume "$(publish_req pvc-m $st1 $T/pods/a/mount "$(cap ext4)" false)" > /dev/null
check "...published again, the data is intact" cmp -s $T/pods/a/mount/data $T/data
c Node/NodeUnpublishVolume "$(unpublish_req pvc-m $T/pods/a/mount)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-m $st1)" > /dev/null

# --- block access with integrity ---
newdev d2 40M
st2=$T/staging/b2; mkdir -p $T/pods/c
check "NodeStageVolume (block, integrity): maps the volume" \
  bash -c "c Node/NodeStageVolume '$(stage_req pvc-b "$d2" "$(cap block)" $st2 true)' >/dev/null && test -b \$(bulwark volume status --id pvc-b --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"path\"])')"
check "...dm-integrity below it" test -b "$(mapped pvc-b)_dif"
check "...nothing mounted at the staging path" fails mountpoint -q $st2
check "NodePublishVolume (block): the device node bound on a file at the target" \
  bash -c "c Node/NodePublishVolume '$(publish_req pvc-b $st2 $T/pods/c/dev "$(cap block)" false)' >/dev/null && test -b $T/pods/c/dev"
check "NodePublishVolume (block) again: OK" c Node/NodePublishVolume "$(publish_req pvc-b $st2 $T/pods/c/dev "$(cap block)" false)"
dd if=$T/data of=$T/pods/c/dev bs=1M oflag=direct status=none
c Node/NodeGetVolumeStats "{\"volume_id\":\"pvc-b\",\"volume_path\":\"$T/pods/c/dev\"}" > $T/bstats.json
check "NodeGetVolumeStats (block): the device's bytes" "$PY" -c "
import json; u = json.load(open('$T/bstats.json'))['usage'][0]; assert u['unit'] == 'BYTES' and int(u['total']) > 16 << 20, u"
check "NodeExpandVolume of an integrity volume: FAILED_PRECONDITION (9)" \
  bash -c "test \$(code Node/NodeExpandVolume '{\"volume_id\":\"pvc-b\",\"volume_path\":\"$T/pods/c/dev\"}') -eq 9 && grep -q integrity $T/last.err"
check "NodeUnpublishVolume (block): unbinds and removes the file" \
  bash -c "c Node/NodeUnpublishVolume '$(unpublish_req pvc-b $T/pods/c/dev)' >/dev/null && ! test -e $T/pods/c/dev"
check "NodeUnstageVolume (block, integrity): the _dif device goes too" \
  bash -c "c Node/NodeUnstageVolume '$(unstage_req pvc-b $st2)' >/dev/null && ! dmsetup ls | grep -q bw-.*_dif"
c Node/NodeStageVolume "$(stage_req pvc-b "$d2" "$(cap block)" $st2 true)" > /dev/null
c Node/NodePublishVolume "$(publish_req pvc-b $st2 $T/pods/c/dev "$(cap block)" false)" > /dev/null
check "stage + publish again: the block data is intact" same_data $T/pods/c/dev $T/data
c Node/NodeUnpublishVolume "$(unpublish_req pvc-b $T/pods/c/dev)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-b $st2)" > /dev/null
check "cryptsetup opens the integrity volume with the same key" cryptsetup open --key-file $T/key "$d2" interop$BW_ID
check "...and reads the same data" same_data /dev/mapper/interop$BW_ID $T/data
cryptsetup close interop$BW_ID

# --- mount access with integrity (ext4), xfs, block access without integrity ---
newdev d3 40M
st3=$T/staging/m3; mkdir -p $T/pods/d
check "NodeStageVolume (ext4, integrity)" c Node/NodeStageVolume "$(stage_req pvc-mi "$d3" "$(cap ext4)" $st3 true)"
check "...ext4 mounted at the staging path, dm-integrity below" \
  bash -c "test \"\$(findmnt -n -o FSTYPE $st3)\" = ext4 && test -b \$(mapped pvc-mi)_dif"
c Node/NodePublishVolume "$(publish_req pvc-mi $st3 $T/pods/d/mount "$(cap ext4)" false)" > /dev/null
cp $T/data $T/pods/d/mount/data; sync
c Node/NodeUnpublishVolume "$(unpublish_req pvc-mi $T/pods/d/mount)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-mi $st3)" > /dev/null
check "ext4 + integrity: unstage, stage, publish again: the data is intact" \
  bash -c "c Node/NodeStageVolume '$(stage_req pvc-mi "$d3" "$(cap ext4)" $st3 true)' >/dev/null &&
    c Node/NodePublishVolume '$(publish_req pvc-mi $st3 $T/pods/d/mount "$(cap ext4)" false)' >/dev/null && cmp -s $T/pods/d/mount/data $T/data"
c Node/NodeUnpublishVolume "$(unpublish_req pvc-mi $T/pods/d/mount)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-mi $st3)" > /dev/null
check "e2fsck: the integrity volume's filesystem is clean" bash -c "bulwark volume stage --id pvc-mi --device $d3 --key-file $T/key >/dev/null && e2fsck -fn \$(mapped pvc-mi) >/dev/null 2>&1"
bulwark volume unstage --id pvc-mi
if command -v mkfs.xfs > /dev/null; then
  newdev d6 320M
  st6=$T/staging/m6
  check "NodeStageVolume (xfs)" c Node/NodeStageVolume "$(stage_req pvc-x "$d6" "$(cap xfs)" $st6 false)"
  check "...xfs mounted at the staging path" test "$(findmnt -n -o FSTYPE $st6)" = xfs
  c Node/NodeUnstageVolume "$(unstage_req pvc-x $st6)" > /dev/null
  check "the xfs volume staged as ext4: FAILED_PRECONDITION (9), not reformatted (still xfs)" \
    bash -c "test \$(code Node/NodeStageVolume '$(stage_req pvc-x "$d6" "$(cap ext4)" $st6 false)') -eq 9 &&
      test \"\$(blkid -o value -s TYPE \$(mapped pvc-x))\" = xfs"
  bulwark volume unstage --id pvc-x
fi
newdev d4 24M
st4=$T/staging/b4; mkdir -p $T/pods/e
c Node/NodeStageVolume "$(stage_req pvc-bp "$d4" "$(cap block)" $st4 false)" > /dev/null
c Node/NodePublishVolume "$(publish_req pvc-bp $st4 $T/pods/e/dev "$(cap block)" false)" > /dev/null
dd if=$T/data of=$T/pods/e/dev bs=1M oflag=direct status=none
c Node/NodeUnpublishVolume "$(unpublish_req pvc-bp $T/pods/e/dev)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-bp $st4)" > /dev/null
check "plain block: unstage, stage, publish again: the data is intact" \
  bash -c "c Node/NodeStageVolume '$(stage_req pvc-bp "$d4" "$(cap block)" $st4 false)' >/dev/null &&
    c Node/NodePublishVolume '$(publish_req pvc-bp $st4 $T/pods/e/dev "$(cap block)" false)' >/dev/null && same_data $T/pods/e/dev $T/data"
c Node/NodeUnpublishVolume "$(unpublish_req pvc-bp $T/pods/e/dev)" > /dev/null
c Node/NodeUnstageVolume "$(unstage_req pvc-bp $st4)" > /dev/null

check "the plugin never logged a key" bash -c "! grep -qF '$KEY64' $T/csi.log && ! grep -qF '$WRONG64' $T/csi.log"
csi_stop
check "the socket is removed on SIGTERM" test ! -e "$SOCK"
finish
