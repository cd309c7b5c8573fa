#!/usr/bin/env bash
# The main job, end to end, on this machine: NATS JetStream + the bridge with local worker
# dispatch + a demo git repository. Submits a doc-writer task, streams its events, and shows
# the commit the agent pushed. Uses the LiteLLM gateway when LITELLM_BASE_URL and
# LITELLM_API_KEY are set; otherwise an offline scripted demo model (and says so).
#   bash scripts/demo.sh          # run it, then stop everything
#   bash scripts/demo.sh --keep   # leave NATS, the bridge and the model running to try more
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=false
[ "${1:-}" = "--keep" ] && keep=true
OPENCLAW_DEMO_ONLY=1 source scripts/tools.sh

demo="$root/.demo"
rm -rf "$demo" && mkdir -p "$demo/repos" "$demo/nats" "$demo/work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
if [ "$keep" = true ]; then
  # On failure, stop what was started; after success, leave it running (below).
  trap '[ $? -eq 0 ] || cleanup' EXIT
else
  trap cleanup EXIT
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

echo "==> building (debug)"
cargo build --locked --quiet -p openclaw-bridge -p openclaw-worker -p openclaw-tests --bins

echo "==> starting NATS JetStream (data in .demo/nats)"
nats_port=$(free_port)
"$NATS_SERVER_BIN" -js -sd "$demo/nats" -a 127.0.0.1 -p "$nats_port" >"$demo/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$nats_port") 2>/dev/null && break; sleep 0.1; done

echo "==> creating the demo repository .demo/repos/hello.git"
seed="$demo/seed"; mkdir -p "$seed"
git init -q --bare -b main "$demo/repos/hello.git"
git -C "$seed" init -q -b main
printf '# hello\n\nA tiny C program that says hello.\n' >"$seed/README.md"
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$seed/hello.c"
printf 'hello: hello.c\n\tcc -o hello hello.c\n' >"$seed/Makefile"
git -C "$seed" add . && git -C "$seed" -c user.name=demo -c user.email=demo@localhost commit -qm "Initial commit"
git -C "$seed" push -q "$demo/repos/hello.git" main

if [ -n "${LITELLM_BASE_URL:-}" ] && [ -n "${LITELLM_API_KEY:-}" ]; then
  echo "==> using the LiteLLM gateway at $LITELLM_BASE_URL (model ${LITELLM_MODEL_NAME:-bedrock/claude-4.5-sonnet})"
else
  echo "==> LITELLM_BASE_URL / LITELLM_API_KEY are not set: running an OFFLINE SCRIPTED DEMO MODEL"
  echo "    (a stand-in that plays a fixed doc-writer script; set both variables to use a real model)"
  target/debug/scripted-llm 127.0.0.1:0 >"$demo/llm.url" 2>"$demo/llm.log" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$demo/llm.url" ] && break; sleep 0.1; done
  export LITELLM_BASE_URL=$(cat "$demo/llm.url") LITELLM_API_KEY=demo-key LITELLM_MODEL_NAME=demo-model
fi

echo "==> starting the bridge (local dispatch)"
bridge_port=$(free_port)
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
OPENCLAW_LISTEN=127.0.0.1:$bridge_port NATS_URL=nats://127.0.0.1:$nats_port \
OPENCLAW_GATEWAY_TOKEN=$token OPENCLAW_DISPATCH=local OPENCLAW_ALLOW_FILE_REPOS=true \
OPENCLAW_WORKER_BIN="$root/target/debug/openclaw-worker" OPENCLAW_WORK_DIR="$demo/work" \
RUST_LOG=${RUST_LOG:-warn} OPENCLAW_LOG_FORMAT=${OPENCLAW_LOG_FORMAT:-text} \
  target/debug/openclaw-bridge 2>"$demo/bridge.log" &
pids+=($!)
base="http://127.0.0.1:$bridge_port"
wait_http "$base/health"
for _ in $(seq 1 100); do curl -fsS -H "Authorization: Bearer $token" "$base/ready" >/dev/null 2>&1 && break; sleep 0.1; done

echo "==> submitting a doc-writer task"
repo="file://$demo/repos/hello.git"
body=$(python3 -c 'import json,sys; print(json.dumps({"repo": sys.argv[1], "agent": "doc-writer", "prompt": "Write a getting-started guide for this project in docs/GETTING-STARTED.md"}))' "$repo")
reply=$(curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" "$base/v1/tasks")
echo "    $reply"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$reply")

echo "==> events of task $id (SSE, live)"
curl -fsSN -H "Authorization: Bearer $token" "$base/v1/tasks/$id/events" | python3 -u -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("data:"):
        continue
    e = json.loads(line[5:])
    t = e["type"]
    detail = {
        "queued": lambda: "agent " + e["agent"],
        "waiting": lambda: e["reason"],
        "started": lambda: "worker " + e["worker_id"],
        "cloned": lambda: e["sha"][:10] + " on " + e["branch"],
        "message": lambda: repr(e["delta"]),
        "tool_call": lambda: e["name"] + " " + e["arguments"][:80],
        "tool_result": lambda: ("ok: " if e["ok"] else "error: ") + e["output"][:80].replace("\n", " | "),
        "llm_usage": lambda: "%s %d+%d tokens, %d ms" % (e["model"], e["prompt_tokens"], e["completion_tokens"], e["latency_ms"]),
        "committed": lambda: e["sha"][:10] + " " + ", ".join(e["files"]),
        "pushed": lambda: e["branch"] + " @ " + e["sha"][:10],
        "completed": lambda: e["summary"].splitlines()[0] if e["summary"] else "",
        "failed": lambda: e["reason"],
        "canceled": lambda: e["reason"],
    }.get(t, lambda: "")()
    print("  %3d %-11s %s" % (e["seq"], t, detail))
'

echo "==> result"
status=$(curl -fsS -H "Authorization: Bearer $token" "$base/v1/tasks/$id")
state=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' <<<"$status")
echo "    task status: $state"
if [ "$state" != "completed" ]; then
  echo "$status"; echo "bridge log: $demo/bridge.log" >&2; exit 1
fi
git --git-dir "$demo/repos/hello.git" log --stat -1 "openclaw/$id"
echo
echo "==> docs/GETTING-STARTED.md on branch openclaw/$id"
git --git-dir "$demo/repos/hello.git" show "openclaw/$id:docs/GETTING-STARTED.md"

if [ "$keep" = true ]; then
  cat >"$demo/env" <<ENV
export OPENCLAW_URL=$base
export OPENCLAW_GATEWAY_TOKEN=$token
export NATS_URL=nats://127.0.0.1:$nats_port
export DEMO_REPO=$repo
export DEMO_PIDS="${pids[*]}"
ENV
  cat <<TRY

==> still running (--keep): NATS, the bridge and the model. Try:
    source .demo/env
    cargo run -q -p openclaw-cli -- list
    cargo run -q -p openclaw-cli -- submit --repo "\$DEMO_REPO" --prompt "Document the Makefile"
    curl -sS -H "Authorization: Bearer \$OPENCLAW_GATEWAY_TOKEN" \$OPENCLAW_URL/v1/models
    OPENAI_BASE_URL=\$OPENCLAW_URL/v1 OPENAI_API_KEY=\$OPENCLAW_GATEWAY_TOKEN \\
      .tools/venv/bin/python -c 'import openai; print(openai.OpenAI().models.list())'
  Stop them with:  source .demo/env && kill \$DEMO_PIDS
TRY
fi
