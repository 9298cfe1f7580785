#!/usr/bin/env bash
# Install everything the lab and the tests need on a fresh Debian (bookworm) machine, as root.
# Idempotent: each step checks first and does nothing when it is already done.
#   Debian packages  podman, runc, debootstrap, ... (apt, only the missing ones)
#   .venv            pinned Python requirements (reinstalled only when requirements/*.txt change)
#   .collections     links llmops.platform to this checkout so FQCNs resolve
#   Azurite          the Azure Storage emulator, from npm as tests/emulators/package-lock.json pins it
#   lab images       scripts/build-lab-images.sh (cached)
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

DEBIAN_PACKAGES=(podman runc debootstrap uidmap slirp4netns containernetworking-plugins iptables
                 python3 python3-venv python3-dev gcc git ca-certificates shellcheck
                 prometheus prometheus-alertmanager prometheus-node-exporter redis-server)  # promtool/amtool, real servers for tests

install_debian_packages() {
  local missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    # Tests start their own servers on loopback; keep the packages' services from starting on install
    # (Debian's documented policy-rc.d mechanism, removed right after).
    local policy=/usr/sbin/policy-rc.d created=false
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created=true; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if $created; then rm -f "$policy"; fi
  fi
}

install_venv() {
  local stamp="$LLMOPS_VENV/.requirements.sha256" want
  want="$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)"
  if [[ -x "$LLMOPS_VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  log "installing Python requirements into $LLMOPS_VENV"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Python 3.11 or newer is needed (ansible-core 2.19)" >&2; exit 1; }
  [[ -x "$LLMOPS_VENV/bin/python" ]] || python3 -m venv "$LLMOPS_VENV"
  "$LLMOPS_VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements/dev.txt
  echo "$want" > "$stamp"
}

link_collection() {
  # ansible.cfg points collections_path at ./.collections; the link makes this checkout the collection.
  mkdir -p .collections/ansible_collections/llmops
  ln -sfn ../../.. .collections/ansible_collections/llmops/platform
}

install_azurite() {
  # npm ci installs exactly the lock file's versions and checks each tarball's integrity hash. A stamp of
  # the lock file makes it run again only when the lock file changes.
  local dir=tests/emulators want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -x $dir/node_modules/.bin/azurite-blob && "$(cat "$dir/node_modules/.llmops-lock.sha256" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  if ! command -v npm >/dev/null; then
    # Debian's packages; a node from elsewhere that already brings npm is left alone (they conflict).
    log "installing Debian packages: nodejs npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "installing Azurite (npm ci in $dir)"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$dir/node_modules/.llmops-lock.sha256"
}

install_ansible_test_pip_shim() {
  local version
  version="$("$LLMOPS_VENV/bin/python" - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)"
  local target="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  mkdir -p "$(dirname "$target")"
  cmp -s tests/get_pip_offline.py "$target" 2>/dev/null || cp tests/get_pip_offline.py "$target"
}

install_debian_packages
install_venv
link_collection
install_azurite
install_ansible_test_pip_shim
bash scripts/build-lab-images.sh >/dev/null
log "bootstrap complete"
