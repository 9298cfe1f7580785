#!/usr/bin/env bash
# Build the local images the lab and molecule use, once, and reuse them afterwards.
#   localhost/llmops/debian:<suite>           debootstrap minbase, imported into podman
#   localhost/llmops/debian-systemd:<suite>   + systemd, python3, openssh-server
# for each suite in LLMOPS_LAB_SUITES (default: bookworm trixie).
# No container registry is involved. An image is rebuilt only when its recipe changed
# (its hash is stored as an image label) or when --force is given.
#   scripts/build-lab-images.sh [--force] [suite ...]     (suites default to LLMOPS_LAB_SUITES)
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"

force=false
if [[ "${1:-}" == "--force" ]]; then force=true; shift; fi
read -r -a suites <<<"${LLMOPS_LAB_SUITES:-bookworm trixie}"
(($#)) && suites=("$@")

# Image names per suite: the repositories of LLMOPS_BASE_IMAGE / LLMOPS_NODE_IMAGE, tagged by suite.
base_image() { echo "${LLMOPS_BASE_IMAGE%:*}:$1"; }
node_image() { echo "${LLMOPS_NODE_IMAGE%:*}:$1"; }

recipe_hash() { cat "$@" | sha256sum | cut -c1-16; }

image_label() {  # image label -> value, empty when the image is absent
  podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
}

build_base() {
  local suite="$1" image; image="$(base_image "$1")"
  # The recipe is this function's own text and the suite: edits elsewhere in the script (another
  # suite, the node step) do not rebuild a base image.
  local want; want="$(recipe_hash <(declare -f build_base) <(echo "$suite minbase"))"
  if ! $force && [[ "$(image_label "$image" llmops.recipe)" == "$want" ]]; then
    log "base image $image is up to date"; return
  fi
  log "building $image with debootstrap ($suite, minbase)"
  local root; root="$(mktemp -d /var/tmp/llmops-rootfs.XXXXXX)"
  # shellcheck disable=SC2064  # expand now: $root is local and gone when the trap fires
  trap "rm -rf '$root'" RETURN
  debootstrap --variant=minbase "$suite" "$root" >/dev/null
  # Trim what a container never uses; keep apt working for image builds.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner -c . \
    | podman import --change "LABEL llmops.recipe=$want" --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
}

build_node() {
  local suite="$1" base image; base="$(base_image "$1")"; image="$(node_image "$1")"
  local file="$LLMOPS_ROOT/lab/images/debian-systemd.Containerfile"
  local base_id; base_id="$(podman image inspect --format '{{.Id}}' "$base")"
  local want; want="$(recipe_hash "$file" <(echo "$base_id"))"
  if ! $force && [[ "$(image_label "$image" llmops.recipe)" == "$want" ]]; then
    log "node image $image is up to date"; return
  fi
  log "building $image"
  podman build --quiet --pull=never --build-arg "BASE_IMAGE=$base" \
    --label "llmops.recipe=$want" -t "$image" -f "$file" "$LLMOPS_ROOT/lab/images" >/dev/null
}

for suite in "${suites[@]}"; do
  build_base "$suite"
  build_node "$suite"
done
podman image ls --filter reference='localhost/llmops/*'
