#!/usr/bin/env bash
# bulwark volume on real dm-crypt/dm-integrity over loop devices, cross-checked with cryptsetup:
# stage/unstage/restage with and without integrity, idempotency, concurrent stages, devices that
# must not be touched, wrong key, key file rules, lock contention, expand, interop.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"

# --- plain (no integrity) ---
newdev d1 48M
p=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key); rc=$?
check "stage formats a blank device and prints the mapped path" test $rc -eq 0 -a -b "${p:-/nonexistent}"
[ -b "${p:-/nonexistent}" ] || die "no volume to test further"
head -c 4M /dev/urandom > $T/data
dd if=$T/data of="$p" bs=1M oflag=direct status=none
check "unstage" vol unstage --id pvc-plain
check "unstage again is a no-op" vol unstage --id pvc-plain
check "the mapping is gone" test ! -e "$p"
p2=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)
check "restage returns the same path" test "$p2" = "$p"
check "data survives unstage + stage" same_data "$p" $T/data
same=0; for i in $(seq 10); do [ "$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)" = "$p" ] && same=$((same+1)); done
check "stage is idempotent (10/10 gave the same path: $same)" test $same -eq 10
check "dm-crypt runs without read/write workqueues, with discards" \
  sh -c "dmsetup table $(basename "$p") | grep -q no_read_workqueue && dmsetup table $(basename "$p") | grep -q no_write_workqueue && dmsetup table $(basename "$p") | grep -q allow_discards"
newdev d9 16M
vol stage --id pvc-plain --device "$d9" --key-file $T/key --json > $T/err.json 2>/dev/null; rc=$?
check "the same volume id from another device is refused: exit 9, JSON FAILED_PRECONDITION" \
  sh -c "test $rc -eq 9 && grep -q '\"code\":\"FAILED_PRECONDITION\"' $T/err.json"
vol status --id pvc-plain --json > $T/status.json
check "status --json: active, 4096-byte sectors, aes-xts-plain64, no integrity, backing device" python3 -c "
import json, os; s = json.load(open('$T/status.json'))
assert s['active'] and s['sector_size'] == 4096 and s['cipher'] == 'aes-xts-plain64' and not s['integrity'], s
assert '$d1' in s['backing_device'] and s['size_bytes'] > 0 and 'crypt aes-xts-plain64 -' in s['table'], s"
vol status --json > $T/all.json
check "status without --id lists the volume" grep -q "$(basename "$p")" $T/all.json

# --- lock contention: ABORTED (10) when another operation holds the volume ---
lockf=/run/bulwark/locks/$(basename "$p").lock
flock "$lockf" sh -c "touch $T/locked; while [ ! -e $T/unlock ]; do sleep 0.1; done" & fl=$!
wait_for 300 test -e $T/locked   # under TCG the holder can take a while to start
vol unstage --id pvc-plain --lock-timeout 0 --json > $T/abort.json 2>/dev/null; rc=$?
check "a held volume lock gives exit 10, ABORTED" sh -c "test $rc -eq 10 && grep -q ABORTED $T/abort.json"
touch $T/unlock; wait $fl
check "...and the volume is untouched" test -b "$p"

# --- expand (plain) ---
size0=$(blockdev --getsize64 "$p")
truncate -s 64M "${loopfile[$d1]}"; losetup -c "$d1"
check "expand grows a plain volume to its device" vol expand --id pvc-plain --device "$d1" --key-file $T/key
check "...the mapping is 16 MiB larger" test "$(blockdev --getsize64 "$p")" -eq $((size0 + 16 * 1048576))
check "...and the data is intact" same_data "$p" $T/data
vol unstage --id pvc-plain

# --- wrong key: clear error, data intact ---
vol stage --id pvc-plain --device "$d1" --key-file $T/wrong 2> $T/wrong.err; rc=$?
check "a wrong key is refused (exit 9) with a clear message" sh -c "test $rc -eq 9 && grep -q 'wrong key' $T/wrong.err"
check "...nothing is mapped" test ! -e "$p"
p=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)
check "...and the data is intact" same_data "$p" $T/data
vol unstage --id pvc-plain

# --- interop with cryptsetup ---
check "cryptsetup opens a bulwark volume with the same key" cryptsetup open --key-file $T/key "$d1" interop$BW_ID
check "...and reads the same data" same_data /dev/mapper/interop$BW_ID $T/data
cryptsetup close interop$BW_ID
cryptsetup luksDump "$d1" > $T/dump
check "luksDump: LUKS2, one keyslot, aes-xts-plain64 512-bit, 4096-byte sectors, pbkdf2 1000, bulwark token" sh -c "
  grep -q '^Version:.*2' $T/dump && grep -q 'cipher: aes-xts-plain64' $T/dump && grep -q 'sector: 4096' $T/dump &&
  grep -q 'Cipher key:.*512 bits' $T/dump && grep -q 'PBKDF:.*pbkdf2' $T/dump && grep -q 'Iterations: *1000' $T/dump &&
  grep -q ': bulwark' $T/dump && test \$(grep -c '^  [0-9]*: luks2' $T/dump) -eq 1 && grep -q 'integrity: (no integrity)\|^Data segments' $T/dump"
cryptsetup token export --token-id 0 "$d1" > $T/token.json
check "the token records the volume id and state ready" python3 -c "
import json; t = json.load(open('$T/token.json'))
assert t['type'] == 'bulwark' and t['volume_id'] == 'pvc-plain' and t['state'] == 'ready' and t['integrity'] is False, t"

# --- integrity ---
newdev d2 40M
p=$(vol stage --id pvc-int --device "$d2" --key-file $T/key --integrity 2> $T/wipe.log); rc=$?
check "stage --integrity formats, wipes and opens" test $rc -eq 0 -a -b "${p:-/nonexistent}"
check "...reporting wipe progress on stderr" grep -q 'integrity wipe .*/.* MiB' $T/wipe.log
check "an integrity device sits below" test -b "/dev/mapper/$(basename "$p")_dif"
check "dm-crypt over integrity: no workqueues, no discards" \
  sh -c "dmsetup table $(basename "$p") | grep -q no_write_workqueue && ! dmsetup table $(basename "$p") | grep -q allow_discards"
check "a whole read of the wiped device passes its integrity checks" dd if="$p" of=/dev/null bs=1M iflag=direct status=none
dd if=$T/data of="$p" bs=1M oflag=direct status=none
vol unstage --id pvc-int
check "unstage removed the _dif device too" test ! -e "/dev/mapper/$(basename "$p")_dif"
p=$(vol stage --id pvc-int --device "$d2" --key-file $T/key)
check "integrity data survives unstage + stage" same_data "$p" $T/data
# PVC -> mapping -> PVC: the list names each volume by its id (from the header's token, kept only
# when it hashes to the mapping's name); the dm UUID that dmsetup shows ends in that name.
vol status --json > $T/list.json
vol status > $T/list.txt
read -r dmname dmuuid < <(dmsetup info -c --noheadings -o name,uuid --separator ' ' "$(basename "$p")")
# (grep, not python: an interpreter start costs seconds in the TCG guest)
check "status (the list) shows the volume id, its mapping and dm UUID, as dmsetup does ($dmname $dmuuid)" sh -c "
  grep -qF '{\"id\":\"pvc-int\",\"name\":\"$(basename "$p")\",' $T/list.json &&
  grep -qF '\"dm_uuid\":\"$dmuuid\"' $T/list.json && test '$dmname' = '$(basename "$p")' &&
  case '$dmuuid' in CRYPT-LUKS2-*-$(basename "$p")) true;; *) false;; esac"
check "...and the text list starts the line with the id" grep -q "^pvc-int: $p, " $T/list.txt
vol status --id pvc-int --json > $T/status.json
check "status: integrity on (no mismatch counter claimed: the kernel keeps none for AEAD)" python3 -c "
import json; s = json.load(open('$T/status.json')); assert s['integrity'] and 'integrity_mismatches' not in s, s"
same=0; for i in $(seq 10); do [ "$(vol stage --id pvc-int --device "$d2" --key-file $T/key)" = "$p" ] && same=$((same+1)); done
check "integrity stage is idempotent (10/10: $same)" test $same -eq 10
vol expand --id pvc-int --device $d2 --key-file $T/key 2> $T/expand.err; rc=$?
check "expand of an integrity volume is refused as not supported (exit 9)" sh -c "test $rc -eq 9 && grep -q 'not supported' $T/expand.err"
vol unstage --id pvc-int
cryptsetup luksDump "$d2" > $T/dump
check "luksDump of an integrity volume: hmac(sha256), 768-bit volume key (512-bit cipher + 256-bit hmac)" \
  sh -c "grep -q 'integrity: hmac(sha256)' $T/dump && grep -q '	Key: *768 bits' $T/dump && grep -q 'Cipher key: *512 bits' $T/dump"

# --- two concurrent stages of one blank device: one formats, both return the path ---
newdev d3 40M
vol stage --id pvc-race --device "$d3" --key-file $T/key --integrity > $T/race1 2> $T/race1.err & a=$!
vol stage --id pvc-race --device "$d3" --key-file $T/key --integrity > $T/race2 2> $T/race2.err & b=$!
wait $a; ra=$?; wait $b; rb=$?
check "concurrent stages both succeed with the same path" \
  sh -c "test $ra -eq 0 -a $rb -eq 0 && test -s $T/race1 && cmp -s $T/race1 $T/race2"
check "...exactly one of them formatted (wiped)" test "$(cat $T/race1.err $T/race2.err | grep -c 'integrity wipe 0/')" -le 1 -a \
  "$(grep -l 'integrity wipe' $T/race1.err $T/race2.err | wc -l)" -eq 1
cryptsetup luksDump --dump-json-metadata "$d3" > $T/race.json
check "...one keyslot, one token" python3 -c "
import json; j = json.load(open('$T/race.json'))
assert len(j['keyslots']) == 1 and len(j['tokens']) == 1 and list(j['tokens'].values())[0]['type'] == 'bulwark', j"
vol unstage --id pvc-race

# --- devices that hold something are never formatted ---
newdev d4 32M
mkfs.ext4 -q "$d4"
before=$(sum "$d4")
vol stage --id pvc-ext4 --device "$d4" --key-file $T/key 2> $T/ext4.err; rc=$?
check "a device holding ext4 is refused (exit 9) naming it" sh -c "test $rc -eq 9 && grep -q \"'ext4'\" $T/ext4.err"
check "...and is unchanged" test "$(sum "$d4")" = "$before"
check "format refuses it too" fails vol format --id pvc-ext4 --device "$d4" --key-file $T/key
check "...still unchanged" test "$(sum "$d4")" = "$before"
newdev d5 16M
printf 'precious' | dd of="$d5" bs=1 seek=7000 conv=notrunc status=none
before=$(sum "$d5")
check "a device with unknown data at its start is refused" fails vol stage --id pvc-data --device "$d5" --key-file $T/key
check "...and is unchanged" test "$(sum "$d5")" = "$before"
newdev d6 16M
cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file $T/key "$d6"
before=$(sum "$d6")
vol stage --id pvc-luks1 --device "$d6" --key-file $T/key 2> $T/luks1.err; rc=$?
check "a LUKS1 device is refused (exit 9)" sh -c "test $rc -eq 9 && grep -q 'crypto_LUKS.*version 1' $T/luks1.err"
check "...and is unchanged" test "$(sum "$d6")" = "$before"

# --- format: explicit, blank devices only, leaves the volume closed and ready ---
newdev d7 20M
check "format of a blank device" vol format --id pvc-fmt --device "$d7" --key-file $T/key
vol status --id pvc-fmt > $T/fmt.status
check "...leaves it closed" grep -q 'not staged' $T/fmt.status
newdev d8 16M
before=$(sum "$d8")
check "a device too small for header and data is refused" fails vol format --id pvc-small --device "$d8" --key-file $T/key
check "...untouched" test "$(sum "$d8")" = "$before"
check "...and a second format refuses (it is no longer blank)" fails vol format --id pvc-fmt --device "$d7" --key-file $T/key
check "...stage opens it" vol stage --id pvc-fmt --device "$d7" --key-file $T/key
vol unstage --id pvc-fmt

# --- key file rules and usage ---
chmod 0644 $T/key
vol stage --id pvc-plain --device "$d1" --key-file $T/key 2> $T/kf.err; rc=$?
check "a key file readable by others is refused (exit 3)" sh -c "test $rc -eq 3 && grep -q 0600 $T/kf.err"
chmod 0600 $T/key
head -c 31 /dev/urandom > $T/short; chmod 600 $T/short
vol stage --id pvc-plain --device "$d1" --key-file $T/short 2>/dev/null; rc=$?
check "a key file of 31 bytes is refused (exit 3)" test $rc -eq 3
head -c 33 /dev/urandom > $T/long; chmod 600 $T/long
check "a key file of 33 bytes is refused" fails vol stage --id pvc-plain --device "$d1" --key-file $T/long
vol stage --id 'bad id' --device "$d1" --key-file $T/key 2>/dev/null; rc=$?
check "an id with a space is INVALID_ARGUMENT (exit 3)" test $rc -eq 3
vol stage --id pvc-x --device /dev/nonexistent$BW_ID --key-file $T/key 2>/dev/null; rc=$?
check "a missing device is NOT_FOUND (exit 5)" test $rc -eq 5

# key files as kubelet mounts Secrets: a symlink chain to the real file is followed
mkdir -p $T/secret/..2024_01_01 && cp $T/key $T/secret/..2024_01_01/key && chmod 600 $T/secret/..2024_01_01/key
ln -s ..2024_01_01 $T/secret/..data && ln -s ..data/key $T/secret/key
p=$(vol stage --id pvc-plain --device "$d1" --key-file $T/secret/key 2> $T/link.err); rc=$?
check "a key file behind symlinks (a kubelet Secret mount) is followed (exit $rc: $(cat $T/link.err))" test $rc -eq 0 -a -b "${p:-/nonexistent}"
vol unstage --id pvc-plain
chmod 644 $T/secret/..2024_01_01/key
vol stage --id pvc-plain --device "$d1" --key-file $T/secret/key 2> $T/link.err; rc=$?
check "...and the final file's mode is what counts (0644 behind the link: exit 3)" sh -c "test $rc -eq 3 && grep -q 0600 $T/link.err"
mkfifo -m 600 $T/fifo
t0=$SECONDS
timeout 120 bulwark volume stage --id pvc-plain --device "$d1" --key-file $T/fifo 2> $T/fifo.err; rc=$?
check "a FIFO as key file is refused at once, not waited on (exit $rc in $((SECONDS - t0))s)" \
  sh -c "test $rc -eq 3 && grep -q 'regular file' $T/fifo.err"
check "...and the volume lock is free again" vol unstage --id pvc-plain --lock-timeout 0

# a regular file as --device: refused (it would go through an automatic loop device)
truncate -s 24M $T/file.img; before=$(sum $T/file.img)
vol stage --id pvc-file --device $T/file.img --key-file $T/key 2> $T/file.err; rc=$?
check "a regular file as --device is INVALID_ARGUMENT (exit 3) naming it, untouched" \
  sh -c "test $rc -eq 3 && grep -q 'not a block device' $T/file.err && test $(sum $T/file.img) = $before && ! losetup -j $T/file.img | grep -q ."
check "nothing was left mapped" sh -c "! dmsetup ls | grep -q '^bw-'"
echo "# time in the guest: ${SECONDS}s"
finish
