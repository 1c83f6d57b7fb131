#!/usr/bin/env bash
# A malicious host rewrites LUKS2 headers: every tampered header is refused with a message naming
# the field, nothing is mapped and the disk is left as it was; a header swapped in after
# validation (TOCTOU) does not matter because activation uses the validated copy.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
edit() { "$BULWARK_TOP/tests/vm/luks2_edit" "$@"; }
mapped() { dmsetup ls | grep -q "^$(bulwark volume status --id "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')"; }

# (A second segment is covered by the unit test: libcryptsetup itself rejects the edits that
# would make one loadable here.)
# One good bulwark volume; each case starts from a copy of its header area.
newdev good 24M
p=$(vol stage --id pvc-t --device "$good" --key-file $T/key) || die "stage of the good volume"
head -c 1M /dev/urandom > $T/data
dd if=$T/data of="$p" bs=1M oflag=direct status=none
vol unstage --id pvc-t
dd if="$good" of=$T/good.hdr bs=1M count=16 status=none

refused() { # description field-text python-edit [id]
  local desc=$1 field=$2 code=$3 id=${4:-pvc-t} rc before
  dd if=$T/good.hdr of="$good" bs=1M conv=notrunc,fsync status=none
  [ -n "$code" ] && { edit "$good" "$code" || { not_ok "$desc (edit failed)"; return; }; }
  before=$(sum "$good")
  vol stage --id "$id" --device "$good" --key-file $T/key 2> $T/tamper.err; rc=$?
  if [ $rc -eq 9 ] && grep -qF -- "$field" $T/tamper.err && ! mapped "$id" && [ "$(sum "$good")" = "$before" ]; then
    ok "$desc: refused naming '$field', nothing mapped, disk unchanged"
  else
    not_ok "$desc (exit $rc: $(cat $T/tamper.err))"
  fi
}

refused "segment cipher set to cipher_null" "cipher_null" 'j["segments"]["0"]["encryption"] = "cipher_null-ecb"'
refused "keyslot area cipher set to cipher_null" "cipher_null" 'j["keyslots"]["0"]["area"]["encryption"] = "cipher_null-ecb"'
refused "segment cipher changed" "segments.0.encryption is 'aes-cbc-essiv:sha256'" \
  'j["segments"]["0"]["encryption"] = "aes-cbc-essiv:sha256"'
refused "sector size changed" "segments.0.sector_size is 512" 'j["segments"]["0"]["sector_size"] = 512'
refused "bulwark token removed" "no 'bulwark' token" 'j["tokens"] = {}'
refused "token naming another volume (volume swap)" "names volume 'pvc-other', not 'pvc-t'" \
  'j["tokens"]["0"]["volume_id"] = "pvc-other"'
refused "another volume's header (swap) under this id" "names volume 'pvc-t', not 'pvc-u'" "" pvc-u
refused "integrity journal surprises" "segments.0.integrity.type" \
  'j["segments"]["0"]["integrity"] = {"type": "crc32c", "journal_encryption": "none", "journal_integrity": "none"}'

# An extra keyslot with a different cipher, added by cryptsetup itself.
dd if=$T/good.hdr of="$good" bs=1M conv=notrunc,fsync status=none
cryptsetup luksAddKey -q --key-file $T/key --new-keyfile $T/wrong --key-slot 1 --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --keyslot-cipher serpent-xts-plain64 --keyslot-key-size 512 "$good" || not_ok "luksAddKey"
before=$(sum "$good")
vol stage --id pvc-t --device "$good" --key-file $T/key 2> $T/tamper.err; rc=$?
check "an extra keyslot with another cipher is refused naming it" \
  sh -c "test $rc -eq 9 && grep -q \"keyslots.1.area.encryption is 'serpent-xts-plain64'\" $T/tamper.err && test $(sum "$good") = $before"

# --- TOCTOU: swap a malicious header in after validation, before activation ---
# gdb stops the real, unmodified bulwark binary at its first libcryptsetup activation call
# (the key check, after the header copy was validated and loaded) and rewrites the disk's header
# there: segment cipher_null, which a fresh validation refuses (checked above). The volume must
# still come up with aes-xts-plain64 and the right data: it was activated from the copy.
dd if=$T/good.hdr of="$good" bs=1M conv=notrunc,fsync status=none
swap="$BULWARK_TOP/tests/vm/luks2_edit $good 'j[\"segments\"][\"0\"][\"encryption\"] = \"cipher_null-ecb\"'"
gdb -q -batch -ex 'set breakpoint pending on' -ex 'break crypt_activate_by_passphrase' -ex run \
  -ex "shell $swap" -ex 'delete' -ex continue \
  --args "$BUILD/bin/bulwark" volume stage --id pvc-t --device "$good" --key-file $T/key > $T/gdb.out 2>&1
cat $T/gdb.out | grep -v '^\[' | tail -5
check "TOCTOU: the disk's header now says cipher_null" sh -c "cryptsetup luksDump $good | grep -q 'cipher: cipher_null'"
check "TOCTOU: the stage stopped at the breakpoint and still succeeded" \
  sh -c "grep -q 'Breakpoint 1, ' $T/gdb.out && grep -q '^/dev/mapper/bw-' $T/gdb.out"
check "TOCTOU: the active table is aes-xts-plain64, not cipher_null" \
  sh -c "dmsetup table $(basename "$p") | grep -q ' crypt aes-xts-plain64 ' && ! dmsetup table $(basename "$p") | grep -q cipher_null"
check "TOCTOU: the data reads back through the validated key and cipher" same_data "$p" $T/data
vol unstage --id pvc-t
refused "TOCTOU control: the swapped-in header itself" "cipher_null" 'j["segments"]["0"]["encryption"] = "cipher_null-ecb"'
echo "# time in the guest: ${SECONDS}s"
finish
