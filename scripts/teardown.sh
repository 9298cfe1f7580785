#!/usr/bin/env bash
# Remove the local lab (or, with LLMOPS_INVENTORY=inventories/<cloud>/<env>, a cluster whose
# inventory allows teardown). Extra arguments go to ansible-playbook.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"
exec ansible-playbook -i "${LLMOPS_INVENTORY:-inventories/local}" playbooks/teardown.yml "$@"
