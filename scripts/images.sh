#!/usr/bin/env bash
# Builds, from a clean clone, what a cluster runs:
#   target/dist/linux-{amd64,arm64}/{openclaw-bridge,openclaw-worker,openclaw}
#       static (musl) release binaries; libgit2's OpenSSL compiled in, rustls elsewhere
#   target/images/openclaw-{bridge,worker}-{amd64,arm64}.oci.tar
#       FROM-scratch OCI images (deploy/Dockerfile, built with buildah), one per platform
#   target/images/openclaw-worker-devops-{amd64,arm64}.oci.tar
#       the devops agent's worker: the worker plus aws and kubectl from Debian trixie's packages
#       (unpacked with mmdebstrap); helm, which Debian lacks, is added from
#       OPENCLAW_HELM_BIN_AMD64 / OPENCLAW_HELM_BIN_ARM64 when they name a helm binary
#   target/images/openclaw-worker-coder-{amd64,arm64}.oci.tar
#       the coder agent's worker: a slim Debian trixie tree (a shell and its utilities, git, gcc
#       and make, Python, Node) with the static worker copied in — the README's recipe for
#       making any image a worker image
#   target/images/oci/
#       an OCI image layout holding the multi-arch indexes openclaw-{bridge,worker}:VERSION
#       (`podman pull oci:target/images/oci:openclaw-worker:0.1.0`, or skopeo copy to a registry)
# and prints a table of image, platform and size. Cross-compiling uses zig as the C compiler
# and linker (PyPI ziglang, driven by cargo-zigbuild); scripts/tools.sh installs all of it.
# Container storage lives in target/containers (nothing is cached outside the clone); the
# image tests use the same storage through target/containers/*.conf.
#
#   bash scripts/images.sh                  binaries and images, both platforms
#   bash scripts/images.sh --binaries-only  binaries and target/dist/rootfs (for docker buildx)
#   bash scripts/images.sh --platforms amd64
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
platforms="amd64 arm64"
binaries_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binaries-only) binaries_only=1 ;;
    --platforms) platforms=${2//,/ }; shift ;;
    *) echo "usage: scripts/images.sh [--binaries-only] [--platforms amd64,arm64]" >&2; exit 2 ;;
  esac
  shift
done
export OPENCLAW_IMAGE_TOOLS=1 OPENCLAW_DEMO_ONLY=1
source scripts/tools.sh

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_url=${OPENCLAW_IMAGE_SOURCE:-https://github.com/openclaw/openclaw-rs}
dist=target/dist
images=target/images

triple() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    *) echo "unknown platform $1 (amd64 or arm64)" >&2; exit 2 ;;
  esac
}

# 1. Static binaries. The dist profile is release, stripped, optimised for size. One cargo
# run for all platforms lets the two compilations overlap on two cores.
targets=()
for arch in $platforms; do targets+=(--target "$(triple "$arch")"); done
echo "==> building the binaries for linux/${platforms// /, linux/}" >&2
cargo zigbuild --locked --profile dist "${targets[@]}" \
  -p openclaw-bridge -p openclaw-worker -p openclaw-cli --features openclaw-worker/vendored-openssl
for arch in $platforms; do
  mkdir -p "$dist/linux-$arch"
  for bin in openclaw-bridge openclaw-worker openclaw; do
    cp "target/$(triple "$arch")/dist/$bin" "$dist/linux-$arch/$bin"
  done
done

# 2. The root file system every image shares: users, CA bundle, writable /tmp and /work.
rootfs=$dist/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/work"
chmod 1777 "$rootfs/tmp" "$rootfs/work"
printf 'root:x:0:0:root:/root:/sbin/nologin\nopenclaw:x:65532:65532:openclaw:/work:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nopenclaw:x:65532:\n' >"$rootfs/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"

# The devops worker's tools, per platform: Debian packages unpacked, not configured
# (--variant=extract runs no maintainer scripts, so arm64 needs no emulation), trimmed of
# documentation and package-manager state. trixie: bookworm's kubectl is 1.20, outside the
# supported skew of a 1.33 cluster; trixie's is 1.32.
for arch in $platforms; do
  tree=$dist/devops-$arch
  rm -rf "$tree"
  echo "==> the devops tools for linux/$arch (Debian trixie: awscli, kubectl)" >&2
  mmdebstrap --quiet --mode=root --variant=extract --architectures="$arch" \
    --include=awscli,kubectl trixie "$tree" http://deb.debian.org/debian >&2
  rm -rf "$tree"/usr/share/{doc,man,info,locale,lintian} "$tree"/var/cache/* "$tree"/var/lib/apt \
    "$tree"/var/lib/dpkg "$tree"/var/log/* "$tree"/dev "$tree"/proc "$tree"/sys "$tree"/run \
    "$tree"/etc/passwd "$tree"/etc/group   # the base image's users stay
  # trixie is merged-/usr; the links are made by packages extract does not configure.
  for d in bin lib lib64 sbin; do if [ -e "$tree/usr/$d" ]; then ln -sfn "usr/$d" "$tree/$d"; fi; done
  helm_var=OPENCLAW_HELM_BIN_${arch^^}
  if [ -n "${!helm_var:-}" ]; then
    install -D -m 0755 "${!helm_var}" "$tree/usr/local/bin/helm"
  else
    echo "note: no helm in the linux/$arch devops image (set $helm_var to a helm binary for it)" >&2
  fi
done
# The coder worker's tree, per platform, the same way: what builds and tests most
# repositories (a POSIX shell and utilities, git, a C toolchain, Python, Node).
coder_packages=dash,bash,coreutils,findutils,grep,sed,mawk,diffutils,patch,tar,gzip,xz-utils,procps,git,gcc,make,libc6-dev,python3,nodejs
for arch in $platforms; do
  tree=$dist/coder-$arch
  rm -rf "$tree"
  echo "==> the coder tools for linux/$arch (Debian trixie: git, gcc, make, python3, nodejs)" >&2
  mmdebstrap --quiet --mode=root --variant=extract --architectures="$arch" \
    --include="$coder_packages" trixie "$tree" http://deb.debian.org/debian >&2
  rm -rf "$tree"/usr/share/{doc,man,info,locale,lintian} "$tree"/var/cache/* "$tree"/var/lib/apt \
    "$tree"/var/lib/dpkg "$tree"/var/log/* "$tree"/dev "$tree"/proc "$tree"/sys "$tree"/run \
    "$tree"/etc/passwd "$tree"/etc/group
  for d in bin lib lib64 sbin; do if [ -e "$tree/usr/$d" ]; then ln -sfn "usr/$d" "$tree/$d"; fi; done
  # Links that packages' configuration would make (extract runs none).
  [ -e "$tree/usr/bin/sh" ] || ln -s dash "$tree/usr/bin/sh"
  [ -e "$tree/usr/bin/cc" ] || ln -s gcc "$tree/usr/bin/cc"
  [ -e "$tree/usr/bin/awk" ] || ln -s mawk "$tree/usr/bin/awk"
done
[ "$binaries_only" = 1 ] && { ls -l "$dist"/linux-*/ >&2; exit 0; }

# 3. Images. Storage and engine settings for buildah and podman on this machine kind (vfs,
# runc, cgroupfs; see MACHINE-NOTES), written where the image tests find them.
containers=$root/target/containers
mkdir -p "$containers"
cat >"$containers/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$containers/storage"
runroot = "$containers/run"
EOF
cat >"$containers/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_STORAGE_CONF=$containers/storage.conf CONTAINERS_CONF=$containers/containers.conf
export BUILDAH_ISOLATION=chroot

rm -rf "$images"
mkdir -p "$images"
for image in bridge worker worker-devops worker-coder; do
  name=localhost/openclaw-$image
  buildah manifest rm "$name:$version" >/dev/null 2>&1 || buildah rmi "$name:$version" >/dev/null 2>&1 || true
  buildah manifest create "$name:$version" >/dev/null
  for arch in $platforms; do
    echo "==> image openclaw-$image for linux/$arch" >&2
    buildah bud --quiet --platform "linux/$arch" --target "$image" -f deploy/Dockerfile \
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source_url" \
      -t "$name:$version-$arch" "$dist" >/dev/null
    buildah push --quiet "$name:$version-$arch" "oci-archive:$images/openclaw-$image-$arch.oci.tar:openclaw-$image:$version"
    buildah manifest add --arch "$arch" "$name:$version" "$name:$version-$arch" >/dev/null
  done
  buildah manifest push --quiet --all "$name:$version" "oci:$images/oci:openclaw-$image:$version"
done

# 4. The table: the archive (layers compressed, what a registry stores and a node pulls) and
# the image unpacked on a node.
printf '%-22s %-12s %10s %10s\n' IMAGE PLATFORM ARCHIVE UNPACKED
for image in bridge worker worker-devops worker-coder; do
  for arch in $platforms; do
    archive=$(stat -c %s "$images/openclaw-$image-$arch.oci.tar")
    unpacked=$(podman image inspect --format '{{.Size}}' "localhost/openclaw-$image:$version-$arch")
    awk -v i="openclaw-$image" -v p="linux/$arch" -v a="$archive" -v u="$unpacked" \
      'BEGIN { printf "%-22s %-12s %7.1f MB %7.1f MB\n", i, p, a / 1e6, u / 1e6 }'
  done
done | tee "$images/sizes.txt"
