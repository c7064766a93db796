#!/usr/bin/env bash
# make images: build the container images with BuildKit (docker buildx).
#
#   deploy/scripts/images.sh [coordinator] [worker-cpu] [worker-cuda]     (default: all three)
#
# Environment:
#   DEPLOY_REGISTRY   prefix, e.g. europe-west4-docker.pkg.dev/PROJECT/facetrain (empty: local names)
#   DEPLOY_IMAGE_TAG  tag (default: <workspace version>-<git revision>[-dirty.<diff hash>])
#   DEPLOY_PUSH=1     push instead of loading into the local engine; writes the pushed digest to
#                     $DEPLOY_OUT/images/<image>.digest (deploy.sh pins manifests to it)
#   DRY_RUN=1         print the commands only
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

images=("$@")
((${#images[@]})) || images=(coordinator worker-cpu worker-cuda)

tag="${DEPLOY_IMAGE_TAG:-$(image_tag)}"
registry="${DEPLOY_REGISTRY:-}"
revision="$(git_revision)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
mkdir -p "$DEPLOY_OUT/images"

if [[ -z "${DRY_RUN:-}" ]]; then
  need docker "Install Docker (the engine, or a client with DOCKER_HOST pointing at one)."
  if ! docker info >/dev/null 2>&1; then
    die "no Docker engine is reachable ('docker info' failed). The docker CLI alone cannot build images:
       start a Docker daemon, or point DOCKER_HOST / a buildx builder at a remote one, and retry."
  fi
  docker buildx version >/dev/null 2>&1 || die "docker buildx (BuildKit) is required: the Dockerfiles use cache mounts."
fi

for image in "${images[@]}"; do
  case "$image" in
    coordinator) file="$DEPLOY_DIR/docker/Dockerfile" target=coordinator name=facetrain-coordinator ;;
    worker-cpu) file="$DEPLOY_DIR/docker/Dockerfile" target=worker-cpu name=facetrain-worker ;;
    worker-cuda) file="$DEPLOY_DIR/docker/worker-cuda.Dockerfile" target=worker-cuda name=facetrain-worker-cuda ;;
    *) die "unknown image '$image' (coordinator, worker-cpu, worker-cuda)" ;;
  esac
  ref="${registry:+$registry/}$name:$tag"
  meta="$DEPLOY_OUT/images/$name.json"
  log "building $ref"
  output=(--load)
  [[ -n "${DEPLOY_PUSH:-}" ]] && output=(--push)
  run docker buildx build \
    --file "$file" --target "$target" \
    --build-arg "VERSION=$tag" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
    --tag "$ref" --metadata-file "$meta" "${output[@]}" .
  if [[ -n "${DEPLOY_PUSH:-}" && -z "${DRY_RUN:-}" ]]; then
    digest="$("$(deploy_python)" -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$meta")"
    echo "$digest" >"$DEPLOY_OUT/images/$name.digest"
    ok "$ref@$digest"
  fi
done
