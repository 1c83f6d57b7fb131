#!/usr/bin/env bash
# Part 4 of the demo, inside the test VM: stage an encrypted volume with the key the key service
# handed out, put a filesystem and a file on it, unstage, stage again, read the file back.
#   usage (inside tests/vm/run): demo-volume.sh KEYFILE
set -u
export PATH="$(cd "$(dirname "$0")/.." && pwd)/build/bin:$PATH"
key=$1 failed=0
show() { printf '$ %s\n' "$*"; "$@" 2>&1 | sed 's/^/  /'; return "${PIPESTATUS[0]}"; }
expect() { local d=$1; shift; if "$@" >/dev/null 2>&1; then printf '  [ok] %s\n' "$d"; else printf '  [FAILED] %s\n' "$d"; failed=1; fi; }
modprobe -a loop dm_crypt dm_integrity || exit 1
truncate -s 48M /tmp/disk.img
dev=$(losetup --find --show /tmp/disk.img)
show bulwark volume stage --id pvc-demo --device "$dev" --integrity --key-file "$key"
path=$(bulwark volume stage --id pvc-demo --device "$dev" --integrity --key-file "$key") || exit 1
mkfs.ext4 -q "$path" && mkdir -p /tmp/mnt && mount "$path" /tmp/mnt && echo "hello from a confidential pod" > /tmp/mnt/hello && umount /tmp/mnt
show bulwark volume status --id pvc-demo
show bulwark volume unstage --id pvc-demo
show bulwark volume stage --id pvc-demo --device "$dev" --integrity --key-file "$key"
mount "$path" /tmp/mnt && show cat /tmp/mnt/hello
expect "the file survived unstage + stage" grep -q "confidential pod" /tmp/mnt/hello
umount /tmp/mnt
printf '$ cryptsetup luksDump %s   (what an operator sees)\n' "$dev"
cryptsetup luksDump "$dev" | grep -E '^Version|cipher:|integrity:|sector:|PBKDF|Tokens:|bulwark' | sed 's/^/  /'
expect "the plaintext is not on the disk" sh -c "! grep -q 'confidential pod' /tmp/disk.img"
bulwark volume unstage --id pvc-demo > /dev/null
losetup -d "$dev"
exit $failed
