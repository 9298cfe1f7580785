#!/usr/bin/env bash
# Build the execution environment (execution-environment.yml) with ansible-builder and podman, once, and
# reuse it afterwards: the image carries a hash of its inputs as a label and is rebuilt only when one of
# them changes (or with --force). Podman's layer cache makes a rebuild after a small change cheaper too.
#   scripts/build-ee.sh [--force] [--no-cache]
# Inputs: execution-environment.yml, bindep.txt, requirements.yml, this checkout's collection (the content
# of its artifact), the dependency collections, the base image and the package manager.
# Variables (docs/awx.md shows a Red Hat EE base):
#   LLMOPS_EE_IMAGE          the tag to build            (default localhost/llmops/platform-ee:0.1.0)
#   LLMOPS_EE_BASE_IMAGE     EE_BASE_IMAGE build argument (default: the lab's localhost/llmops/debian:bookworm)
#   LLMOPS_EE_PKGMGR         PKGMGR build argument        (default /usr/bin/apt-get; microdnf or dnf on RHEL bases)
#   LLMOPS_EE_COLLECTIONS    local  (default): pack requirements.yml's collections from the `ansible` package in
#                                    the virtualenv and install them offline (Galaxy is not reachable here)
#                            galaxy: let the build install them from Galaxy / Automation Hub
#   LLMOPS_EE_PIP_CERT       a CA bundle pip inside the build must trust (default: this host's PIP_CERT
#                            or pip `cert` setting, when it has one; empty: none); mounted for the build's
#                            RUN steps only, never copied into the image
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

force=false no_cache=()
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    --no-cache) force=true; no_cache=(--no-cache) ;;  # also rebuild every layer (to time a clean build)
    *) echo "usage: scripts/build-ee.sh [--force] [--no-cache]" >&2; exit 2 ;;
  esac
done

image="${LLMOPS_EE_IMAGE:-localhost/llmops/platform-ee:0.1.0}"
base="${LLMOPS_EE_BASE_IMAGE:-localhost/llmops/debian:bookworm}"
pkgmgr="${LLMOPS_EE_PKGMGR:-/usr/bin/apt-get}"
collections="${LLMOPS_EE_COLLECTIONS:-local}"
out=.build/ee

# The lab's base image is built locally; any other base is pulled by podman when missing.
if [[ "$base" == localhost/* ]] && ! podman image exists "$base"; then
  log "building the lab base image $base first"
  bash scripts/build-lab-images.sh "${base##*:}"
fi

# The build context's collections: ours (built from the checkout) and, without Galaxy, the dependencies.
rm -f "$out"/*.tar.gz
mkdir -p "$out"
ansible-galaxy collection build --force --output-path "$out" . >/dev/null
galaxy_opts=()
case "$collections" in
  local)
    python3 scripts/ee-collections.py "$out" >/dev/null
    galaxy_opts=(--build-arg "ANSIBLE_GALAXY_CLI_COLLECTION_OPTS=--offline") ;;
  galaxy) ;;
  *) echo "LLMOPS_EE_COLLECTIONS must be local or galaxy, not '$collections'" >&2; exit 2 ;;
esac

# The inputs' hash. Our artifact's tar bytes change with every build (file times), its MANIFEST.json
# and FILES.json (a checksum per file) do not; the packed dependency tarballs are reproducible.
inputs_hash() {
  cat execution-environment.yml bindep.txt requirements.yml "$0"
  tar -xzOf "$out"/llmops-platform-*.tar.gz MANIFEST.json FILES.json
  find "$out" -maxdepth 1 -name '*.tar.gz' ! -name 'llmops-platform-*' -print0 | sort -z | xargs -0r sha256sum
  podman image inspect --format '{{.Id}}' "$base" 2>/dev/null || echo "$base"
  echo "$pkgmgr $collections"
}
want="$(inputs_hash | sha256sum | cut -c1-16)"
have="$(podman image inspect --format '{{ index .Labels "llmops.ee.recipe" }}' "$image" 2>/dev/null || true)"
if ! $force && [[ "$have" == "$want" ]]; then
  log "execution environment $image is up to date ($want)"
  exit 0
fi

# podman puts the label on every stage's image too: that is how the cleanup below finds them.
extra=(--label "llmops.ee.recipe=$want")
[[ "$base" == localhost/* ]] && extra+=(--pull=never)
# A host behind a TLS-inspecting proxy: pip in the build trusts the same CA bundle as pip here. The files
# are bind-mounted into each RUN step (podman build --volume), so nothing of this host lands in a layer.
cert="${LLMOPS_EE_PIP_CERT-${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}}"
if [[ -n "$cert" ]]; then
  [[ -f "$cert" ]] || { echo "LLMOPS_EE_PIP_CERT: $cert is not a file" >&2; exit 2; }
  # pip reads /etc/xdg/pip/pip.conf; one directory mount leaves only an empty directory behind.
  mkdir -p "$out/pip"
  cp "$cert" "$out/pip/ca.pem"
  printf '[global]\ncert = /etc/xdg/pip/ca.pem\n' > "$out/pip/pip.conf"
  extra+=(--volume "$LLMOPS_ROOT/$out/pip:/etc/xdg/pip:ro")
fi

log "building $image from $base (collections: $collections)"
started=$SECONDS
ansible-builder build -f execution-environment.yml -c "$out/context" -t "$image" --container-runtime podman "${no_cache[@]}" \
  --build-arg "EE_BASE_IMAGE=$base" --build-arg "PKGMGR=$pkgmgr" "${galaxy_opts[@]}" \
  --extra-build-cli-args "$(printf '%q ' "${extra[@]}")" -v 2
log "built $image in $((SECONDS - started))s: $(podman image inspect --format '{{.Size}}' "$image" \
  | awk '{ printf "%.0f MB", $1 / 1e6 }')"
# ansible-builder's stages (galaxy, builder) stay as untagged images: keep this build's (the layer cache of
# the next one) and remove those of earlier builds, and the image this tag named before. Only ours: they
# carry the llmops.ee.recipe label.
for id in $(podman images --quiet --filter dangling=true); do
  label="$(podman image inspect --format '{{ index .Labels "llmops.ee.recipe" }}' "$id" 2>/dev/null || true)"
  if [[ -n "$label" && "$label" != "<no value>" && "$label" != "$want" ]]; then podman rmi "$id" >/dev/null 2>&1 || true; fi
done
