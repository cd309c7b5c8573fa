#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (nats-server, the openai client, the
# LiteLLM proxy, the manifest schema checks; project-local in .tools/), then `cargo test` over
# the workspace against real NATS, real git and a scripted model, then builds the release
# binaries and images (scripts/images.sh, about 15 minutes from a clean clone) and runs them
# (tests/images: podman, qemu). Ends with one line, "tests: N passed, M failed", summed over
# every test binary. OPENCLAW_SKIP_IMAGES=1 leaves the images out, and the summary says so.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
log=.tools/test-output.log
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
if [ "${OPENCLAW_SKIP_IMAGES:-}" = "1" ]; then
  skipped=" (OPENCLAW_SKIP_IMAGES=1: the image and arm64 tests did not run)"
else
  skipped=""
  { bash scripts/images.sh && cargo test --locked -p openclaw-tests --test images; } 2>&1 | tee -a "$log" || status=$?
fi
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
               END { printf "tests: %d passed, %d failed", p, f }' "$log")$skipped
echo "$summary" | tee .tools/test-summary.txt
exit "$status"
