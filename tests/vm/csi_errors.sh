#!/usr/bin/env bash
# bulwark-csi answers each invalid request with the CSI spec's error code (over its socket, with a
# real gRPC client): missing volume id, capability, access mode, paths or device; relative or
# non-normalised paths; an unknown volume; unsupported fs_type, access mode or key; publish,
# stats and expand of volumes that are not staged. None of them touches the device.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/csi_lib"
mkdir -p $T/staging
csi_start

# --- the spec's error codes for invalid requests ---
newdev d5 24M
st5=$T/staging/e5
ecode() { code "$@"; }
check "stage without volume_id: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req '' "$d5" "$(cap ext4)" $st5 false)")" -eq 3
check "stage without volume_capability: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "{\"volume_id\":\"pvc-e\",\"staging_target_path\":\"$st5\",\"volume_context\":{\"device\":\"$d5\"}}")" -eq 3
check "stage without access_mode: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" '{"mount":{}}' $st5 false)")" -eq 3
check "stage without staging_target_path: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap ext4)" '' false)")" -eq 3
check "stage with a relative staging path: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap ext4)" relative/path false)")" -eq 3
check "stage with '..' in the staging path: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap ext4)" $T/staging/../x false)")" -eq 3
check "stage of an unknown volume (its device does not exist): NOT_FOUND (5)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e /dev/disk/by-id/nonexistent-$BW_ID "$(cap ext4)" $st5 false)")" -eq 5
check "stage without a device attribute: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "{\"volume_id\":\"pvc-e\",\"staging_target_path\":\"$st5\",\"volume_capability\":$(cap ext4)}")" -eq 3
check "stage with an unsupported fs_type: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap btrfs)" $st5 false)")" -eq 3
check "stage with a multi-node access mode: FAILED_PRECONDITION (9)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap ext4 MULTI_NODE_MULTI_WRITER)" $st5 false)")" -eq 9
check "stage with a key that is not 32 bytes: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req pvc-e "$d5" "$(cap ext4)" $st5 false c2hvcnQ=)")" -eq 3
check "...none of these touched the device" bash -c "! cryptsetup isLuks $d5"
check "publish of a volume that is not staged: NOT_FOUND (5)" \
  test "$(ecode Node/NodePublishVolume "$(publish_req pvc-e $st5 $T/pods/x "$(cap ext4)" false)")" -eq 5
check "publish without staging_target_path: FAILED_PRECONDITION (9)" \
  test "$(ecode Node/NodePublishVolume "$(publish_req pvc-e '' $T/pods/x "$(cap ext4)" false)")" -eq 9
check "publish without target_path: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodePublishVolume "$(publish_req pvc-e $st5 '' "$(cap ext4)" false)")" -eq 3
check "publish without volume_capability: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodePublishVolume "{\"volume_id\":\"pvc-e\",\"staging_target_path\":\"$st5\",\"target_path\":\"$T/pods/x\"}")" -eq 3
check "unpublish without volume_id: INVALID_ARGUMENT (3)" test "$(ecode Node/NodeUnpublishVolume "$(unpublish_req '' $T/pods/x)")" -eq 3
check "unpublish without target_path: INVALID_ARGUMENT (3)" test "$(ecode Node/NodeUnpublishVolume "$(unpublish_req pvc-e '')")" -eq 3
check "unstage without volume_id: INVALID_ARGUMENT (3)" test "$(ecode Node/NodeUnstageVolume "$(unstage_req '' $st5)")" -eq 3
check "unstage without staging_target_path: INVALID_ARGUMENT (3)" test "$(ecode Node/NodeUnstageVolume "$(unstage_req pvc-e '')")" -eq 3
check "stats of an unknown volume: NOT_FOUND (5)" \
  test "$(ecode Node/NodeGetVolumeStats "{\"volume_id\":\"pvc-e\",\"volume_path\":\"$T/pods\"}")" -eq 5
check "stats without volume_path: INVALID_ARGUMENT (3)" test "$(ecode Node/NodeGetVolumeStats '{"volume_id":"pvc-e"}')" -eq 3
check "expand of an unknown volume: NOT_FOUND (5)" \
  test "$(ecode Node/NodeExpandVolume "{\"volume_id\":\"pvc-e\",\"volume_path\":\"$T/pods\"}")" -eq 5
check "a volume id of 129 characters: INVALID_ARGUMENT (3)" \
  test "$(ecode Node/NodeStageVolume "$(stage_req "$(printf 'v%.0s' $(seq 129))" "$d5" "$(cap ext4)" $st5 false)")" -eq 3
check "the plugin never logged a key" bash -c "! grep -qF '$KEY64' $T/csi.log"
finish
