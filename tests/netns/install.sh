#!/usr/bin/env bash
# `make install` honours PREFIX and DESTDIR: binaries, the bulwark-storage library with its
# headers and a pkg-config file that a program really compiles and links against, systemd units
# that systemd-analyze accepts without a warning, nothing of DESTDIR baked into any file, and
# `make uninstall` removes it all again. Runs on the host (no root needed).
. "$(dirname "$0")/../lib.sh"
top=$BULWARK_TOP
TMP=$(mktemp -d) && at_exit "rm -rf $TMP"
dst=$TMP/root

make -s -C "$top" BUILD="$BUILD" install DESTDIR="$dst" PREFIX=/opt/bw > "$TMP/install.log" 2>&1
check "make install DESTDIR=… PREFIX=/opt/bw succeeds" test $? -eq 0
for f in bin/bulwark bin/bulwarkd bin/bulwark-keyservice; do
  check "$f installed, executable" test -x "$dst/opt/bw/$f"
done
check "the installed CLI runs: bulwark version" "$dst/opt/bw/bin/bulwark" version
# libcurl and tpm2-tss are loaded only by the commands that use them (common/dl.c)
check "the CLI does not link libcurl or tpm2-tss (loaded on first use)" \
  fails sh -c "readelf -d '$dst/opt/bw/bin/bulwark' | grep NEEDED | grep -E 'libcurl|libtss2'"
for u in bulwarkd bulwark-statedisk bulwark-keyservice bulwark-enforce; do
  check "unit $u.service installed" test -f "$dst/opt/bw/lib/systemd/system/$u.service"
done
check "units run the binaries from PREFIX" grep -q '^ExecStart=/opt/bw/bin/bulwarkd ' "$dst/opt/bw/lib/systemd/system/bulwarkd.service"
check "the state disk is opened before kubelet" grep -q '^Before=kubelet.service' "$dst/opt/bw/lib/systemd/system/bulwark-statedisk.service"
check "enforcement is attached before the kubelet and the container runtime" \
  sh -c 'grep "^Before=" "$1" | grep -q containerd.service && grep "^Before=" "$1" | grep -q kubelet.service' _ \
  "$dst/opt/bw/lib/systemd/system/bulwark-enforce.service"
check "...and kubelet requires it" grep -q '^RequiredBy=kubelet.service' "$dst/opt/bw/lib/systemd/system/bulwark-statedisk.service"
# Man pages and completion, generated from the help texts and the CLI's table.
for m in man1/bulwark.1 man8/bulwarkd.8 man8/bulwark-keyservice.8 man8/bulwark-csi.8; do
  # man reads stdin: as root it formats as user 'man', who cannot open a file under our 0700 $TMP
  check "man page $m installed and renders" sh -c "MANWIDTH=100 man -l - < '$dst/opt/bw/share/man/$m' 2>/dev/null | grep -q '^NAME'"
done
# ASCII rendering (hyphens stay '-'), justification's extra spaces squeezed.
LC_ALL=C MANWIDTH=200 man -l - < "$dst/opt/bw/share/man/man1/bulwark.1" 2>/dev/null | tr -s ' ' > "$TMP/bulwark.man"
missing=$("$dst/opt/bw/bin/bulwark" completion list | while read -r a v; do
  grep -qw -- "bulwark $a${v:+ $v}" "$TMP/bulwark.man" || printf ' %s' "$a${v:+ $v}"; done)
check "bulwark(1) documents every command of the CLI's table${missing:+ (missing:$missing)}" test -z "$missing"
check "bash completion installed" grep -q "complete -F _bulwark bulwark" "$dst/opt/bw/share/bash-completion/completions/bulwark"
check "no file holds the DESTDIR path" fails grep -rlF "$dst" "$dst"
check "no file is group- or world-writable" test -z "$(find "$dst" -perm /022 -type f)"

# systemd checks the units (ExecStart paths must exist: point them at the staged binaries).
if command -v systemd-analyze > /dev/null; then
  mkdir -p "$TMP/units"
  for u in "$dst"/opt/bw/lib/systemd/system/*.service; do
    sed "s|/opt/bw/|$dst/opt/bw/|g" "$u" > "$TMP/units/$(basename "$u")"
  done
  systemd-analyze verify "$TMP"/units/*.service > "$TMP/verify.log" 2>&1
  check "systemd-analyze verify accepts the units" test $? -eq 0
  check "...without a single warning" test ! -s "$TMP/verify.log"
  cat "$TMP/verify.log"
else
  not_ok "systemd-analyze missing (package systemd)"
fi

# A program builds against the installed library through pkg-config alone.
cat > "$TMP/use.c" <<'C'
#include <stdio.h>
#include <bulwark/storage.h>
#include <bulwark/bulwark_abi.h>
int main(void) { printf("%s\n", bw_vol_code_name(bw_vol_code(-16))); return 0; }
C
export PKG_CONFIG_SYSROOT_DIR=$dst PKG_CONFIG_PATH=$dst/opt/bw/lib/pkgconfig
check "pkg-config finds bulwark-storage" pkg-config --exists bulwark-storage
check "a program compiles and links against it" \
  cc -o "$TMP/use" "$TMP/use.c" $(pkg-config --cflags --libs bulwark-storage)
check "...and runs" "$TMP/use"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH

make -s -C "$top" BUILD="$BUILD" uninstall DESTDIR="$dst" PREFIX=/opt/bw > /dev/null 2>&1
check "make uninstall leaves no file behind" test -z "$(find "$dst" -type f)"
finish
