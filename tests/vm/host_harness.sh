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
finish
