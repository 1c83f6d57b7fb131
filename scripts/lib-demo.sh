# Shared start of the demo scripts (scripts/demo.sh, scripts/demo-mesh.sh): the test libraries,
# root and bpffs, and the step / show / expect helpers. Source with $here set to scripts/.
set -u
. "$here/../tests/lib.sh"
. "$here/../tests/lib-cluster.sh"
. "$here/../tests/lib-keys.sh"
. "$here/../tests/lib-tpm.sh"
require_root
bpffs_ensure
failed=0
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" | sed "s|$TMP|\$TMP|g"; "$@" 2>&1 | sed 's/^/  /'; }
expect() { local d=$1; shift; if "$@" >/dev/null 2>&1; then printf '  [ok] %s\n' "$d"; else printf '  [FAILED] %s\n' "$d"; failed=1; fi; }
