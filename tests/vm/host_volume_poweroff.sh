#!/usr/bin/env bash
# Power-off mid-wipe: boot 1 starts staging an integrity volume on a persistent virtio disk and
# cuts the power (sysrq o: no sync, no cleanup) once the wipe is under way; boot 2 stages again,
# which must resume the wipe from the token's record, never reformat, and yield a volume whose
# filesystem passes fsck. Runs on the host and drives tests/vm/run twice (--disk).
. "$(dirname "$0")/../lib.sh"
require_root
[ -e "${BULWARK_KERNEL_DIR:-$BUILD/kernel}/current" ] || skip "no test kernel: run scripts/fetch-test-kernel.sh"
dir=$BUILD/test-tmp/poweroff-$BW_ID
mkdir -p "$dir"; at_exit "rm -rf $dir"
truncate -s 96M "$dir/disk.img"
(umask 077; head -c 32 /dev/urandom > "$dir/key")
guest=$BULWARK_TOP/tests/vm/volume_poweroff_guest
"$BULWARK_TOP/tests/vm/run" --timeout 400 --disk "$dir/disk.img" -- bash "$guest" cut "$dir" > "$dir/boot1.log" 2>&1; rc=$?
sed 's/^/boot 1: /' "$dir/boot1.log" | grep -v '^boot 1: vm/run: qemu' | tail -5
check "boot 1: the guest lost power mid-wipe (no exit status, the wipe past 20 MB)" \
  sh -c "test $rc -eq 125 && grep -q 'progress: the wipe passed 20 MB' $dir/boot1.log && grep -q 'cutting power' $dir/boot1.log"
"$BULWARK_TOP/tests/vm/run" --timeout 400 --disk "$dir/disk.img" -- bash "$guest" resume "$dir"
check "boot 2: the resume checks ran to the end" test $? -eq 0
finish
