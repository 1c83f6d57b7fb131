#!/usr/bin/env bash
# The README's main command, `sudo make demo`, does what it shows: every step it checks holds
# (pods talk only through WireGuard, a removed peer fails closed, the key service's key is the
# documented HKDF value, a volume staged with it keeps its data and holds no plaintext).
. "$(dirname "$0")/../lib.sh"
require_root
out=$(bash "$BULWARK_TOP/scripts/demo.sh" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check "the demo exits 0" test "$rc" -eq 0
check "...and says every step did what it shows" grep -q "every step did what it shows" <<<"$out"
check "...after checking each of them" test "$(grep -c '\[ok\]' <<<"$out")" -ge 9
check "...and no step failed" exits 1 grep -q FAILED <<<"$out"
check "it never prints a key, only fingerprints" exits 1 grep -qiE '[0-9a-f]{64}' <<<"$out"
finish
