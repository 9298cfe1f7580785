#!/usr/bin/env bash
# The main job: install what is needed, then run playbooks/site.yml on the local lab.
# Extra arguments go to ansible-playbook (e.g. --check --diff, -e @my-vars.yml). A cloud inventory with
# LLMOPS_INVENTORY=inventories/aws/dev (or gcp/…, azure/…; docs/clouds.md says what each needs first).
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
bash "$LLMOPS_ROOT/scripts/bootstrap.sh"
cd "$LLMOPS_ROOT"
exec ansible-playbook -i "${LLMOPS_INVENTORY:-inventories/local}" playbooks/site.yml "$@"
