#!/usr/bin/env bash
# Build the local images the lab and molecule use, once, and reuse them afterwards.
#   localhost/llmops/debian:<suite>           debootstrap minbase, imported into podman
#   localhost/llmops/debian-systemd:<suite>   + systemd, python3, openssh-server
#   localhost/llmops/debian-boot:bookworm     + cloud-init, ansible-core (offline wheelhouse) and the
#                                             node_hardening packages: lab nodes that harden themselves at
#                                             first boot from a NoCloud seed (node_boot_config)
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

# The ansible-core pin of requirements/controller.txt, and the packages node_hardening installs on Debian.
boot_pin() { grep -E '^ansible-core==' "$LLMOPS_ROOT/requirements/controller.txt"; }
boot_packages() {
  python3 - "$LLMOPS_ROOT/roles/node_hardening/vars/Debian.yml" <<'PY'
import sys, yaml
data = yaml.safe_load(open(sys.argv[1]))
print(" ".join(sorted({p for k, v in data.items() if k.endswith("_packages") for p in v})))
PY
}

build_boot() {
  local suite="$1" base image; base="$(node_image "$1")"; image="${LLMOPS_BOOT_IMAGE:-localhost/llmops/debian-boot:bookworm}"
  image="${image%:*}:$suite"
  local file="$LLMOPS_ROOT/lab/images/debian-boot.Containerfile"
  local base_id; base_id="$(podman image inspect --format '{{.Id}}' "$base")"
  local pin packages; pin="$(boot_pin)"; packages="$(boot_packages)"
  local want; want="$(recipe_hash "$file" <(echo "$base_id $pin $packages"))"
  if ! $force && [[ "$(image_label "$image" llmops.recipe)" == "$want" ]]; then
    log "boot image $image is up to date"; return
  fi
  log "building $image ($pin, cloud-init)"
  local ctx; ctx="$(mktemp -d /var/tmp/llmops-boot.XXXXXX)"
  # shellcheck disable=SC2064  # expand now: $ctx is local and gone when the trap fires
  trap "rm -rf '$ctx'" RETURN
  # pip inside a container does not see this host's certificate settings: download here, install offline.
  python3 -m pip download --quiet --only-binary=:all: -d "$ctx/wheels" "$pin"
  cp "$file" "$ctx/Containerfile"
  podman build --quiet --pull=never --build-arg "BASE_IMAGE=$base" --build-arg "PACKAGES=$packages" \
    --label "llmops.recipe=$want" -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
}

for suite in "${suites[@]}"; do
  build_base "$suite"
  build_node "$suite"
  # Only bookworm is needed for the lab's boot path (node_boot_config).
  if [[ "$suite" == bookworm ]]; then build_boot "$suite"; fi
done
podman image ls --filter reference='localhost/llmops/*'
