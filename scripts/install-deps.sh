#!/usr/bin/env bash
# Install every build and test dependency of bulwark from Debian's archive.
# Idempotent: when all packages are already installed it only checks (a few seconds).
set -euo pipefail

PKGS=(
  # build
  make gcc clang llvm lld libc6-dev pkg-config libbpf-dev bpftool linux-libc-dev
  libmnl-dev
  libcryptsetup-dev libdevmapper-dev libblkid-dev libssl-dev libjson-c-dev
  libyaml-dev  # kubeconfig files (userspace/k8s)
  libcurl4-openssl-dev libevent-dev libtss2-dev libcmocka-dev libclang-rt-14-dev
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev libmount-dev  # bulwark-csi
  # runtime tools used by tests and the VM harness
  kmod iproute2 iputils-ping iperf3 tcpdump procps util-linux e2fsprogs
  wireguard-tools wireguard-go cryptsetup-bin
  qemu-system-x86 busybox-static cpio xz-utils zstd dpkg
  swtpm swtpm-tools tpm2-tools openssl python3 python3-jwcrypto curl
  libtss2-tcti-swtpm0   # tpm2-tss TCTI for swtpm in socket mode (tests/lib-tpm.sh)
  python3-grpcio python3-grpc-tools xfsprogs  # tests/vm/csi_*.sh: a real gRPC client, xfs volumes
  gdb  # tests/vm/volume_tamper.sh: stops bulwark between header check and activation
  faketime  # tests/netns/keys_rejections.sh: the key service's clock jumps past a token's exp
  systemd  # systemd-analyze: tests/netns/install.sh verifies the installed units
  mmdebstrap umoci runc  # make image: rootfs from Debian packages, OCI layout, and running it in tests
  python3-yaml  # tests/netns/deploy_render.sh reads the rendered manifests
  help2man man-db  # make docs / make install: man pages from the help texts (tests/netns/install.sh reads them)
)

# Debian's kubectl (package kubernetes-client, 1.20 with kustomize v2.0.3) renders deploy/ in
# tests/netns/deploy_render.sh. Where another package already owns /usr/bin/kubectl (Google's
# `kubectl` on some images) the two cannot be installed together: Debian's is unpacked beside it.
KUBECTL_DIR=/usr/local/lib/bulwark/kubernetes-client
kubectl_owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
if [ -z "$kubectl_owner" ] || [ "$kubectl_owner" = kubernetes-client ]; then
  PKGS+=(kubernetes-client)
elif [ ! -x "$KUBECTL_DIR/usr/bin/kubectl" ]; then
  echo "install-deps: /usr/bin/kubectl belongs to $kubectl_owner: unpacking kubernetes-client into $KUBECTL_DIR"
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq kubernetes-client) || { apt-get update -qq && (cd "$tmp" && apt-get download -qq kubernetes-client); }
  mkdir -p "$KUBECTL_DIR" && dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$KUBECTL_DIR"
  rm -rf "$tmp"
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "install-deps: done"
