#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (nats-server, the openai client, the
# LiteLLM proxy, the manifest schema checks; project-local in .tools/), then `cargo test` over
# the workspace against real NATS, real git and a scripted model. Ends with one line,
# "tests: N passed, M failed", summed over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
log=.tools/test-output.log
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
               END { printf "tests: %d passed, %d failed\n", p, f }' "$log")
echo "$summary" | tee .tools/test-summary.txt
exit "$status"
