#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (nats-server, project-local in .tools/),
# then `cargo test` over the workspace against real NATS, real git and a scripted model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
cargo test --workspace --locked "$@"
