#!/usr/bin/env bash
# The CLI answers like an operator expects, for every command it has: the list comes from the
# CLI's own area->verb table (`bulwark completion list`), so a new verb is covered without editing
# this test. For each command: `--help` exits 0 on stdout with a usage line naming it; a bad option
# with `--json` exits 2 with exactly one {"error": string, "code": 2} object on stdout; every area
# does the same for an unknown verb. The three daemons answer --version and --help with 0. The
# bash completion, generated from the same table, completes areas, verbs and a verb's options.
# A non-root user is told what is missing. No network, no devices: a few seconds.
. "$(dirname "$0")/../lib.sh"
TMP=$(mktemp -d) && at_exit "rm -rf $TMP"
bulwark completion list > "$TMP/list"
check "the table lists commands ($(wc -l < "$TMP/list"))" test "$(wc -l < "$TMP/list")" -ge 20

# Outputs to check as {"error", "code"} documents are collected in $TMP/json/ (one python run:
# an interpreter start costs seconds on a loaded machine). Name: "<expected code> <command>".
mkdir "$TMP/json"
bad_help= n=0
while read -r area verb; do
  cmd="$area${verb:+ $verb}"
  bulwark $area $verb --help < /dev/null > "$TMP/out" 2> "$TMP/err"; rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q "^usage: bulwark $cmd" "$TMP/out"; then
    bad_help+=" [$cmd: rc $rc: $(head -c 200 "$TMP/out" "$TMP/err" | tr '\n' ' ')]"
  fi
  n=$((n + 1))
  bulwark $area $verb --no-such-option --json < /dev/null > "$TMP/json/$n" 2> /dev/null
  echo "$? 2 $cmd --no-such-option --json" > "$TMP/json/$n.what"
done < "$TMP/list"
check "every command answers --help with exit 0 and its usage line${bad_help:+:$bad_help}" test -z "$bad_help"

bad=
for area in $(cut -d' ' -f1 "$TMP/list" | sort -u); do
  grep -q "^$area " "$TMP/list" || continue # an area without verbs takes options, tested above
  bulwark "$area" --help > "$TMP/out" 2>&1 || bad+=" [$area --help: exit $?]"
  grep -q "^usage: bulwark $area <verb>" "$TMP/out" || bad+=" [$area --help: no usage line]"
  n=$((n + 1))
  bulwark "$area" no-such-verb --json < /dev/null > "$TMP/json/$n" 2> /dev/null
  echo "$? 2 $area no-such-verb --json" > "$TMP/json/$n.what"
done
check "every area: --help exits 0 with its usage line${bad:+:$bad}" test -z "$bad"
# Exactly one JSON document on stdout, {"error": non-empty string, "code": the exit code} (the
# volume areas give CSI code names as strings), and the expected exit code.
python3 - "$TMP/json" > "$TMP/json.bad" <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.what"))):
    rc, want, what = open(f).read().strip().split(" ", 2)
    text = open(f[:-5]).read()
    try:
        d = json.loads(text)  # exactly one document: trailing data raises
        assert isinstance(d, dict) and set(d) == {"error", "code"}, "keys %s" % sorted(d)
        assert isinstance(d["error"], str) and d["error"], "empty error"
        assert d["code"] == int(rc) or isinstance(d["code"], str), "code %r, exit %s" % (d["code"], rc)
        assert rc == want, "exit %s, expected %s" % (rc, want)
    except Exception as e:
        print("[%s: %s; stdout %r]" % (what, e, text[:160]))
PY
check "every command with a bad option, every area with an unknown verb, --json: one {error, code} on stdout, exit 2 $(cat "$TMP/json.bad")" \
  test ! -s "$TMP/json.bad" -a "$(ls "$TMP/json" | grep -c what)" -eq "$n"
check "bulwark --help exits 0" sh -c "bulwark --help > /dev/null"
bulwark no-such-area --json > "$TMP/out" 2> /dev/null; rc=$?
check "an unknown area is exit 2" test "$rc" -eq 2

for p in bulwark bulwarkd bulwark-keyservice bulwark-csi; do
  check "$p --version: exit 0, names itself" sh -c "$p --version | grep -q '^$p [0-9]'"
  check "$p --help: exit 0, usage on stdout" sh -c "$p --help | grep -q '^usage: $p'"
done

# Completion from the generated script, as bash calls it.
bulwark completion bash > "$TMP/complete.bash"
comp() { # words...: the completions of the last word
  bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bulwark; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$TMP/complete.bash" "$@" | sort | tr '\n' ' '
}
check "completion: areas ($(comp bulwark da))" test "$(comp bulwark da)" = "datapath "
check "completion: verbs of an area ($(comp bulwark datapath mo))" test "$(comp bulwark datapath mo)" = "monitor "
check "completion: a verb's options from its help ($(comp bulwark datapath monitor --re))" \
  test "$(comp bulwark datapath monitor --re)" = "--reason --replay "
# Every listed verb completes after its area (one bash for all of them).
missing=$(bash -c '. "$1"; while read -r a v; do [ -z "$v" ] && continue
  COMP_WORDS=(bulwark "$a" ""); COMP_CWORD=2; _bulwark
  printf "%s\n" "${COMPREPLY[@]}" | grep -qx -- "$v" || printf " %s" "$a $v"; done < "$2"' _ "$TMP/complete.bash" "$TMP/list")
check "completion: every listed verb completes${missing:+ (missing:$missing)}" test -z "$missing"

# A non-root user is told what it lacks, not a misleading symptom.
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bulwark datapath status --pin-dir /sys/fs/bpf/bw-no-$BW_ID 2>&1)
  check "non-root datapath status: says it needs root or capabilities ($out)" grep -qi "root\|CAP_" <<<"$out"
fi
finish
