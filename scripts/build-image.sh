#!/usr/bin/env bash
# Build bulwark's OCI image archive from Debian packages with Debian's own tools, no registry:
#   1. `make install DESTDIR=stage PREFIX=/usr` (the binaries of this tree);
#   2. the Debian packages holding the libraries those binaries link against (found with ldd +
#      dpkg -S on this machine, so the list follows the code), plus wireguard-go (started by
#      bulwarkd when the kernel has no WireGuard) and the TPM access libraries tpm2-tss loads;
#   3. mmdebstrap --variant=extract: those packages and their hard dependencies, unpacked, no
#      maintainer scripts, no shell, no package manager; docs, man pages, locales left out;
#   4. umoci: an OCI image layout with that rootfs as its one layer, tarred (an "oci-archive",
#      which podman load, skopeo and containerd's ctr import read).
# Output: $IMAGE (default build/image/bulwark-oci.tar), tag $IMAGE_TAG (default dev), and a
# file $IMAGE.packages listing the Debian packages in the image with their versions.
# Needs root (mmdebstrap root mode), mmdebstrap, umoci, and the Debian mirror apt uses.
# MIRROR overrides the Debian mirror (default: the first deb.debian.org-style source apt has).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
IMAGE=${IMAGE:-$BUILD/image/bulwark-oci.tar}
IMAGE_TAG=${IMAGE_TAG:-dev}
SUITE=${SUITE:-bookworm}
die() { echo "build-image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap writes device-free rootfs with correct ownership only as root)"
for t in mmdebstrap umoci dpkg ldd strings ldconfig; do
  command -v "$t" > /dev/null || die "$t is missing: run scripts/install-deps.sh"
done
for b in bulwark bulwarkd bulwark-keyservice; do
  [ -x "$BUILD/bin/$b" ] || die "$BUILD/bin/$b is not built: run make"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# 1. The tree's own files, as they will be in the image.
make -s -C "$top" BUILD="$BUILD" install DESTDIR="$work/stage" PREFIX=/usr DOCDIR=/usr/share/doc/bulwark > /dev/null
rm -rf "$work/stage/usr/include" "$work/stage/usr/lib/bulwark" "$work/stage/usr/lib/pkgconfig" \
       "$work/stage/usr/lib/systemd"   # build-time and host-only parts

# 2. Runtime packages: whoever owns each shared library the binaries need.
owner() { # library path -> package name (paths differ by the /usr merge; try each spelling)
  local p=$1 r
  r=$(readlink -f "$p")
  for c in "$p" "$r" "${r#/usr}" "/usr$p"; do
    dpkg -S "$c" 2> /dev/null | head -1 | cut -d: -f1 && return 0
  done
  die "no Debian package owns $p (built against a library not from the archive?)"
}
pkgs=()
while read -r lib; do
  pkgs+=("$(owner "$lib")")
done < <(for b in "$BUILD"/bin/bulwark "$BUILD"/bin/bulwarkd "$BUILD"/bin/bulwark-keyservice; do
           ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
         done | sort -u)
# dlopen()ed on first use, so invisible to ldd: the sonames our binaries name (common/dl.c loads
# libcurl and tpm2-tss that way; `strings` finds "libcurl.so.4" etc.), each with its closure.
dlopened() { # binaries... -> library paths of the sonames they name but do not link
  local s p
  for s in $(strings -n 6 "$@" | grep -E '^lib[A-Za-z0-9_+-]+\.so\.[0-9]+$' | sort -u); do
    p=$(ldconfig -p | awk -v s="$s" '$1 == s && $0 ~ /x86-64/ { print $NF; exit }')
    [ -n "$p" ] || die "$s is loaded at run time but not installed here: run scripts/install-deps.sh"
    echo "$p"
    ldd "$p" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
  done
}
while read -r lib; do
  pkgs+=("$(owner "$lib")")
done < <(dlopened "$BUILD"/bin/bulwark "$BUILD"/bin/bulwarkd "$BUILD"/bin/bulwark-keyservice | sort -u)
# tpm2-tss's TCTI for /dev/tpmrm0 is dlopen()ed by tss2-tctildr by a computed name (bulwark key
# fetch, statedisk); wireguard-go is started by bulwarkd.
pkgs+=(libtss2-tcti-device0 wireguard-go)
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
echo "build-image: ${#pkgs[@]} packages: ${pkgs[*]}"

if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(apt-get indextargets --format '$(SITE)' 'Identifier: Packages' 2> /dev/null \
           | grep -v security | head -1 || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

# Downloaded packages are kept for the next build (apt fetches only what changed).
cache=${IMAGE_CACHE:-$BUILD/image/debs}
mkdir -p "$cache"

# 3. The rootfs. SOURCE_DATE_EPOCH pins timestamps (the tree's last commit, when in git).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2> /dev/null || date +%s)}
mmdebstrap --quiet --mode=root --variant=extract --format=tar \
  --include="$(IFS=,; echo "${pkgs[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --setup-hook="mkdir -p \"$cache\" \"\$1/var/cache/apt/archives\"" \
  --setup-hook="sync-in \"$cache\" /var/cache/apt/archives/" \
  --extract-hook="ls \"\$1/var/cache/apt/archives\" | sed -n 's/\\.deb\$//p' | sed 's/%3a/:/' | tr _ ' ' > $work/packages" \
  --extract-hook="sync-out /var/cache/apt/archives \"$cache\"" \
  --extract-hook="sync-in $work/stage /" \
  --extract-hook='mkdir -p "$1/run" "$1/tmp" "$1/var" "$1/etc" "$1/sys/fs/bpf" && chmod 1777 "$1/tmp" && ln -sfn ../run "$1/var/run"' \
  --extract-hook='printf "root:x:0:0:root:/root:/usr/sbin/nologin\n" > "$1/etc/passwd"; printf "root:x:0:\n" > "$1/etc/group"' \
  --extract-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"; rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists"' \
  "$SUITE" "$work/rootfs.tar" "$MIRROR"

# What is in the image (dpkg's status stays empty in extract mode): name version arch per line.
mkdir -p "$(dirname "$IMAGE")"
# (the cache may hold older versions from earlier builds: the newest of each name is the one used)
sort -k1,1 -k2,2V "$work/packages" | awk '{ v[$1] = $0 } END { for (p in v) print v[p] }' | sort > "$IMAGE.packages"

# 4. The OCI layout and its archive.
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:$IMAGE_TAG"
umoci raw add-layer --image "$layout:$IMAGE_TAG" "$work/rootfs.tar"
version=$("$BUILD/bin/bulwark" version | awk '{ print $2 }')
umoci config --image "$layout:$IMAGE_TAG" \
  --os linux --architecture amd64 --config.user 0:0 --config.workingdir / \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.cmd /usr/bin/bulwarkd \
  --config.label org.opencontainers.image.title=bulwark \
  --config.label org.opencontainers.image.version="$version" \
  --config.label org.opencontainers.image.base.name="debian:$SUITE (mmdebstrap --variant=extract)" \
  --created "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
umoci gc --layout "$layout"
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -cf "$IMAGE.tmp" . && mv "$IMAGE.tmp" "$IMAGE"
rootfs_mb=$(( $(stat -c %s "$work/rootfs.tar") / 1000000 ))
echo "build-image: $IMAGE ($(( $(stat -c %s "$IMAGE") / 1000000 )) MB archive, ${rootfs_mb} MB rootfs) in $(( $(date +%s) - start )) s"
