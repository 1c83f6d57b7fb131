#!/usr/bin/env bash
# The integrity wipe is resumable: SIGKILL mid-wipe, then the next stage resumes where the token
# says and never reformats; the filesystem made afterwards passes fsck. The state disk's token
# state machine recovers from a reboot at every step.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
token() { cryptsetup token export --token-id 0 "$1" | python3 -c "import json,sys; t=json.load(sys.stdin); print(t['$2'])"; }
uuid() { cryptsetup luksUUID "$1"; }

# --- SIGKILL during the integrity wipe of a CSI volume ---
newdev d1 64M
bulwark volume stage --id pvc-kill --device "$d1" --key-file $T/key --integrity --json > $T/kill.out 2> $T/kill.err & pid=$!
wait_for 3000 grep -q '"wipe_done":[1-9][0-9]\{7,\}' $T/kill.err   # >= 10 MB done (a token record at 8 MiB)
kill -9 $pid; wait $pid 2>/dev/null
check "the stage was killed mid-wipe (progress seen, no path printed)" sh -c "grep -q wipe_done $T/kill.err && ! test -s $T/kill.out"
u0=$(uuid "$d1"); off=$(token "$d1" wipe_offset)
wipe_map=$(dmsetup ls | awk '$1 ~ /-wipe$/ {print $1}')
check "the killed wipe left its temporary mapping ($wipe_map)" test -n "$wipe_map"
vol status --json > $T/all.json
check "status without --id lists it, marked as a wipe leftover" python3 -c "
import json; l = json.load(open('$T/all.json'))
assert any(s['name'] == '$wipe_map' and s.get('wipe') is True and s['active'] for s in l), l"
copy=$(ls /run/bulwark/headers/ | grep "^${wipe_map%-wipe}\.$pid\$")
check "the killed stage left its header copy ($copy)" test -n "$copy"
# a copy of another volume whose operation is alive (holds its lock) must survive a sweep
other=bw-$(printf '%032d' 7)
truncate -s 1M /run/bulwark/headers/$other.1; truncate -s 1M /run/bulwark/headers/bw-$(printf '%032d' 8).1
flock /run/bulwark/locks/$other.lock sh -c "touch $T/held; while [ ! -e $T/release ]; do sleep 0.1; done" & holder=$!
wait_for 300 test -e $T/held
check "unstage after the kill removes it (the device is free for a detach)" \
  sh -c "bulwark volume unstage --id pvc-kill && ! dmsetup ls | grep -q -- -wipe"
check "...and the next operation removed the stale header copies" \
  sh -c "test ! -e /run/bulwark/headers/$copy && test ! -e /run/bulwark/headers/bw-$(printf '%032d' 8).1"
check "...but not the copy of an operation still holding its lock" test -e /run/bulwark/headers/$other.1
touch $T/release; wait $holder; rm -f /run/bulwark/headers/$other.1 /run/bulwark/locks/$other.lock
check "the token records state wiping at offset $off" sh -c "test $(token "$d1" state) = wiping && test $off -gt 0"
p=$(vol stage --id pvc-kill --device "$d1" --key-file $T/key --integrity --json 2> $T/resume.err | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
check "the next stage resumes and succeeds" test -b "${p:-/nonexistent}"
first=$(grep -o '"wipe_done":[0-9]*' $T/resume.err | head -1 | cut -d: -f2)
check "...from the recorded offset, not from 0 (first progress $first = $off)" test "${first:-0}" -eq "$off"
check "...without reformatting (same UUID, one keyslot)" \
  sh -c "test $(uuid "$d1") = $u0 && test \$(cryptsetup luksDump $d1 | grep -c '^  [0-9]*: luks2') -eq 1"
check "...token ready" test "$(token "$d1" state)" = ready
check "every sector of the resumed volume reads back with a valid tag" dd if="$p" of=/dev/null bs=1M iflag=direct status=none
check "mkfs.ext4 on the resumed volume" mkfs.ext4 -q "$p"
mkdir -p $T/mnt; mount "$p" $T/mnt && cp $T/key $T/mnt/file && umount $T/mnt
vol unstage --id pvc-kill
p=$(vol stage --id pvc-kill --device "$d1" --key-file $T/key)
check "...and after unstage + stage the filesystem passes fsck" e2fsck -fn "$p"
vol status --id pvc-kill --json > $T/st.json
check "...integrity on" python3 -c "import json; assert json.load(open('$T/st.json'))['integrity']"
vol unstage --id pvc-kill

# --- the state disk ---
sd() { bulwark statedisk "$@"; }
newdev s1 40M
p=$(sd open --device "$s1" --key-file $T/key 2> $T/sd.err)
check "statedisk open formats a blank disk with integrity: /dev/mapper/bulwark-state" \
  sh -c "test '$p' = /dev/mapper/bulwark-state && test -b /dev/mapper/bulwark-state_dif"
check "...token: bulwark-state-disk, ready, integrity" \
  sh -c "test $(token "$s1" volume_id) = bulwark-state-disk && test $(token "$s1" state) = ready && test $(token "$s1" integrity) = True"
head -c 2M /dev/urandom > $T/sdata
dd if=$T/sdata of="$p" bs=1M oflag=direct status=none
check "statedisk close" sd close
check "statedisk close again is a no-op" sd close
u0=$(uuid "$s1")
reboot_at() { # state [extra python]: what a reboot during that step leaves (the genuine token,
  # MAC'd with the key, as bulwark wrote it then); then open again
  "$BULWARK_TOP/tests/vm/luks2_edit" --key $T/key "$s1" "j['tokens']['0']['state'] = '$1'; ${2:-}"
  sd open --device "$s1" --key-file $T/key > $T/sd.out 2> $T/sd.err
}
reboot_at ready
check "reboot when ready: opens, no wipe, same disk, data intact" \
  sh -c "test -b /dev/mapper/bulwark-state && ! grep -q 'integrity wipe' $T/sd.err && test $(uuid "$s1") = $u0 && head -c 2M /dev/mapper/bulwark-state | cmp -s - $T/sdata"
sd close
reboot_at wiped
check "reboot after the wipe (wiped): opens without wiping, data intact, token ready" \
  sh -c "! grep -q 'integrity wipe' $T/sd.err && test $(token "$s1" state) = ready && head -c 2M /dev/mapper/bulwark-state | cmp -s - $T/sdata"
sd close
reboot_at wiping "j['tokens']['0']['wipe_offset'] = '16777216'"
check "reboot mid-wipe (wiping at 16 MiB): resumes there, same disk, first 2 MiB untouched" \
  sh -c "grep -q 'integrity wipe 1[6-9]/\|integrity wipe 2[0-9]/' $T/sd.err && ! grep -q 'integrity wipe [0-9]/' $T/sd.err && test $(uuid "$s1") = $u0 && head -c 2M /dev/mapper/bulwark-state | cmp -s - $T/sdata && test $(token "$s1" state) = ready"
sd close
before=$(sum "$s1")
reboot_at formatted; rc=$?
check "a 'formatted' token over a disk holding data (a rollback, not a reboot): refused (exit 9), data intact" \
  sh -c "test $rc -eq 9 && grep -q 'rolled back' $T/sd.err && ! test -e /dev/mapper/bulwark-state"
"$BULWARK_TOP/tests/vm/luks2_edit" --key $T/key "$s1" "j['tokens']['0']['state'] = 'ready'"
sd open --device "$s1" --key-file $T/key > /dev/null 2>&1
check "...the disk opens again with its data" sh -c "head -c 2M /dev/mapper/bulwark-state | cmp -s - $T/sdata"
sd close
# a genuine reboot after the format: nothing written yet, so the wipe from 0 finds only zeros
newdev s2 40M
sd open --device "$s2" --key-file $T/key > /dev/null 2>&1 && sd close
u2=$(uuid "$s2")
"$BULWARK_TOP/tests/vm/luks2_edit" --key $T/key "$s2" "j['tokens']['0']['state'] = 'formatted'"
sd open --device "$s2" --key-file $T/key > $T/sd.out 2> $T/sd.err
first=$(grep -o 'integrity wipe [0-9]*/' $T/sd.err | head -1 | grep -o '[0-9]*')
check "reboot after format (formatted): wipes from 0 (first progress at ${first:-none} MiB), same disk, ready" \
  sh -c "test '$first' = 0 && test $(uuid "$s2") = $u2 && test $(token "$s2" state) = ready && test -b /dev/mapper/bulwark-state"
sd close
# what crypt_format + the "prepared" token leave before the keyslot is added
"$BULWARK_TOP/tests/vm/luks2_edit" "$s1" "j['tokens']['0']['state'] = 'prepared'; del j['tokens']['0']['mac']; del j['keyslots']['0']; j['digests']['0']['keyslots'] = []"
sd open --device "$s1" --key-file $T/key > /dev/null 2> $T/sd.err; rc=$?
check "a prepared header without keyslot (format cut short) is formatted again (new UUID)" \
  sh -c "test $rc -eq 0 && test $(uuid "$s1") != $u0 && test -b /dev/mapper/bulwark-state && test $(token "$s1" state) = ready"
sd close
u1=$(uuid "$s1")
sd open --device "$s1" --key-file $T/wrong 2> $T/sd.err; rc=$?
check "statedisk with a wrong key: refused (exit 9), not reformatted" \
  sh -c "test $rc -eq 9 && grep -q 'wrong key' $T/sd.err && test $(uuid "$s1") = $u1"
echo "# time in the guest: ${SECONDS}s"
finish
