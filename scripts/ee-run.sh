#!/usr/bin/env bash
# Run a playbook of this project inside the execution environment the way AWX's runner does: a fresh
# private data directory mounted at /runner (env/envvars, env/extravars, credential files under env/),
# the project at /runner/project, and ansible-runner as the entry point in the EE image.
#   scripts/ee-run.sh PLAYBOOK [INVENTORY [OPTION ...]]   e.g. scripts/ee-run.sh playbooks/site.yml
#   OPTION                   ansible-playbook options (env/cmdline), e.g. --check for a job of type check
#   LLMOPS_EE_CREDENTIALS    a YAML file {credential type name: its inputs}: scripts/awx-inject.py injects
#                            them into the private data directory as AWX's credential injection would
# The output is ansible-playbook's, and the exit status is the playbook's.
#
# What differs from an AWX job, on purpose (docs/awx.md, "Execution environment"):
# - The local lab runs its nodes on this host's podman. The EE reaches it as a podman client through the
#   host's API socket (`podman system service`, CONTAINER_HOST), as root (the lab's podman is rootful), and
#   on the host network (the serving pod listens on the host's loopback).
# - Paths that podman on the host resolves (node seeds and the keys under ~/.llmops, the volumes'
#   mountpoints) and the lab's model store and artifact key (/var/lib/llmops, /etc/llmops: inventories/local
#   keeps them on this host, where AWX would use an object store and a credential file) are mounted at the
#   same paths; the nodes' boot mounts name the host's copies of the
#   collections, passed as extra vars (llmops_lab_collection_root, llmops_lab_collection_dirs).
# - The inventory is the project's inventory directory, which AWX would import as an inventory source.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

playbook="${1:?usage: scripts/ee-run.sh PLAYBOOK [INVENTORY [OPTION ...]]}"
inventory="${2:-inventories/local}"
shift $(($# < 2 ? $# : 2))
image="${LLMOPS_EE_IMAGE:-localhost/llmops/platform-ee:0.1.0}"

bash scripts/build-ee.sh >&2

work="$(mktemp -d /var/tmp/llmops-ee.XXXXXX)"
service=""
cleanup() {
  if [[ -n "$service" ]]; then kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

pdd="$work/runner"
mkdir -p "$pdd/env" "$work/podman" "$HOME/.llmops"
if [[ -n "${LLMOPS_EE_CREDENTIALS:-}" ]]; then
  python3 scripts/awx-inject.py "$pdd" "$LLMOPS_EE_CREDENTIALS" >&2
fi
if (($#)); then
  # After the credentials' `-e @file`, as AWX adds the job's own options.
  printf ' %q' "$@" >> "$pdd/env/cmdline"
fi

# The host's podman API, for this run only.
podman system service --time=0 "unix://$work/podman/podman.sock" &
service=$!
for _ in $(seq 50); do [[ -S "$work/podman/podman.sock" ]] && break; sleep 0.1; done
[[ -S "$work/podman/podman.sock" ]] || { echo "ee-run: podman system service did not start" >&2; exit 1; }

# envvars and extravars are merged into what the credential injection (LLMOPS_EE_CREDENTIALS) wrote. The
# extra vars name the host's copies of what the lab nodes mount (unused by other inventories).
python3 - "$pdd/env" "$LLMOPS_ROOT" <<'PY'
import importlib, pathlib, sys
import yaml
env, root = pathlib.Path(sys.argv[1]), sys.argv[2]

def merge(name, values):
    path = env / name
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(yaml.safe_dump(data))

merge("envvars", {
    "CONTAINER_HOST": "unix:///run/podman/podman.sock",
    # As AWX sets it for its jobs: the EE's collections, not a checkout's .collections link.
    "ANSIBLE_COLLECTIONS_PATH": "/runner/requirements_collections:/usr/share/ansible/collections",
})
dirs = {n: importlib.import_module("ansible_collections." + n).__path__[0]
        for n in ("community.general", "ansible.posix")}
merge("extravars", {"llmops_lab_collection_root": root, "llmops_lab_collection_dirs": dirs})
PY

volumes="$(podman info --format '{{.Store.VolumePath}}')"
mkdir -p /var/lib/llmops /etc/llmops
job() {
  podman run --rm --network host --user 0 --security-opt label=disable \
    -v "$pdd:/runner" -v "$LLMOPS_ROOT:/runner/project:ro" -v "$work/podman:/run/podman" \
    -v "$HOME/.llmops:/root/.llmops" -v "$volumes:$volumes" -e HOME=/root \
    -v /var/lib/llmops:/var/lib/llmops -v /etc/llmops:/etc/llmops \
    "$image" ansible-runner run /runner -p "$playbook" --inventory "/runner/project/$inventory"
}
# podman-remote exec now and then returns an exec's output empty (an open upstream race: podman issues
# 21741 and 25855); Ansible then fails to read a node's temp directory or a module's result. A job that
# failed that way, and only that way, runs once more; both outputs are printed, so a caller that sums the
# recaps still sees every change either attempt made.
for attempt in 1 2; do
  status=0
  job | tee "$work/job.log" || status=$?
  if ((status == 0 || attempt == 2)) \
     || ! grep -Eq "failed to resolve remote temporary directory .* returned empty string|module_stdout: ''" "$work/job.log"; then
    exit "$status"
  fi
  log "ee-run: podman-remote lost an exec's output (podman#21741); running the job once more"
done
