#!/usr/bin/env bash
# The whole test suite, in order, failing fast. Installs what it needs first (scripts/bootstrap.sh).
#   lint       ansible-lint --profile production
#   sanity     ansible-test sanity on the collection
#   unit       pytest tests/unit (real podman for the local provider)
#   serving    serving_image/ pytest suite: the real HTTP server and torch generation on a tiny model
#   build      ansible-galaxy collection build + install, modules resolve by FQCN, docs render
#   image      the serving image built with podman on the lab base image, run once and hit over HTTP
#   molecule   every scenario under molecule/ (podman driver, systemd Debian nodes)
#   e2e        playbooks/site.yml on inventories/local twice, the second inside the execution environment
#              (scripts/ee-run.sh; it must change nothing), the EE image checks, teardown
#   dr         backup -> replicate (moto S3) -> wipe -> DR drill -> failover, and the restore faults (scripts/dr-lab.sh)
# Run one stage with: scripts/test.sh unit   (several: scripts/test.sh lint unit)
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

ALL_STAGES=(lint sanity unit serving build image molecule e2e dr)
stages=("$@"); ((${#stages[@]})) || stages=("${ALL_STAGES[@]}")

stage_lint() { ansible-lint; }

stage_sanity() { bash scripts/sanity.sh; }

stage_unit() { python -m pytest tests/unit -q -p no:cacheprovider; }

stage_serving() { bash serving_image/scripts/test.sh; }

stage_image() { bash serving_image/scripts/test-image.sh; }

stage_build() {
  local out; out="$(mktemp -d)"
  trap 'rm -rf "$out"' RETURN
  ansible-galaxy collection build --force --output-path "$out/dist" . >/dev/null
  ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-galaxy collection install --offline --no-deps --force \
    -p "$out/installed" "$out"/dist/llmops-platform-*.tar.gz >/dev/null
  if tar -tzf "$out"/dist/llmops-platform-*.tar.gz | grep -E '^(\.venv|serving_image|\.collections|scripts)/' ; then
    echo "build: the artifact contains files build_ignore should have excluded" >&2; return 1
  fi
  local doc
  for module in gpu_cluster gpu_cluster_info gpu_capacity_info eks_cluster_identity model_artifact backup_catalog prometheus_snapshot gpu_facts llm_endpoint_check; do
    doc="$(ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-doc "llmops.platform.$module")"
    if ! grep -q "EXAMPLES" <<<"$doc" || ! grep -q "RETURN VALUES" <<<"$doc"; then
      echo "build: ansible-doc llmops.platform.$module is incomplete" >&2; return 1
    fi
  done
  # The installed artifact (not the checkout) must resolve modules by FQCN in a real play.
  (cd "$out" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible localhost -c local \
     -m llmops.platform.gpu_cluster_info -a "provider=local name=llmops-absent-cluster") | tee "$out/adhoc.log"
  grep -q '"exists": false' "$out/adhoc.log"
  # ...and it is the installed copy that answered, not this checkout.
  (cd "$out" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$out/installed" \
     ansible-galaxy collection list llmops.platform) | grep "^# $out/installed/ansible_collections" >/dev/null
  echo "build: artifact builds, installs, documents and runs its modules by FQCN"
}

stage_molecule() {
  local scenario
  for scenario in molecule/*/molecule.yml; do
    scenario="$(basename "$(dirname "$scenario")")"
    log "molecule scenario $scenario"
    molecule test -s "$scenario"
  done
}

recap_changes() {  # sum of changed= in a PLAY RECAP read from stdin
  grep -Eo 'changed=[0-9]+' | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'
}

stage_dr() { bash scripts/dr-lab.sh; }

# The node_hardening controls a lab node must carry, whether harden.yml or its first boot applied them.
e2e_node_hardened() {
  local node=$1 sysctl sshd want
  sysctl="$(podman exec "$node" cat /etc/sysctl.d/60-llmops-hardening.conf)"
  sshd="$(podman exec "$node" sshd -T | tr '[:upper:]' '[:lower:]')"
  for want in "kernel.kptr_restrict = 2" "net.ipv4.tcp_syncookies = 1" "net.ipv4.conf.all.accept_redirects = 0"; do
    grep -qxF "$want" <<<"$sysctl" || { echo "e2e: $node lacks sysctl '$want'" >&2; return 1; }
  done
  for want in "permitrootlogin no" "maxauthtries 3" "allowtcpforwarding no"; do
    grep -qxF "$want" <<<"$sshd" || { echo "e2e: $node sshd lacks '$want'" >&2; return 1; }
  done
  podman exec "$node" grep -q "Authorised access only" /etc/issue.net || { echo "e2e: $node has no banner" >&2; return 1; }
  podman exec "$node" test -f /var/lib/aide/aide.db || { echo "e2e: $node has no AIDE database" >&2; return 1; }
  podman exec "$node" grep -q 'table inet llmops_filter' /etc/nftables.conf || { echo "e2e: $node has no firewall" >&2; return 1; }
}

# Every lab node is hardened and monitored: its controls are in place, its node_exporter runs, and the
# lab's Prometheus scrapes it and finds it up (the node label is the node's inventory name).
e2e_lab_nodes_hardened_and_monitored() {
  local nodes node
  nodes="$(podman ps --filter label=llmops.cluster=llmops-lab --format '{{.Names}}' | sort)"
  [[ "$(wc -w <<<"$nodes")" -ge 3 ]] || { echo "e2e: expected the lab's 3 nodes, found: $nodes" >&2; return 1; }
  for node in $nodes; do
    e2e_node_hardened "$node"
    podman exec "$node" systemctl is-active --quiet prometheus-node-exporter \
      || { echo "e2e: node_exporter is not running on $node" >&2; return 1; }
  done
  # Targets start as "unknown" until their first scrape: wait for up to a minute.
  # shellcheck disable=SC2086  # one argument per node
  podman exec -i llmops-lab-monitoring-1 python3 - $nodes <<'PY' || { echo "e2e: Prometheus does not see every node up" >&2; return 1; }
import json, sys, time, urllib.request
want = set(sys.argv[1:])
for _ in range(60):
    targets = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/targets?state=active"))["data"]["activeTargets"]
    up = {t["labels"].get("node") for t in targets if t["labels"].get("job") == "node" and t["health"] == "up"}
    if want <= up:
        print("e2e: Prometheus scrapes node_exporter on %s, all up" % ", ".join(sorted(want)))
        sys.exit(0)
    time.sleep(1)
sys.exit("node targets up: %s, wanted: %s" % (sorted(up), sorted(want)))
PY
}

# A node that joins later, with nobody running harden.yml, comes up hardened: raise the lab's GPU pool
# with provision.yml alone (the AWX "GPU node count" override), then check the role's controls on the new
# node and measure it with Lynis. The node hardened itself at first boot from the cloud-init seed that
# node_boot_config rendered, as a managed cloud node does from its boot-time configuration.
e2e_scale_up_hardens_at_boot() {
  local node=llmops-lab-gpu-3 started=$SECONDS
  ansible-playbook -i inventories/local playbooks/provision.yml -e llmops_gpu_node_count=3
  log "e2e: $node joined and finished its first-boot hardening in $((SECONDS - started))s"
  podman exec "$node" cloud-init status | grep -q 'status: done' || { echo "e2e: cloud-init did not finish on $node" >&2; return 1; }
  e2e_node_hardened "$node"
  # Lynis is an auditing tool, not part of the node: installed for the measurement only.
  local index
  index="$(podman exec "$node" sh -c 'apt-get install -y -qq lynis >/dev/null 2>&1 && lynis audit system --quick --no-colors' \
           | sed -n 's/.*Hardening index : \([0-9]*\).*/\1/p')"
  log "e2e: Lynis hardening index of $node (hardened at boot, no profile, container limits counted): ${index:-none}"
  if [[ -z "$index" ]] || ((index < LLMOPS_BOOT_LYNIS_MIN)); then
    echo "e2e: $node Lynis index ${index:-none} is below $LLMOPS_BOOT_LYNIS_MIN" >&2; return 1
  fi
}
# The bar for the boot-hardened lab node, measured like molecule's no-profile audit (bar 81 there). The
# node scored 81 on 2026-12-06 (docs/hardening.md); one point of slack for what the mirrors' state changes.
LLMOPS_BOOT_LYNIS_MIN="${LLMOPS_BOOT_LYNIS_MIN:-80}"

stage_e2e() {
  local log1 log2; log1="$(mktemp)"; log2="$(mktemp)"
  trap 'rm -f "$log1" "$log2"' RETURN
  ansible-playbook -i inventories/local playbooks/site.yml | tee "$log1"
  # The second run, which must change nothing, runs as AWX runs jobs: inside the execution environment
  # (built here, cached by its inputs), through ansible-runner. Then the checks that need the image.
  bash scripts/ee-run.sh playbooks/site.yml | tee "$log2"
  LLMOPS_EE_CHECKS=1 python -m pytest tests/unit/test_awx_ee_image.py tests/unit/test_awx_ee_credentials.py \
    -q -p no:cacheprovider
  local changes; changes="$(recap_changes < "$log2")"
  if [[ "$changes" != 0 ]]; then
    echo "e2e: the second run of site.yml changed $changes thing(s); it must change nothing" >&2; return 1
  fi
  grep -Eq 'node llmops-lab-gpu-1 \(gpu\) running' "$log2" || { echo "e2e: report lacks the GPU nodes" >&2; return 1; }
  # Serving: smoke-tested on both runs; after the second, the API answers with the generated key (kept in
  # an owner-only file) and refuses a request without it.
  local run; for run in "$log1" "$log2"; do
    grep -q 'smoke test passed: http://127.0.0.1:8080 ' "$run" || { echo "e2e: no passed smoke test in $run" >&2; return 1; }
  done
  local key_file="$HOME/.llmops/llmops-lab/serving-api-key" api=http://127.0.0.1:8080/v1/completions
  local body='{"model": "smollm2-135m-instruct", "prompt": "Hello", "max_tokens": 4}'
  [[ "$(stat -c %a "$key_file")" == 600 ]] || { echo "e2e: $key_file is not mode 600" >&2; return 1; }
  local answer; answer="$(curl -sS --fail -H "Authorization: Bearer $(cat "$key_file")" \
                           -H 'Content-Type: application/json' -d "$body" "$api")"
  grep -q '"choices"' <<<"$answer" || { echo "e2e: the API did not answer with the generated key" >&2; return 1; }
  [[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" "$api")" == 401 ]] \
    || { echo "e2e: the API answered without a key" >&2; return 1; }
  e2e_lab_nodes_hardened_and_monitored
  # A job of type check with an injected watermark key: the Secret would change, the pod does not.
  bash scripts/ee-credentials-check.sh
  e2e_scale_up_hardens_at_boot
  ansible-playbook -i inventories/local playbooks/teardown.yml
  if podman pod exists llmops-serving-pod-0; then echo "e2e: teardown left the serving pod" >&2; return 1; fi
  local left; left="$(podman ps -a --filter label=llmops.cluster=llmops-lab --format '{{.Names}}'; \
                     podman network ls --filter label=llmops.cluster=llmops-lab --format '{{.Name}}')"
  if [[ -n "$left" ]]; then echo "e2e: teardown left behind: $left" >&2; return 1; fi
  echo "e2e: site.yml built the lab and served, second run changed nothing, teardown left nothing"
}

bash scripts/bootstrap.sh
passed=0
for stage in "${stages[@]}"; do
  declare -F "stage_$stage" >/dev/null || { echo "unknown stage $stage (stages: ${ALL_STAGES[*]})" >&2; exit 2; }
  log "stage $stage"
  start=$SECONDS
  # A subshell outside any `if`, so `set -e` holds inside the stage: its first failing command fails it.
  set +e
  (set -e; "stage_$stage")
  status=$?
  set -e
  if ((status != 0)); then
    log "stage $stage FAILED after $((SECONDS - start))s"
    echo "stages: $passed passed, 1 failed"
    exit 1
  fi
  log "stage $stage passed in $((SECONDS - start))s"
  passed=$((passed + 1))
done
echo "stages: $passed passed, 0 failed"
