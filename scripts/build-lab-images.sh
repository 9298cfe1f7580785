#!/usr/bin/env bash
# Build the local images the lab and molecule use, once, and reuse them afterwards.
#   localhost/llmops/debian:bookworm          debootstrap minbase, imported into podman
#   localhost/llmops/debian-systemd:bookworm  + systemd, python3, openssh-server
# No container registry is involved. An image is rebuilt only when its recipe changed
# (its hash is stored as an image label) or when --force is given.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"

force=false
[[ "${1:-}" == "--force" ]] && force=true
suite=bookworm

recipe_hash() { cat "$@" | sha256sum | cut -c1-16; }

image_label() {  # image label -> value, empty when the image is absent
  podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
}

build_base() {
  local want; want="$(recipe_hash "$0" <(echo "$suite minbase"))"
  if ! $force && [[ "$(image_label "$LLMOPS_BASE_IMAGE" llmops.recipe)" == "$want" ]]; then
    log "base image $LLMOPS_BASE_IMAGE is up to date"; return
  fi
  log "building $LLMOPS_BASE_IMAGE with debootstrap ($suite, minbase)"
  local root; root="$(mktemp -d /var/tmp/llmops-rootfs.XXXXXX)"
  trap 'rm -rf "$root"' RETURN
  debootstrap --variant=minbase "$suite" "$root" >/dev/null
  # Trim what a container never uses; keep apt working for image builds.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner -c . \
    | podman import --change "LABEL llmops.recipe=$want" --change 'CMD ["/bin/bash"]' - "$LLMOPS_BASE_IMAGE" >/dev/null
}

build_node() {
  local file="$LLMOPS_ROOT/lab/images/debian-systemd.Containerfile"
  local base_id; base_id="$(podman image inspect --format '{{.Id}}' "$LLMOPS_BASE_IMAGE")"
  local want; want="$(recipe_hash "$file" <(echo "$base_id"))"
  if ! $force && [[ "$(image_label "$LLMOPS_NODE_IMAGE" llmops.recipe)" == "$want" ]]; then
    log "node image $LLMOPS_NODE_IMAGE is up to date"; return
  fi
  log "building $LLMOPS_NODE_IMAGE"
  podman build --quiet --pull=never --build-arg "BASE_IMAGE=$LLMOPS_BASE_IMAGE" \
    --label "llmops.recipe=$want" -t "$LLMOPS_NODE_IMAGE" -f "$file" "$LLMOPS_ROOT/lab/images" >/dev/null
}

build_base
build_node
podman image ls --filter reference='localhost/llmops/*'
