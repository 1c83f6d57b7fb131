#!/usr/bin/env bash
# bulwark volume against real dm-crypt/dm-integrity on loop devices, cross-checked with cryptsetup.
. "$(dirname "$0")/../lib.sh"
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"
for m in loop dm_crypt dm_integrity; do modprobe $m || die "modprobe $m"; done
T=$(mktemp -d); at_exit "rm -rf $T"
loops=()
newdev() { # size -> loop device
  local f=$T/disk$((${#loops[@]})).img l
  truncate -s "$1" "$f"; l=$(losetup --find --show "$f"); loops+=("$l"); echo "$l"
}
at_exit 'for l in "${loops[@]}"; do losetup -d $l; done'
at_exit 'for n in $(dmsetup ls | awk "/^bw-/{print \$1}"); do dmsetup remove -f $n; done; cryptsetup close interop'
(umask 077; head -c 32 /dev/urandom > $T/key; head -c 32 /dev/urandom > $T/wrong)
vol() { bulwark volume "$@"; }
sum() { sha256sum "$1" | cut -d' ' -f1; }

# --- plain (no integrity) ---
d1=$(newdev 64M)
p=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key); rc=$?
check "stage formats a blank device and prints the mapped path" test $rc -eq 0 -a -b "$p"
head -c 4M /dev/urandom > $T/data
dd if=$T/data of="$p" bs=1M oflag=direct status=none
check "unstage" vol unstage --id pvc-plain
check "unstage again is a no-op" vol unstage --id pvc-plain
check "the mapping is gone" test ! -e "$p"
p2=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)
check "restage returns the same path" test "$p2" = "$p"
check "data survives unstage + stage" sh -c "head -c 4M $p | cmp - $T/data"
same=0; for i in $(seq 10); do [ "$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)" = "$p" ] && same=$((same+1)); done
check "stage is idempotent (10/10 gave the same path: $same)" test $same -eq 10
d9=$(newdev 16M)
check "staging the same volume id from another device is refused" fails vol stage --id pvc-plain --device "$d9" --key-file $T/key
vol stage --id pvc-plain --device "$d9" --key-file $T/key --json > $T/err.json; rc=$?
check "...with exit code 5 and a JSON FAILED_PRECONDITION" sh -c "test $rc -eq 5 && grep -q FAILED_PRECONDITION $T/err.json"
vol status --id pvc-plain --json > $T/status.json
check "status: active, 4096-byte sectors, aes-xts-plain64, no integrity" python3 -c "
import json; s = json.load(open('$T/status.json'))
assert s['active'] and s['sector_size'] == 4096 and s['cipher'] == 'aes-xts-plain64' and not s['integrity'], s"
vol unstage --id pvc-plain

# --- wrong key: clear error, data intact ---
vol stage --id pvc-plain --device "$d1" --key-file $T/wrong 2> $T/wrong.err; rc=$?
check "a wrong key is refused (exit 5) with a clear message" sh -c "test $rc -eq 5 && grep -q 'wrong key' $T/wrong.err"
p=$(vol stage --id pvc-plain --device "$d1" --key-file $T/key)
check "...and the data is intact" sh -c "head -c 4M $p | cmp - $T/data"
vol unstage --id pvc-plain

# --- interop with cryptsetup ---
check "cryptsetup opens a bulwark volume with the same key" cryptsetup open --key-file $T/key "$d1" interop
check "...and reads the same data" sh -c "head -c 4M /dev/mapper/interop | cmp - $T/data"
cryptsetup close interop
cryptsetup luksDump "$d1" > $T/dump
check "luksDump: LUKS2, aes-xts-plain64, 512-bit key, 4096-byte sectors, pbkdf2, bulwark token" sh -c "
  grep -q '^Version:.*2' $T/dump && grep -q 'cipher: aes-xts-plain64' $T/dump && grep -q 'sector: 4096' $T/dump &&
  grep -q 'Cipher key:.*512 bits' $T/dump && grep -q 'PBKDF:.*pbkdf2' $T/dump && grep -q 'bulwark' $T/dump"

# --- integrity ---
d2=$(newdev 64M)
p=$(vol stage --id pvc-int --device "$d2" --key-file $T/key --integrity 2> $T/wipe.log); rc=$?
check "stage --integrity formats, wipes and opens" test $rc -eq 0 -a -b "$p"
check "...reporting wipe progress" grep -q 'integrity wipe' $T/wipe.log
check "an integrity device sits below" test -b "/dev/mapper/$(basename "$p")_dif"
dd if=$T/data of="$p" bs=1M oflag=direct status=none
vol unstage --id pvc-int
check "unstage removed the _dif device too" test ! -e "/dev/mapper/$(basename "$p")_dif"
p=$(vol stage --id pvc-int --device "$d2" --key-file $T/key --integrity)
check "integrity data survives unstage + stage" sh -c "head -c 4M $p | cmp - $T/data"
vol status --id pvc-int --json > $T/status.json
check "status: integrity on, 0 mismatches" python3 -c "
import json; s = json.load(open('$T/status.json')); assert s['integrity'] and s['integrity_mismatches'] == 0, s"
check "a whole read of the wiped device passes integrity checks" dd if="$p" of=/dev/null bs=1M iflag=direct status=none
vol unstage --id pvc-int

# --- devices that hold something are never formatted ---
d3=$(newdev 32M)
mkfs.ext4 -q "$d3"
before=$(sum "$d3")
vol stage --id pvc-ext4 --device "$d3" --key-file $T/key 2> $T/ext4.err; rc=$?
check "a device holding ext4 is refused (exit 5)" sh -c "test $rc -eq 5 && grep -q \"'ext4' signature\" $T/ext4.err"
check "...and is unchanged" test "$(sum "$d3")" = "$before"
d4=$(newdev 16M)
printf 'precious' | dd of="$d4" bs=1 seek=70000 conv=notrunc status=none
before=$(sum "$d4")
check "a device with unknown data at its start is refused" fails vol stage --id pvc-data --device "$d4" --key-file $T/key
check "...and is unchanged" test "$(sum "$d4")" = "$before"

# --- tampered or foreign headers, each refused naming the field ---
tok() { printf '{"type":"bulwark","keyslots":[],"volume_id":"%s","state":"ready","integrity":false,"wipe_offset":"0"}' "$1" > $T/tok.json; cryptsetup token import --json-file $T/tok.json "$2"; }
fmt() { local d=$1; shift; cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file $T/key "$@" "$d"; }
refused() { # id device field
  vol stage --id "$1" --device "$2" --key-file $T/key 2> $T/tamper.err; local rc=$?
  [ $rc -eq 5 ] && grep -q -- "$3" $T/tamper.err && ! dmsetup ls | grep -q "$(bulwark volume status --id "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')"
}
d5=$(newdev 32M); fmt "$d5" --cipher cipher_null-ecb --sector-size 4096; tok pvc-t "$d5"
check "cipher_null is refused" refused pvc-t "$d5" "cipher_null"
d6=$(newdev 32M); fmt "$d6" --cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 4096; tok pvc-t "$d6"
check "another segment cipher is refused" refused pvc-t "$d6" "segments.0.encryption is 'aes-cbc-essiv:sha256'"
d7=$(newdev 32M); fmt "$d7" --cipher aes-xts-plain64 --key-size 512 --sector-size 512; tok pvc-t "$d7"
check "512-byte sectors are refused" refused pvc-t "$d7" "segments.0.sector_size is 512"
d8=$(newdev 32M); fmt "$d8" --cipher aes-xts-plain64 --key-size 512 --sector-size 4096
check "a LUKS2 volume without bulwark's token is refused" refused pvc-t "$d8" "no 'bulwark' token"
tok pvc-other "$d8"
check "a token naming another volume (swap) is refused" refused pvc-t "$d8" "names volume 'pvc-other'"
cryptsetup luksAddKey -q --key-file $T/key --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$d8" --new-keyfile $T/wrong --key-slot 1 2>/dev/null
cryptsetup token remove --token-id 0 "$d8"; tok pvc-t "$d8"
check "a good header with a second ordinary keyslot opens" vol stage --id pvc-t --device "$d8" --key-file $T/key
vol unstage --id pvc-t

# --- key file rules ---
chmod 0644 $T/key
check "a key file readable by others is refused" fails vol stage --id pvc-plain --device "$d1" --key-file $T/key
chmod 0600 $T/key
head -c 31 /dev/urandom > $T/short; chmod 600 $T/short
check "a key file of 31 bytes is refused" fails vol stage --id pvc-plain --device "$d1" --key-file $T/short
finish
