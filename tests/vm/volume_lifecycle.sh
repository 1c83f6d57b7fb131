#!/usr/bin/env bash
# The lifecycle token is host-writable: forged states are refused by its MAC, a replayed genuine
# old token never makes a wipe overwrite data written with the key, a wipe_offset out of range is
# refused with the header untouched. A stage failing after activation leaves no mapping. A
# tampered sector of an integrity volume fails its read with EILSEQ.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
edit() { "$BULWARK_TOP/tests/vm/luks2_edit" "$@"; }
mapped() { dmsetup ls | grep -q "^$(bulwark volume status --id "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')"; }

# An integrity volume in use: data at its start and near its end.
newdev d 40M
p=$(vol stage --id pvc-l --device "$d" --key-file $T/key --integrity 2>/dev/null) || die "stage of the volume"
head -c 1M /dev/urandom > $T/data1; head -c 1M /dev/urandom > $T/data2
dd if=$T/data1 of="$p" bs=1M oflag=direct status=none
dd if=$T/data2 of="$p" bs=1M seek=18 oflag=direct status=none
vol unstage --id pvc-l
dd if="$d" of=$T/good.hdr bs=1M count=16 status=none
restore() { dd if=$T/good.hdr of="$d" bs=1M conv=notrunc,fsync status=none; }
intact() {
  local q; q=$(vol stage --id pvc-l --device "$d" --key-file $T/key 2>/dev/null) || return 1
  head -c 1M "$q" | cmp -s - $T/data1 && dd if="$q" bs=1M skip=18 count=1 status=none | cmp -s - $T/data2
  local rc=$?; vol unstage --id pvc-l; return $rc
}
check "control: the volume stages and its data reads back" intact

# refused description field-text luks2_edit-args...: exit 9 naming it, no mapping, disk unchanged
refused() {
  local desc=$1 field=$2 rc before; shift 2
  restore; edit "$@" || { not_ok "$desc (edit failed)"; return; }
  before=$(sum "$d")
  vol stage --id pvc-l --device "$d" --key-file $T/key 2> $T/err > /dev/null; rc=$?
  if [ $rc -eq 9 ] && grep -qF -- "$field" $T/err && ! mapped pvc-l && [ "$(sum "$d")" = "$before" ]; then
    ok "$desc: refused naming '$field', nothing mapped, disk unchanged"
  else
    not_ok "$desc (exit $rc: $(cat $T/err))"
  fi
}
tok="j['tokens']['0']"
# forged: the host writes a state without the key
for st in formatted wiping wiped; do
  refused "token forged to '$st' (MAC kept)" "does not authenticate" "$d" "$tok['state'] = '$st'"
done
refused "token forged to 'formatted' without MAC" "does not authenticate" "$d" "$tok['state'] = 'formatted'; del $tok['mac']"
# replayed: a genuine token of an earlier step (its MAC verifies): the wipe guard refuses
refused "replayed 'formatted' token: no re-wipe over data" "the token was rolled back" \
  --key $T/key "$d" "$tok['state'] = 'formatted'"
refused "replayed 'wiping' token at 16 MiB: no re-wipe over data at 18 MiB" "the token was rolled back" \
  --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = str(16 << 20)"
refused "'prepared' token with a keyslot (no MAC needed): no re-wipe over data" "the token was rolled back" \
  "$d" "$tok['state'] = 'prepared'; del $tok['mac']"
# wipe_offset out of range, even with a valid MAC
refused "negative wipe_offset" "wipe_offset '-4096'" --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = '-4096'"
refused "unaligned wipe_offset" "wipe_offset '4097'" --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = '4097'"
refused "wipe_offset beyond the device" "lies beyond the volume" \
  --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = str(1 << 40)"
refused "wipe_offset with a sign" "wipe_offset '+4096'" --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = '+4096'"
restore
check "after all that, the data is intact" intact
# A genuine replay where nothing was written past the offset only rewrites zeros: allowed.
restore; edit --key $T/key "$d" "$tok['state'] = 'wiping'; $tok['wipe_offset'] = str(20 << 20)"
check "a 'wiping' token at 20 MiB over zeros resumes (nothing of value there) and the data is intact" intact

# --- a tampered sector: the read fails with EILSEQ, the kernel logs an AEAD error ---
restore
p=$(vol stage --id pvc-l --device "$d" --key-file $T/key)
dmesg -C
off=$(( (16 << 20) + (4 << 20) ))   # well inside dm-integrity's data and tag areas
dd if=/dev/urandom of="$d" bs=64K count=4 seek=$((off / 65536)) conv=notrunc,fsync status=none
echo 3 > /proc/sys/vm/drop_caches
dd if="$p" of=/dev/null bs=1M iflag=direct status=none 2> $T/eilseq.err; rc=$?
check "a read over the tampered sectors fails with EILSEQ (exit $rc: $(head -c 120 $T/eilseq.err))" \
  sh -c "test $rc -ne 0 && grep -q 'Invalid or incomplete multibyte or wide character' $T/eilseq.err"
check "...and the kernel logs INTEGRITY AEAD ERROR" sh -c "dmesg | grep -q 'INTEGRITY AEAD ERROR'"
vol status --id pvc-l --json > $T/st.json
check "status reports integrity on and claims no mismatch count it cannot know" python3 -c "
import json; s = json.load(open('$T/st.json')); assert s['integrity'] and 'integrity_mismatches' not in s, s"
vol unstage --id pvc-l

# --- a stage that fails after activating rolls its mapping back ---
# gdb stops the unmodified binary right after it mapped a freshly formatted volume and changes
# the disk's UUID there, so recording state "ready" fails: the mapping must not stay.
newdev b 24M
gdb -q -batch -ex 'set breakpoint pending on' -ex 'break crypt_activate_by_volume_key if $rsi != 0' -ex run \
  -ex finish -ex "shell cryptsetup luksUUID -q --uuid 11111111-2222-3333-4444-555555555555 $b" -ex 'delete' -ex continue \
  --args "$BUILD/bin/bulwark" volume stage --id pvc-f --device "$b" --key-file $T/key > $T/gdb.out 2>&1
grep -v '^\[New\|^\[Thread' $T/gdb.out | tail -4
check "the stage stopped after mapping and then failed (header changed under it, exit 9)" \
  sh -c "grep -q 'changed under us' $T/gdb.out && grep -q 'exited with code 011' $T/gdb.out"
check "...and left no mapping behind" sh -c "! dmsetup ls | grep -q \"^\$(bulwark volume status --id pvc-f --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"name\"])')\""
echo "# time in the guest: ${SECONDS}s"
finish
