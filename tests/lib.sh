# Shared helpers for shell tests (netns and vm suites). Source it: . "$(dirname "$0")/../lib.sh"
#
#   check "description" cmd args...   run cmd; print TAP "ok N - description" or "not ok"
#   ok / not_ok "description"         report a result directly
#   skip "reason"                     skip the whole test (exit 77, reason printed)
#   netns_new NAME                    create a uniquely named netns, removed on exit; prints it
#   netns_del NAME                    remove a netns: its processes get SIGTERM, then SIGKILL
#   at_exit "cmd"                     run cmd on exit (LIFO), even when the test fails
#   bpffs_ensure                      mount bpffs on /sys/fs/bpf when it is not mounted
#   nsx NS cmd args...                run cmd in netns NS without remounting /sys (unlike
#                                     `ip netns exec`, which hides /sys/fs/bpf and its pins)
#   finish                            exit 1 when any check failed, else 0
set -u
BULWARK_TOP=${BULWARK_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$BULWARK_TOP/build}
export PATH="$BUILD/bin:$PATH"
_tap_n=0 _tap_failed=0
# Unique per test run: netns, links and wireguard-go sockets are global names.
BW_ID=${BW_ID:-$(printf '%04x' $(( ($$ + RANDOM) & 0xffff )))}

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
check() {
  local desc=$1; shift
  if "$@"; then ok "$desc"; else not_ok "$desc (command: $*)"; fi
}
skip() { echo "SKIP: $*"; exit 77; }
# check "x fails" fails cmd...  (works with shell functions, unlike sh -c). A crash, a signal
# or a missing command (status >= 126) is not the failure a test means: use `exits N` where the
# status is documented.
fails() { local rc=0; "$@" || rc=$?; [ "$rc" -ne 0 ] && [ "$rc" -lt 126 ] && return 0
  echo "fails: exit status $rc from: $*" >&2; return 1; }
finish() { [ "$_tap_failed" -eq 0 ] && [ "$_tap_n" -gt 0 ]; exit $?; }
die() { not_ok "$*"; exit 1; }

# Cleanups go to a file, not a variable: helpers called as $(...) run in a subshell, and what
# they register there (netns_new's netns, say) must still be undone when the test exits.
_at_exit_file=$(mktemp "${TMPDIR:-/tmp}/bw-at-exit.XXXXXX") _at_exit_owner=$BASHPID
at_exit() { printf '%s\n' "$1" >> "$_at_exit_file"; }
_run_at_exit() {
  local c
  [ "$BASHPID" = "$_at_exit_owner" ] && [ -f "$_at_exit_file" ] || return 0
  while IFS= read -r c; do eval "$c" >/dev/null 2>&1 || true; done < <(tac "$_at_exit_file")
  rm -f "$_at_exit_file"
}
trap _run_at_exit EXIT
trap 'exit 130' INT TERM

require_root() { [ "$(id -u)" -eq 0 ] || skip "needs root"; }

# Its processes get SIGTERM first (wireguard-go then removes its UAPI socket; SIGKILL would leave
# /var/run/wireguard/<dev>.sock behind), SIGKILL after 3 s.
netns_new() {
  local name="bw$BW_ID-$1"
  ip netns add "$name" || die "ip netns add $name"
  at_exit "netns_del $name"
  ip -n "$name" link set lo up
  echo "$name"
}

netns_del() {
  local pids i
  pids=$(ip netns pids "$1" 2>/dev/null)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null
    for i in $(seq 30); do [ -z "$(ip netns pids "$1" 2>/dev/null)" ] && break; sleep 0.1; done
    ip netns pids "$1" 2>/dev/null | xargs -r kill -9
  fi
  ip netns del "$1"
}

nsx() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }

bpffs_ensure() {
  [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || mount -t bpf bpf /sys/fs/bpf
}

# Wait until a command succeeds (timeout in tenths of seconds).
wait_for() {
  local tries=$1; shift
  while [ "$tries" -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1; tries=$((tries - 1))
  done
  return 1
}

# check "x exits 3" exits 3 cmd...: cmd's exit status is exactly N (diagnostic on stderr).
exits() {
  local want=$1 rc=0; shift
  "$@" || rc=$?
  [ "$rc" -eq "$want" ] && return 0
  echo "exits: status $rc, expected $want, from: $*" >&2; return 1
}
