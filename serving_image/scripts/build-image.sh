#!/usr/bin/env bash
# Build the serving image with podman from the lab base image. Used by scripts/test-image.sh and by
# the llm_serving role (podman target). Works from any cwd; exits non-zero on failure.
#   SERVING_BASE_IMAGE  base image (default localhost/llmops/debian:bookworm)
#   SERVING_IMAGE       tag to build (default localhost/llmops/serving:test)
# Prints the image ID as the only line on stdout (everything else goes to stderr), so callers can
# tell whether the tag changed. The image carries the label llmops.serving.recipe: a hash of
# everything that goes into it (requirements, sources, Containerfile, base image ID); when the tag
# already has the wanted recipe, nothing is built.
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
  echo "build-image.sh: FAIL: podman is not installed" >&2
  exit 1
fi
if ! podman image exists "$BASE_IMAGE"; then
  echo "build-image.sh: FAIL: base image $BASE_IMAGE is missing; build it with scripts/build-lab-images.sh" \
       "at the repository root, or set SERVING_BASE_IMAGE" >&2
  exit 1
fi

# What the image is made of. Sources and requirements decide the wheelhouse; the Containerfile and
# the base image decide the rest. The egg-info that an editable install writes (the test venv's) is
# not a source: counting it rebuilt the image whenever the tests reinstalled the package.
# shellcheck disable=SC2046  # one path a word: the file list is meant to split
SOURCES_SUM="$(cat requirements.txt pyproject.toml \
  $(find src -name '*.egg-info' -prune -o \( -name '*.py' -o -name '*.txt' \) -print | sort) | sha256sum | cut -d' ' -f1)"
BASE_ID="$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")"
RECIPE="$(printf '%s\n' "$SOURCES_SUM" "$BASE_ID" "$(sha256sum Containerfile | cut -d' ' -f1)" \
          "$(find container -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)" | sha256sum | cut -c1-32)"
if [ "$(podman image inspect --format '{{index .Labels "llmops.serving.recipe"}}' "$IMAGE" 2>/dev/null || true)" = "$RECIPE" ]; then
  echo "build-image.sh: $IMAGE is up to date (recipe $RECIPE)" >&2
  podman image inspect --format '{{.Id}}' "$IMAGE"
  exit 0
fi

"$HERE/scripts/ensure-venv.sh" >&2

# Wheelhouse for the build context: pip on this host resolves torch to the local CPU wheel;
# inside the build no index is used. Rebuilt when the requirements or the sources change.
if [ ! -f .wheelhouse/.stamp ] || [ "$(cat .wheelhouse/.stamp)" != "$SOURCES_SUM" ]; then
  echo "build-image.sh: preparing .wheelhouse" >&2
  rm -rf .wheelhouse
  "$VENV/bin/pip" download --disable-pip-version-check -q -d .wheelhouse -r requirements.txt >&2
  # requirements with environment markers (for the image's Python, not this host's): fetch them regardless
  grep -E '^[A-Za-z0-9_.-]+==[^;]+;' requirements.txt | cut -d';' -f1 \
    | xargs -r "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps -d .wheelhouse >&2
  "$VENV/bin/pip" wheel --disable-pip-version-check -q --no-deps -w .wheelhouse . >&2
  rm -rf build
  echo "$SOURCES_SUM" > .wheelhouse/.stamp
fi

echo "build-image.sh: building $IMAGE from $BASE_IMAGE" >&2
OLD_ID="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
podman build --format docker --pull=never --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --label "llmops.serving.recipe=$RECIPE" -t "$IMAGE" -f Containerfile . >&2
NEW_ID="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  podman rmi "$OLD_ID" >/dev/null 2>&1 || true   # only our own previous build of this tag
fi
# keep the newest build-stage image (layer cache for the next build), drop older ones
podman images --quiet --filter dangling=true --filter label=llmops.serving.stage=build --sort created \
  | tail -n +2 | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$NEW_ID"
