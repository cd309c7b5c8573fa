#!/usr/bin/env bash
# Removes what install.sh created (the namespace goes last, with the secrets and any Jobs).
# NATS streams and git branches are left alone: they hold the work.
set -euo pipefail
cd "$(dirname "$0")"
kubectl delete -k overlays/keda --ignore-not-found
kubectl delete -k base --ignore-not-found
# The NATS users' passwords (a NATS still configured with deploy/nats/values.yaml needs them).
if [ "${OPENCLAW_KEEP_NATS_USERS:-false}" != "true" ]; then
  kubectl -n nats delete secret openclaw-nats-users --ignore-not-found
fi
