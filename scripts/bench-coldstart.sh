#!/usr/bin/env bash
# How long a worker takes from exec to its first JetStream fetch, with the static release
# binary of scripts/images.sh (target/dist/linux-amd64) against a local nats-server with no
# task waiting. hyperfine times three commands in one run:
#   baseline   `openclaw-worker --version`: exec and exit of the same binary, nothing else
#   worker     a full run that finds no task: connect, bind the stores and the consumer,
#              one fetch of OPENCLAW_FETCH_WAIT_SECS (10 ms), exit
# so the cold start to the first fetch is (worker − 10 ms), and its ratio to the baseline says
# what the process itself costs. Needs hyperfine (Debian). Figures in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
OPENCLAW_DEMO_ONLY=1 source scripts/tools.sh
worker=target/dist/linux-amd64/openclaw-worker
bridge=target/dist/linux-amd64/openclaw-bridge
[ -x "$worker" ] || { echo "$worker is missing: run bash scripts/images.sh first" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NATS_SERVER_BIN" -a 127.0.0.1 -p "$port" -js -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
# The bridge creates the streams, buckets and consumers; it dispatches nothing here.
NATS_URL=nats://127.0.0.1:$port OPENCLAW_LISTEN=127.0.0.1:$http OPENCLAW_DISPATCH=none \
  OPENCLAW_ALLOW_NO_AUTH=true "$bridge" >"$dir/bridge.log" 2>&1 &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/ready" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$http/ready" >/dev/null || { cat "$dir/bridge.log" >&2; exit 1; }

export NATS_URL=nats://127.0.0.1:$port OPENCLAW_FETCH_WAIT_SECS=0.01 OPENCLAW_NO_TASK_EXIT_CODE=0 \
  LITELLM_BASE_URL=http://127.0.0.1:9 RUST_LOG=warn
hyperfine --warmup 5 --runs 100 -N --export-json "$dir/runs.json" \
  --command-name baseline "$worker --version" \
  --command-name worker "$worker"
python3 - "$dir/runs.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base, w = r["baseline"]["mean"], r["worker"]["mean"]
start = w - 0.010
print(f"cold start to first fetch: {start * 1e3:.1f} ms (mean of 100; run {w * 1e3:.1f} ms − 10 ms fetch), "
      f"baseline exec {base * 1e3:.2f} ms, ratio {start / base:.1f}x")
EOF
