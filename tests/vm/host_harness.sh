#!/usr/bin/env bash
# The VM harness itself: a guest command's status, output and hangs reach the host.
. "$(dirname "$0")/../lib.sh"
require_root
run=$BULWARK_TOP/tests/vm/run

out=$("$run" --timeout 120 -- sh -c 'echo guest-says-hi; uname -r; exit 3' 2>&1); rc=$?
check "a guest command's exit status is returned (3, got $rc)" test "$rc" -eq 3
check "its output is streamed to the host" grep -qx guest-says-hi <<<"$out"
check "it ran on the test kernel, not the host's" grep -qx "$(basename "$(readlink -f "${BULWARK_KERNEL_DIR:-$BUILD/kernel}/current")")" <<<"$out"

marker=$BULWARK_TOP/build/vm-harness-$BW_ID
at_exit "rm -f $marker"
"$run" --timeout 120 -- sh -c "touch $marker; test ! -w /usr/bin" >/dev/null 2>&1; rc=$?
check "the repository is writable and the host root read-only in the guest" test "$rc" -eq 0 -a -f "$marker"

start=$SECONDS
"$run" --timeout 15 -- sleep 600 >/dev/null 2>&1; rc=$?
check "a hung guest is killed at the timeout and reported (124, got $rc)" test "$rc" -eq 124
check "...within a few seconds of the timeout ($((SECONDS - start))s)" test $((SECONDS - start)) -lt 25

# The accelerator is chosen by evidence. A /dev/kvm that exists but cannot run a guest (nested
# virtualisation: qemu spins after the firmware, the kernel never prints) is simulated by a
# writable stand-in for the device node and a qemu that, asked for KVM, prints SeaBIOS's lines
# and then stays silent; asked for TCG it is the real one.
d=$(mktemp -d); at_exit "rm -rf $d"
cat > "$d/qemu" <<'QEMU'
#!/bin/sh
case " $* " in *accel=kvm*) printf 'SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from ROM..\r\n'; exec sleep 600 ;; esac
exec qemu-system-x86_64 "$@"
QEMU
chmod +x "$d/qemu"
: > "$d/kvm"
fake() { env -u BULWARK_VM_ACCEL BULWARK_VM_QEMU=$d/qemu BULWARK_VM_KVM_DEV=$d/kvm BULWARK_VM_ACCEL_CACHE=$d/accel "$@"; }

out=$(BULWARK_VM_PROBE_SECONDS=10 fake "$run" --timeout 300 -- echo ran-after-the-probe 2>&1); rc=$?
printf '%s\n' "$out" | grep '^vm/run' | sed 's/^/# /'
check "a /dev/kvm that cannot boot a guest: the run still succeeds (got $rc)" test "$rc" -eq 0
check "...under TCG, saying why in one line" \
  grep -q "^vm/run: accelerator tcg: .* a KVM guest did not reach the initramfs within 10s" <<<"$out"
check "...and the command ran" grep -qx ran-after-the-probe <<<"$out"
check "the verdict is cached for this host boot" grep -q "^$(cat /proc/sys/kernel/random/boot_id) tcg " "$d/accel"
start=$SECONDS
out=$(fake "$run" --accel-info 2>&1)
check "...and reused without a new probe ($((SECONDS - start))s)" \
  grep -q "^vm/run: accelerator tcg: .*probed earlier this host boot" <<<"$out"

start=$SECONDS
out=$(fake "$run" --accel kvm --timeout 600 -- true 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check "a forced KVM that cannot boot is reported as a hang (124, got $rc)" test "$rc" -eq 124
check "...within 60 s, not at the 600 s timeout ($((SECONDS - start))s)" test $((SECONDS - start)) -lt 60
check "...saying it hung" grep -q "guest hung: its console printed nothing for 45s" <<<"$out"
check "...with the console's tail" grep -q "console: Booting from ROM" <<<"$out"

out=$(BULWARK_VM_ACCEL=tcg "$run" -- true 2>&1); rc=$?
check "BULWARK_VM_ACCEL=tcg tests/vm/run -- true works (got $rc)" test "$rc" -eq 0
check "...and says the accelerator was forced" grep -q "^vm/run: accelerator tcg: forced" <<<"$out"
finish
