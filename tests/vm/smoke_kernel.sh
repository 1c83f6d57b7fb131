#!/usr/bin/env bash
# Harness smoke test inside the VM: the kernel features the host lacks are really there.
. "$(dirname "$0")/../lib.sh"
require_root
[ "${BULWARK_IN_VM:-}" = 1 ] || skip "runs inside tests/vm/run"

for m in loop dm_crypt dm_integrity wireguard; do
  check "modprobe $m" modprobe "$m"
done
check "ip link add type wireguard" ip link add "wg$BW_ID" type wireguard
check "wg(8) configures the kernel device over netlink" wg set "wg$BW_ID" listen-port 51820
check "wg(8) reads it back" sh -c "wg show wg$BW_ID listen-port | grep -qx 51820"
ip link del "wg$BW_ID" 2>/dev/null

img=/tmp/luks.img key=/tmp/luks.key
truncate -s 32M "$img"
head -c 32 /dev/urandom > "$key"
loop=$(losetup --find --show "$img")
at_exit "cryptsetup close bw-smoke; losetup -d $loop"
check "luksFormat LUKS2 with hmac-sha256 integrity" \
  cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 \
    --integrity hmac-sha256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file "$key" "$loop"
check "luksOpen" cryptsetup open --key-file "$key" "$loop" bw-smoke
check "the integrity device is stacked below" sh -c "dmsetup ls | grep -q bw-smoke_dif"
head -c 1M /dev/urandom > /tmp/data
check "write through dm-crypt+dm-integrity" dd if=/tmp/data of=/dev/mapper/bw-smoke bs=1M count=1 oflag=direct status=none
check "read back equals what was written" \
  sh -c "dd if=/dev/mapper/bw-smoke bs=1M count=1 iflag=direct status=none | cmp - /tmp/data"
check "close" cryptsetup close bw-smoke
check "the backing file does not contain the plaintext" python3 -c "
import sys
needle = open('/tmp/data', 'rb').read(4096)[:64]
sys.exit(needle in open('$img', 'rb').read())"
finish
