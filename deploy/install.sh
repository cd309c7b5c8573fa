#!/usr/bin/env bash
# Installs OpenClaw into the current kubectl context: the secrets, then the manifests.
#   OPENCLAW_GATEWAY_TOKEN=… LITELLM_API_KEY=… GIT_TOKEN=… deploy/install.sh [--keda]
# --keda: KEDA's ScaledJobs start the workers instead of the bridge (needs KEDA installed).
# NATS (deploy/nats/values.yaml), LiteLLM and, for spot ARM64 workers, Karpenter
# (deploy/karpenter/nodepool.yaml) are installed separately. Secrets never appear on a
# command line: they go through a file readable only by you, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")"
overlay=base
[ "${1:-}" = "--keda" ] && overlay=overlays/keda
: "${OPENCLAW_GATEWAY_TOKEN:?set OPENCLAW_GATEWAY_TOKEN (the bridge API token)}"
: "${LITELLM_API_KEY:?set LITELLM_API_KEY (the workers key for LiteLLM)}"
command -v kubectl >/dev/null || { echo "kubectl is required" >&2; exit 1; }

kubectl apply -f base/namespace.yaml
secrets=$(mktemp); chmod 600 "$secrets"; trap 'rm -f "$secrets"' EXIT
printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$OPENCLAW_GATEWAY_TOKEN" >"$secrets"
kubectl -n openclaw create secret generic openclaw-bridge --from-env-file="$secrets" --dry-run=client -o yaml | kubectl apply -f -
{
  printf 'LITELLM_API_KEY=%s\n' "$LITELLM_API_KEY"
  [ -n "${GIT_USERNAME:-}" ] && printf 'GIT_USERNAME=%s\n' "$GIT_USERNAME"
  [ -n "${GIT_TOKEN:-}" ] && printf 'GIT_TOKEN=%s\n' "$GIT_TOKEN"
  # Credentials are offered only to these hosts (comma-separated host[:port]).
  [ -n "${GIT_TOKEN:-}" ] && printf 'OPENCLAW_GIT_CREDENTIAL_HOSTS=%s\n' "${OPENCLAW_GIT_CREDENTIAL_HOSTS:-github.com}"
  [ -n "${LANGFUSE_PUBLIC_KEY:-}" ] && printf 'LANGFUSE_PUBLIC_KEY=%s\n' "$LANGFUSE_PUBLIC_KEY"
  [ -n "${LANGFUSE_SECRET_KEY:-}" ] && printf 'LANGFUSE_SECRET_KEY=%s\n' "$LANGFUSE_SECRET_KEY"
  true
} >"$secrets"
kubectl -n openclaw create secret generic openclaw-worker --from-env-file="$secrets" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k "$overlay"
kubectl -n openclaw rollout status deployment/openclaw-bridge --timeout=120s
echo "OpenClaw is up: kubectl -n openclaw port-forward svc/openclaw-bridge 8080:8080"
