#!/usr/bin/env bash
# On the running lab, inside the execution environment: a credential injected as AWX injects it is what the
# role uses, and it is never printed. The lab serves without the watermark (inventories/local: a 135 M model's
# answers do not survive it), so the job turns it on, with a fresh key from the "LLMOps watermark key"
# credential type: the serving Secret would change, the output holds no key, and, the job being of type
# check, the serving pod is the one that ran before. Called by the e2e stage of scripts/test.sh.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

pod_id() { podman pod inspect --format '{{.Id}}' llmops-serving-pod-0 2>/dev/null || true; }
before="$(pod_id)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
key="rotated-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf 'LLMOps watermark key:\n  key: "%s"\n' "$key" > "$dir/credentials.yml"
LLMOPS_EE_CREDENTIALS="$dir/credentials.yml" bash scripts/ee-run.sh playbooks/deploy_serving.yml inventories/local \
  --check -e llm_serving_watermark_enabled=true > "$dir/job.log" 2>&1 || { tail -40 "$dir/job.log" >&2; exit 1; }
if grep -qF "$key" "$dir/job.log"; then
  echo "ee-credentials: the injected watermark key appears in the job's output" >&2; exit 1
fi
grep -A2 'TASK \[llmops.platform.llm_serving : Write the Secret manifest\]' "$dir/job.log" | grep -q 'changed: \[localhost\]' \
  || { echo "ee-credentials: the injected watermark key did not reach the serving Secret" >&2; exit 1; }
# llm_serving skips the replay in check mode (containers.podman's podman_play and podman_secret act even then).
[[ "$(pod_id)" == "$before" ]] || { echo "ee-credentials: a check-mode run replayed the serving pod" >&2; exit 1; }
echo "ee-credentials: the injected watermark key reaches the serving Secret in the EE, unprinted; check mode left the pod alone"
