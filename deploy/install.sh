#!/usr/bin/env bash
# Installs OpenClaw into the current kubectl context: the secrets, then the manifests.
#   OPENCLAW_GATEWAY_TOKEN=… LITELLM_API_KEY=… GIT_TOKEN=… deploy/install.sh [--keda]
# --keda: KEDA's ScaledJobs start the workers instead of the bridge (needs KEDA installed).
# NATS (deploy/nats/values.yaml), LiteLLM and, for spot ARM64 workers, Karpenter
# (deploy/karpenter/nodepool.yaml) are installed separately. Secrets never appear on a
# command line: they go through a file readable only by you, removed afterwards. Run it before
# installing NATS with deploy/nats/values.yaml: it makes the NATS users' passwords.
set -euo pipefail
cd "$(dirname "$0")"
overlay=base
[ "${1:-}" = "--keda" ] && overlay=overlays/keda
: "${OPENCLAW_GATEWAY_TOKEN:?set OPENCLAW_GATEWAY_TOKEN (the bridge API token)}"
: "${LITELLM_API_KEY:?set LITELLM_API_KEY (the workers key for LiteLLM)}"
command -v kubectl >/dev/null || { echo "kubectl is required" >&2; exit 1; }

kubectl apply -f base/namespace.yaml
secrets=$(mktemp); chmod 600 "$secrets"; trap 'rm -f "$secrets"' EXIT
# NATS users (deploy/nats/values.yaml reads their passwords from the Secret
# openclaw-nats-users in namespace nats): made once, kept across re-installs. With
# OPENCLAW_NATS_AUTH=false (a NATS without users), the clients connect without credentials.
nats_auth=${OPENCLAW_NATS_AUTH:-true}
nats_pw() {
  local pw
  pw=$(kubectl -n nats get secret openclaw-nats-users -o "jsonpath={.data.$1}" 2>/dev/null | base64 -d 2>/dev/null || true)
  [ -n "$pw" ] || pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s' "$pw"
}
if [ "$nats_auth" = "true" ]; then
  kubectl create namespace nats --dry-run=client -o yaml | kubectl apply -f -
  nats_bridge=$(nats_pw bridge) nats_doc_writer=$(nats_pw worker_doc_writer)
  nats_devops=$(nats_pw worker_devops) nats_operator=$(nats_pw operator)
  printf 'bridge=%s\nworker_doc_writer=%s\nworker_devops=%s\noperator=%s\n' \
    "$nats_bridge" "$nats_doc_writer" "$nats_devops" "$nats_operator" >"$secrets"
  kubectl -n nats create secret generic openclaw-nats-users --from-env-file="$secrets" --dry-run=client -o yaml | kubectl apply -f -
fi
{
  printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$OPENCLAW_GATEWAY_TOKEN"
  [ "$nats_auth" = "true" ] && printf 'NATS_USER=bridge\nNATS_PASSWORD=%s\n' "$nats_bridge"
  true
} >"$secrets"
kubectl -n openclaw create secret generic openclaw-bridge --from-env-file="$secrets" --dry-run=client -o yaml | kubectl apply -f -
{
  printf 'LITELLM_API_KEY=%s\n' "$LITELLM_API_KEY"
  [ -n "${GIT_USERNAME:-}" ] && printf 'GIT_USERNAME=%s\n' "$GIT_USERNAME"
  [ -n "${GIT_TOKEN:-}" ] && printf 'GIT_TOKEN=%s\n' "$GIT_TOKEN"
  # Credentials are offered only to these hosts (comma-separated host[:port]).
  [ -n "${GIT_TOKEN:-}" ] && printf 'OPENCLAW_GIT_CREDENTIAL_HOSTS=%s\n' "${OPENCLAW_GIT_CREDENTIAL_HOSTS:-github.com}"
  [ -n "${LANGFUSE_PUBLIC_KEY:-}" ] && printf 'LANGFUSE_PUBLIC_KEY=%s\n' "$LANGFUSE_PUBLIC_KEY"
  [ -n "${LANGFUSE_SECRET_KEY:-}" ] && printf 'LANGFUSE_SECRET_KEY=%s\n' "$LANGFUSE_SECRET_KEY"
  if [ "$nats_auth" = "true" ]; then
    printf 'NATS_USER_DOC_WRITER=worker-doc-writer\nNATS_PASSWORD_DOC_WRITER=%s\n' "$nats_doc_writer"
    printf 'NATS_USER_DEVOPS=worker-devops\nNATS_PASSWORD_DEVOPS=%s\n' "$nats_devops"
  fi
  true
} >"$secrets"
kubectl -n openclaw create secret generic openclaw-worker --from-env-file="$secrets" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k "$overlay"
kubectl -n openclaw rollout status deployment/openclaw-bridge --timeout=120s
echo "OpenClaw is up: kubectl -n openclaw port-forward svc/openclaw-bridge 8080:8080"
