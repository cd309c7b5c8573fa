#!/usr/bin/env bash
# Installs OpenClaw into the current kubectl context, as the starter kit installs its
# components: settings from config.json (ai-agent.openclaw.env) and .env in --config-dir (the
# kit's root; default: here), overridden by the environment; Langfuse detected; secrets only in
# Secrets; NATS installed with deploy/nats/values.yaml (helm) unless --no-nats.
#   deploy/install.sh [--keda] [--karpenter] [--no-nats] [--dry-run] [--config-dir DIR]
# Everything is in deploy/install.py (Python 3 standard library and kubectl).
set -euo pipefail
exec python3 "$(dirname "$0")/install.py" install "$@"
