#!/usr/bin/env bash
# Fetch Debian's current linux-image-amd64 kernel into a cache folder for tests/vm.
# Never installs anything into /boot: the package is only downloaded and unpacked.
#   usage: scripts/fetch-test-kernel.sh [CACHE_DIR]   (default: build/kernel, or $BULWARK_KERNEL_DIR)
# Prints the unpacked kernel folder; tests/vm/run finds it there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-${BULWARK_KERNEL_DIR:-$top/build/kernel}}
mkdir -p "$cache"
cd "$cache"

# The metapackage names the versioned image package it depends on today.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-test-kernel: cannot resolve linux-image-amd64" >&2; exit 1; }
ver=${pkg#linux-image-}
root=$cache/$ver

if [ -f "$root/.complete" ]; then
  echo "fetch-test-kernel: $ver cached in $root"
  ln -sfn "$ver" "$cache/current"
  exit 0
fi

rm -rf "$root" "$cache"/*.deb
apt-get download -q "$pkg" </dev/null
dpkg-deb -x "$cache"/"${pkg}"_*.deb "$root"
rm -f "$cache"/*.deb
[ -f "$root/boot/vmlinuz-$ver" ] || { echo "fetch-test-kernel: no vmlinuz in $pkg" >&2; exit 1; }
depmod -b "$root" "$ver"
touch "$root/.complete"
ln -sfn "$ver" "$cache/current"
echo "fetch-test-kernel: $ver unpacked in $root"
