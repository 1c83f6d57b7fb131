#!/usr/bin/env bash
# Man pages and the bash completion, generated from the programs' own help texts (help2man, from
# Debian) and the CLI's area->verb table, so they cannot drift from the code:
#   scripts/gen-docs.sh BUILD_DIR   writes BUILD_DIR/man/{bulwark.1,bulwarkd.8,bulwark-keyservice.8,
#                                   bulwark-csi.8} and BUILD_DIR/completion/bulwark
# `make install` runs it and installs the results (man1, man8, share/bash-completion/completions).
set -euo pipefail
build=${1:?usage: scripts/gen-docs.sh BUILD_DIR}
bin=$build/bin
command -v help2man > /dev/null || { echo "gen-docs: help2man missing (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$build/man" "$build/completion"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# roff-safe text: backslashes doubled, a leading dot or quote escaped, hyphens as \-.
roff() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/' -e 's/-/\\-/g'; }

# bulwark(1): every command with its arguments and summary, from `bulwark AREA VERB --help`.
{
  echo "[COMMANDS]"
  "$bin/bulwark" completion list | while read -r area verb; do
    "$bin/bulwark" $area $verb --help < /dev/null > "$tmp/help" 2>&1
    if [ -n "$verb" ]; then
      printf '.TP\n\\fBbulwark %s %s\\fR %s\n' "$area" "$(roff <<<"$verb")" \
        "$(sed -n '1s/^usage: bulwark [^ ]* [^ ]* *//p' "$tmp/help" | roff)"
      sed -n '2,$s/^ *//p' "$tmp/help" | roff
    else
      printf '.TP\n\\fBbulwark %s\\fR\n' "$area"
      sed -e '1s/^usage: bulwark //' "$tmp/help" | roff | sed 's/^$/.br/'
    fi
  done
  cat <<'EOF'
[EXIT STATUS]
0 success; 1 the operation failed; 2 usage error. Status commands (\fBbulwark status\fR,
\fBnet status\fR, \fBdatapath status\fR): 3 an uplink is not enforced, 4 a foreign filter or tcx
program runs before bulwark's, 5 the WireGuard device is missing, 6 peer counts differ, 7 bulwarkd
unreachable or its last sync failed (the most severe wins). \fBkey\fR: 3 denied, 4 no such
resource, 5 TLS verification failed, 6 no local attestation device. \fBvolume\fR and
\fBstatedisk\fR: the CSI codes of storage/README.md.
.PP
With \fB\-\-json\fR every command prints JSON on stdout, errors as {"error": MESSAGE, "code": CODE}.
[ENVIRONMENT]
.TP
.B BULWARK_PIN_DIR
the bpffs pin directory (default /sys/fs/bpf/bulwark)
.TP
.B BULWARK_CONFIG
the node file (default /etc/bulwark/bulwark.conf)
.TP
.B BULWARK_LOG
log level: debug, info, warn, error
[SEE ALSO]
.BR bulwarkd (8),
.BR bulwark\-keyservice (8),
.BR bulwark\-csi (8),
.BR bpftool (8),
.BR wg (8),
.BR cryptsetup (8)
EOF
} > "$tmp/bulwark.h2m"

v=$("$bin/bulwark" --version | awk '{print $2}')
gen() { # program section description [include]
  help2man --no-info --no-discard-stderr -s "$2" -n "$3" --version-string="$v" ${4:+-i "$4"} \
    -o "$build/man/$1.$2" "$bin/$1"
}
gen bulwark 1 "node-level enforcement for confidential Kubernetes: datapath, WireGuard, volumes, keys" "$tmp/bulwark.h2m"
gen bulwarkd 8 "bulwark's node agent: peers, WireGuard, datapath supervision, metrics and health"
gen bulwark-keyservice 8 "bulwark's reference attested key service (KBS attestation protocol 0.4.0)"
gen bulwark-csi 8 "bulwark's CSI node plugin: encrypted, authenticated volumes"
"$bin/bulwark" completion bash > "$build/completion/bulwark"
