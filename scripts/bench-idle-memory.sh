#!/usr/bin/env bash
# The bridge's idle memory: the static release bridge (target/dist, scripts/images.sh builds it)
# started against a local nats-server, ready, then left idle; its resident set (VmRSS) after
# 4 s, with mimalloc's defaults (the baseline) and with the setting the images use
# (MIMALLOC_ARENA_EAGER_COMMIT=0: mimalloc commits its first arena as it uses it), and their
# ratio. README, "Performance", records the figures.
#   bash scripts/bench-idle-memory.sh [BRIDGE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENCLAW_DEMO_ONLY=1
source scripts/tools.sh >/dev/null
bridge=${1:-target/dist/linux-$(dpkg --print-architecture 2>/dev/null || echo amd64)/openclaw-bridge}
[ -x "$bridge" ] || { echo "no $bridge: run scripts/images.sh (or pass a bridge binary)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
nats_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NATS_SERVER_BIN" -js -a 127.0.0.1 -p "$nats_port" -sd "$work/js" >/dev/null 2>&1 &
rss() { # ENV...: the bridge's VmRSS in KiB after it is ready and 4 s idle
  env "$@" NATS_URL="nats://127.0.0.1:$nats_port" OPENCLAW_LISTEN="127.0.0.1:$http_port" \
    OPENCLAW_DISPATCH=none "$bridge" >"$work/bridge.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$http_port/ready" >/dev/null && break; sleep 0.1; done
  sleep 4
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
base=$(rss MIMALLOC_NONE=1)
tuned=$(rss MIMALLOC_ARENA_EAGER_COMMIT=0)
awk -v b="$base" -v t="$tuned" 'BEGIN {
  printf "idle bridge VmRSS: mimalloc defaults %.1f MiB, MIMALLOC_ARENA_EAGER_COMMIT=0 %.1f MiB (%.2f of the baseline)\n", b/1024, t/1024, t/b }'
