#!/usr/bin/env bash
# On the running lab, inside the execution environment: a credential injected as AWX injects it is what the
# role uses. The watermark key the lab holds, injected by the "LLMOps watermark key" credential type,
# changes nothing; a rotated key would change the serving Secret (both runs are jobs of type check, so
# nothing is changed). Neither key appears in the output. Called by the e2e stage of scripts/test.sh.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

pod_id() { podman pod inspect --format '{{.Id}}' llmops-serving-pod-0 2>/dev/null || true; }
before="$(pod_id)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
held="$(cat "$HOME/.llmops/llmops-lab/serving-watermark-key")"
rotated="rotated-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
for name in held rotated; do
  printf 'LLMOps watermark key:\n  key: "%s"\n' "${!name}" > "$dir/$name.yml"
  LLMOPS_EE_CREDENTIALS="$dir/$name.yml" bash scripts/ee-run.sh playbooks/deploy_serving.yml inventories/local \
    --check > "$dir/$name.log" 2>&1 || { tail -40 "$dir/$name.log" >&2; exit 1; }
  if grep -qF -e "$held" -e "$rotated" "$dir/$name.log"; then
    echo "ee-credentials: a watermark key appears in the job's output" >&2; exit 1
  fi
done
changes="$(grep -Eo 'changed=[0-9]+' "$dir/held.log" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')"
[[ "$changes" == 0 ]] || { echo "ee-credentials: the injected key the lab holds changed $changes thing(s)" >&2; exit 1; }
grep -A2 'TASK \[llmops.platform.llm_serving : Write the Secret manifest\]' "$dir/rotated.log" | grep -q 'changed: \[localhost\]' \
  || { echo "ee-credentials: a rotated injected watermark key did not reach the serving Secret" >&2; exit 1; }
# Jobs of type check change nothing: the serving pod is the one that ran before them (llm_serving skips the
# replay in check mode, since containers.podman's podman_play and podman_secret act even then).
[[ "$(pod_id)" == "$before" ]] || { echo "ee-credentials: a check-mode run replayed the serving pod" >&2; exit 1; }
echo "ee-credentials: the injected watermark key reaches the serving Secret in the EE (held: no change; rotated: the Secret changes)"
