#!/usr/bin/env bash
# Pushes the multi-arch images scripts/images.sh built (in target/containers) to a registry a
# cluster can pull from, and writes what was pushed, by digest, to target/images/pushed.json
# (`deploy/install.sh --images-from target/images/pushed.json` installs exactly those):
#
#   bash scripts/push-images.sh REPOSITORY        e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/openclaw
#                                                 or ghcr.io/you/openclaw
#
# Images go to REPOSITORY/openclaw-{bridge,worker,worker-devops,worker-coder}:VERSION, both platforms. For
# Amazon ECR the script signs buildah in with `aws ecr get-login-password` and creates the
# repositories that are missing; any other registry needs `buildah login HOST` first.
set -euo pipefail
cd "$(dirname "$0")/.."
repository=${1:?usage: scripts/push-images.sh REPOSITORY (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/openclaw)}
repository=${repository%/}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
# Where scripts/images.sh left its container storage (the tests point it elsewhere).
target=${OPENCLAW_IMAGES_TARGET:-$PWD/target}
containers=$target/containers
if [ ! -f "$containers/storage.conf" ]; then
  echo "push-images: no images built here; run scripts/images.sh first" >&2
  exit 1
fi
export CONTAINERS_STORAGE_CONF=$containers/storage.conf CONTAINERS_CONF=$containers/containers.conf
host=${repository%%/*}
path=${repository#"$host"}
path=${path#/}
images=(bridge worker worker-devops worker-coder)

if [[ $host =~ ^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$ ]]; then
  region=${BASH_REMATCH[1]}
  command -v aws >/dev/null || { echo "push-images: aws not found: install the AWS CLI (ECR sign-in)" >&2; exit 1; }
  for image in "${images[@]}"; do
    name=${path:+$path/}openclaw-$image
    if ! aws ecr describe-repositories --region "$region" --repository-names "$name" >/dev/null 2>&1; then
      echo "==> creating the ECR repository $name" >&2
      aws ecr create-repository --region "$region" --repository-name "$name" >/dev/null
    fi
  done
  aws ecr get-login-password --region "$region" | buildah login --username AWS --password-stdin "$host" >/dev/null
fi

pushed=$target/images/pushed.json
mkdir -p "$target/images"
{
  echo "{"
  sep=""
  for image in "${images[@]}"; do
    ref="$repository/openclaw-$image:$version"
    digestfile=$(mktemp)
    echo "==> pushing openclaw-$image:$version (all platforms) to $ref" >&2
    buildah manifest push --quiet --all --digestfile "$digestfile" \
      "localhost/openclaw-$image:$version" "docker://$ref"
    digest=$(cat "$digestfile")
    rm -f "$digestfile"
    case "$digest" in sha256:*) ;; *) echo "push-images: no digest for $ref" >&2; exit 1 ;; esac
    printf '%s  "openclaw-%s": "%s/openclaw-%s@%s"' "$sep" "$image" "$repository" "$image" "$digest"
    sep=$',\n'
  done
  printf '\n}\n'
} >"$pushed.tmp"
mv "$pushed.tmp" "$pushed"
echo "==> pushed; the install takes them with: deploy/install.sh --images-from $pushed" >&2
cat "$pushed"
