#!/usr/bin/env bash
# The main job: install what is needed, then run playbooks/site.yml on the local lab.
# Extra arguments go to ansible-playbook (e.g. --check --diff, -e @my-vars.yml, or
# `-i inventories/aws/dev` once cloud inventories exist).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$LLMOPS_ROOT/scripts/bootstrap.sh"
cd "$LLMOPS_ROOT"
exec ansible-playbook -i inventories/local playbooks/site.yml "$@"
