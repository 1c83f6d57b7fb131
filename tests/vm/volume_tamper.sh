#!/usr/bin/env bash
# A malicious host rewrites LUKS2 headers: every tampered header is refused with a message naming
# the field, nothing is mapped and the disk is left as it was; a header swapped in after
# validation (TOCTOU) does not matter because activation uses the validated copy.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/volume_tamper_lib"

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

# --- what a forged header would change, each refused by the allow-list itself ---
refused "data offset 0 (the mapping would cover its own header)" "segments.0.offset is 0, expected 16777216" \
  'j["segments"]["0"]["offset"] = "0"'
refused "a fixed segment size" "segments.0.size is '4194304'" 'j["segments"]["0"]["size"] = "4194304"'
refused "iv_tweak" "segments.0.iv_tweak" 'j["segments"]["0"]["iv_tweak"] = "1000"'
refused "a foreign token type beside ours" "tokens.1.type is 'systemd-tpm2'" \
  'j["tokens"]["1"] = {"type": "systemd-tpm2", "keyslots": ["0"]}'
refused "persistent activation flags" "config.flags" 'j["config"]["flags"] = ["no-journal"]'
refused "an unknown segment member" "segments.0.x: unexpected member" 'j["segments"]["0"]["x"] = 1'
refused "a keyslot whose kdf was swapped for cipher_null in its area" "cipher_null" \
  'j["keyslots"]["0"]["area"]["encryption"] = "cipher_null"'

# --- KDF bombs: refused by the allow-list (before libcryptsetup runs any KDF), not after hours of
# work under the volume lock ---
MAX_SECONDS=600
refused "PBKDF2 2^31 iterations in the keyslot" "keyslots.0.kdf.iterations is 2147483648" \
  'j["keyslots"]["0"]["kdf"]["iterations"] = 2**31'
refused "PBKDF2 2^31 iterations in the digest" "digests.0.iterations is 2147483648" 'j["digests"]["0"]["iterations"] = 2**31'
refused "argon2id with time 2^31" "keyslots.0.kdf is 'argon2id'" \
  'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 2**31, "memory": 1024, "cpus": 1, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
refused "argon2id with 4 GiB of memory and 4 threads" "keyslots.0.kdf is 'argon2id'" \
  'j["keyslots"]["0"]["kdf"] = {"type": "argon2id", "time": 4, "memory": 4194304, "cpus": 4, "salt": j["keyslots"]["0"]["kdf"]["salt"]}'
unset MAX_SECONDS

# An extra keyslot with a different cipher, added by cryptsetup itself.
dd if=$T/good.hdr of="$good" bs=1M conv=notrunc,fsync status=none
cryptsetup luksAddKey -q --key-file $T/key --new-keyfile $T/wrong --key-slot 1 --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --keyslot-cipher serpent-xts-plain64 --keyslot-key-size 512 "$good" || not_ok "luksAddKey"
before=$(sum "$good")
vol stage --id pvc-t --device "$good" --key-file $T/key 2> $T/tamper.err; rc=$?
check "an extra keyslot with another cipher is refused naming it" \
  sh -c "test $rc -eq 9 && grep -q \"keyslots.1.area.encryption is 'serpent-xts-plain64'\" $T/tamper.err && test $(sum "$good") = $before"

# --- TOCTOU: swap a malicious header in after validation, before activation ---
# gdb stops the real, unmodified bulwark binary at its first libcryptsetup key call
# (crypt_volume_key_get: the keyslot opened once, after the header copy was validated and
# loaded; the activation itself then uses the volume key) and rewrites the disk's header
# there: segment cipher_null, which a fresh validation refuses (checked above). The volume must
# still come up with aes-xts-plain64 and the right data: it was activated from the copy.
dd if=$T/good.hdr of="$good" bs=1M conv=notrunc,fsync status=none
swap="$BULWARK_TOP/tests/vm/luks2_edit $good 'j[\"segments\"][\"0\"][\"encryption\"] = \"cipher_null-ecb\"'"
gdb -q -batch -ex 'set breakpoint pending on' -ex 'break crypt_volume_key_get' -ex run \
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
