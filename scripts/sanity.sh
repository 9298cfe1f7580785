#!/usr/bin/env bash
# ansible-test sanity on the collection's Ansible content. ansible-test needs the collection under
# .../ansible_collections/<namespace>/<name>/, so the tracked (and new, not ignored) files are copied
# there first; serving_image/ is not Ansible content (see galaxy.yml build_ignore) and is left out.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
# Outside the checkout: inside it, git would hide the copy from ansible-test (.build is ignored).
dest="/var/tmp/llmops-sanity-$(echo "$LLMOPS_ROOT" | sha256sum | cut -c1-8)/ansible_collections/llmops/platform"
rm -rf "$dest" && mkdir -p "$dest"
cd "$LLMOPS_ROOT"
git ls-files --cached --others --exclude-standard -z \
  | grep -zv '^serving_image/' \
  | while IFS= read -r -d '' f; do if [[ -f "$f" && ! -L "$f" ]]; then printf '%s\0' "$f"; fi; done \
  | xargs -0 cp --parents -t "$dest"
cd "$dest"
ansible-test sanity --local --python 3.11 --color no "$@"
