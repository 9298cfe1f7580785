#!/usr/bin/env bash
# Build the serving image with podman and run the container test (tests/test_image.py)
# against it. Needs the base image (default localhost/llmops/debian:bookworm, made by
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
if ! podman image exists "$BASE_IMAGE"; then
  echo "test-image.sh: FAIL: base image $BASE_IMAGE is missing; build it with scripts/build-lab-images.sh" \
       "at the repository root, or set SERVING_BASE_IMAGE" >&2
  exit 1
fi

"$HERE/scripts/ensure-venv.sh"

# Wheelhouse for the build context: pip on this host resolves torch to the local CPU wheel;
# inside the build no index is used. Rebuilt when the requirements or the sources change.
WANT="$(cat requirements.txt pyproject.toml $(find src -name '*.py' -o -name '*.txt' | sort) | sha256sum | cut -d' ' -f1)"
if [ ! -f .wheelhouse/.stamp ] || [ "$(cat .wheelhouse/.stamp)" != "$WANT" ]; then
  echo "test-image.sh: preparing .wheelhouse" >&2
  rm -rf .wheelhouse
  "$VENV/bin/pip" download --disable-pip-version-check -q -d .wheelhouse -r requirements.txt
  # requirements with environment markers (for the image's Python, not this host's): fetch them regardless
  grep -E '^[A-Za-z0-9_.-]+==[^;]+;' requirements.txt | cut -d';' -f1 \
    | xargs -r "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps -d .wheelhouse
  "$VENV/bin/pip" wheel --disable-pip-version-check -q --no-deps -w .wheelhouse .
  rm -rf build
  echo "$WANT" > .wheelhouse/.stamp
fi

echo "test-image.sh: building $IMAGE from $BASE_IMAGE" >&2
OLD_ID="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
podman build --format docker --pull=never --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" -f Containerfile .
NEW_ID="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  podman rmi "$OLD_ID" >/dev/null 2>&1 || true   # only our own previous build of this tag
fi
# keep the newest build-stage image (layer cache for the next build), drop older ones
podman images --quiet --filter dangling=true --filter label=llmops.serving.stage=build --sort created \
  | tail -n +2 | xargs -r podman rmi >/dev/null 2>&1 || true

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LLMOPS_SERVING_IMAGE="$IMAGE"
exec "$VENV/bin/python" -m pytest "$HERE/tests/test_image.py" -m image -p no:cacheprovider -q -rs "$@"
