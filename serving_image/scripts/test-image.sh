#!/usr/bin/env bash
# Build the serving image with podman (scripts/build-image.sh) and run the container test
# (tests/test_image.py) against it. Needs the base image (default localhost/llmops/debian:bookworm, made by
# the repo's scripts/build-lab-images.sh). Works from any cwd; exits non-zero on failure.
#   SERVING_BASE_IMAGE  base image (default localhost/llmops/debian:bookworm)
#   SERVING_IMAGE       tag to build (default localhost/llmops/serving:test)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$HERE/.venv"
BASE_IMAGE="${SERVING_BASE_IMAGE:-localhost/llmops/debian:bookworm}"
IMAGE="${SERVING_IMAGE:-localhost/llmops/serving:test}"
cd "$HERE"

if [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF="$HERE/tests/containers.conf"
fi
if ! command -v podman >/dev/null 2>&1; then
  # The one acceptable skip: without podman there is nothing to build or run. pytest reports
  # the skip with its reason (tests/test_image.py); with podman present every failure fails.
  echo "test-image.sh: WARNING: podman is not installed; the container image is NOT tested" >&2
  "$HERE/scripts/ensure-venv.sh"
  exec "$VENV/bin/python" -m pytest "$HERE/tests/test_image.py" -m image -p no:cacheprovider -q -rs "$@"
fi
"$HERE/scripts/ensure-venv.sh"

# The build itself (base image check, wheelhouse, podman build, pruning our own older builds) is
# build-image.sh's job; the llm_serving role builds the lab image with the same script.
SERVING_BASE_IMAGE="$BASE_IMAGE" SERVING_IMAGE="$IMAGE" "$HERE/scripts/build-image.sh" >/dev/null

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LLMOPS_SERVING_IMAGE="$IMAGE"
exec "$VENV/bin/python" -m pytest "$HERE/tests/test_image.py" -m image -p no:cacheprovider -q -rs "$@"
