#!/usr/bin/env bash
# The DR lab (test stage "dr"): two local regions, a real backup -> replicate -> wipe -> drill -> failover
# cycle, and the restore faults, all through the playbooks. Region A stores its backups in a directory,
# region B in an S3 bucket served by moto on loopback (real boto3 over HTTP); each region serves the
# model from a podman pod on its own network (llmops-dr-a-net / llmops-dr-b-net) and a loopback port; an
# nginx front door on 127.0.0.1:18090 is "DNS". Every podman object is named llmops-dr-*.
# The drill report and the textfile metrics are kept in .build/dr-lab/.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
cd "$LLMOPS_ROOT"

INV=tests/dr/inventory
OUT="$LLMOPS_ROOT/.build/dr-lab"
WORK="$(mktemp -d /tmp/llmops-dr-XXXXXX)"
chmod 755 "$WORK"  # the front door and the serving pods run as unprivileged users and read files under it
export LLMOPS_DR_WORK="$WORK"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
MOTO_PID=""

cleanup() {
  set +e
  ansible-playbook -i "$INV" tests/dr/serve.yml -e llm_serving_state=absent >"$WORK/cleanup.log" 2>&1
  # One object per command: podman stops at the first name that does not exist.
  local region
  podman rm -f -t 0 llmops-dr-frontdoor >/dev/null 2>&1
  for region in a b; do
    podman pod rm -f -t 0 "llmops-dr-$region-pod-0" >/dev/null 2>&1
    podman volume rm -f "llmops-dr-$region-models" >/dev/null 2>&1
    podman network rm -f "llmops-dr-$region-net" >/dev/null 2>&1
  done
  [[ -n "$MOTO_PID" ]] && kill "$MOTO_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "dr: FAIL: $*" >&2; exit 1; }
play() { ansible-playbook -i "$INV" "$@"; }
changes() { grep -Eo 'changed=[0-9]+' "$1" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'; }
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }
site_behind_frontdoor() { curl -s -o /dev/null -D - http://127.0.0.1:18090/readyz | tr -d '\r' | awk -F': ' 'tolower($1)=="x-llmops-site" {print $2}'; }
s3() { python - "$@"; }
# damage_blob VERSION FILE truncate|flip: damage, in region B's bucket, the stored blob of one file of
# model-tiny-llama VERSION: cut it to 8 bytes, or flip one byte in the middle (same size).
damage_blob() {
  s3 "$@" <<'PY'
import json, os, sys, boto3
version, path, how = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["LLMOPS_DR_S3_ENDPOINT"])
bucket, name = "llmops-dr-region-b", "model-tiny-llama"
manifest = json.loads(s3.get_object(Bucket=bucket, Key="%s/manifests/%s.json" % (name, version))["Body"].read())
entry = next(f for f in manifest["files"] if f["path"] == path)
key = "%s/blobs/%s" % (name, entry["sha256"])
body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
if how == "truncate":
    body = body[:8]
else:
    body[len(body) // 2] ^= 0xFF
s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
PY
}

podman image exists localhost/llmops/serving:test \
  || fail "the serving image localhost/llmops/serving:test is missing: run scripts/test.sh image first"
bash serving_image/scripts/ensure-venv.sh >/dev/null

log "dr: moto S3 on loopback (region B's object store)"
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
export LLMOPS_DR_S3_ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 50); do curl -s -o /dev/null "$LLMOPS_DR_S3_ENDPOINT" && break; sleep 0.2; done
s3 <<'PY'
import os, boto3
boto3.client("s3", endpoint_url=os.environ["LLMOPS_DR_S3_ENDPOINT"]).create_bucket(
    Bucket="llmops-dr-region-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
PY

log "dr: region A: a tiny model, the backup key, the serving pod and the front door"
mkdir -p "$WORK/keys" "$WORK/region-a/models" "$WORK/region-b/models"
(umask 077; head -c 32 /dev/urandom > "$WORK/keys/backup.key"; head -c 32 /dev/urandom > "$WORK/keys/wrong.key"
 python -c 'import secrets; print(secrets.token_urlsafe(32), end="")' > "$WORK/keys/serving.key")
serving_image/.venv/bin/llmops-make-tiny-model --tokenizer word "$WORK/region-a/models/tiny-llama" >/dev/null 2>&1
for region in a b; do
  podman network exists "llmops-dr-$region-net" || podman network create --label llmops.cluster=llmops-dr "llmops-dr-$region-net" >/dev/null
done
play tests/dr/serve.yml --limit llmops-dr-a
play playbooks/dr_failover.yml -e llmops_dr_failover_to=primary
[[ "$(site_behind_frontdoor)" == primary ]] || fail "the front door does not answer from the primary"

log "dr: backup (twice, the model changes in between) and replication to region B"
play playbooks/backup.yml
echo "release notes of the second version" > "$WORK/region-a/models/tiny-llama/README.md"
sleep 1
play playbooks/backup.yml
for prom in "$WORK"/region-a/textfile/*.prom; do
  promtool check metrics < "$prom" || fail "$(basename "$prom") does not parse as Prometheus text"
done
grep -q '^llmops_backup_last_run_success{backup="model-tiny-llama"} 1$' "$WORK"/region-a/textfile/llmops_backup_model-tiny-llama.prom \
  || fail "the model backup did not record a successful run"
grep -q '^llmops_backup_last_run_success{backup="replication"} 1$' "$WORK"/region-a/textfile/llmops_backup_replication.prom \
  || fail "replication did not record a successful run"
VERSIONS="$(s3 <<'PY'
import os, boto3
keys = boto3.client("s3", endpoint_url=os.environ["LLMOPS_DR_S3_ENDPOINT"]).list_objects_v2(
    Bucket="llmops-dr-region-b", Prefix="model-tiny-llama/manifests/").get("Contents", [])
print(" ".join(sorted(k["Key"].rsplit("/", 1)[1][:-5] for k in keys)))
PY
)"
read -r V1 V2 <<<"$VERSIONS"
[[ -n "${V2:-}" ]] || fail "region B's bucket should hold two versions, has: $VERSIONS"

log "dr: the primary region is lost (pod, models and backups)"
podman pod rm -f -t 0 llmops-dr-a-pod-0 >/dev/null
podman volume rm -f llmops-dr-a-models >/dev/null
rm -rf "$WORK/region-a/store" "$WORK/region-a/models"

log "dr: drill into region B"
play playbooks/dr_drill.yml
python - "$WORK/reports/latest.json" "$V2" <<'PY' || fail "the drill report does not show RTO and RPO within targets"
import json, sys
report = json.load(open(sys.argv[1]))
assert report["success"] is True, report
for key in ("rto", "rpo"):
    assert isinstance(report[key]["seconds"], (int, float)), (key, report[key])
    assert 0 < report[key]["seconds"] <= report[key]["target_seconds"], (key, report[key])
# The RTO spans the restore, so it can never be shorter than it.
assert report["rto"]["seconds"] >= report["rto"]["restore_seconds"] > 0, report["rto"]
assert [s["version"] for s in report["restored"]["sets"]] == [sys.argv[2]], report["restored"]
print("dr: RTO %.1f s (target %.0f s), RPO %.1f s (target %.0f s)" % (
    report["rto"]["seconds"], report["rto"]["target_seconds"], report["rpo"]["seconds"], report["rpo"]["target_seconds"]))
PY
grep -q '^llmops_dr_drill_last_success{plan="lab-region-a-to-b"} 1$' "$WORK"/region-b/textfile/llmops_dr_drill_lab-region-a-to-b.prom \
  || fail "the drill metrics do not record a success"

log "dr: a drill with an RTO target it cannot meet fails and says so (its report and metrics kept apart)"
if play playbooks/dr_drill.yml -e dr_drill_rto_target_seconds=0.01 -e dr_drill_report_dir="$WORK/missed" \
     -e dr_drill_metrics_enabled=false >"$WORK/missed.log" 2>&1; then
  fail "a drill that missed its RTO target passed"
fi
grep -q "vs target 0.01 s" "$WORK/missed.log" || { tail -40 "$WORK/missed.log"; fail "the missed-target failure does not name the target"; }
python - "$WORK/missed/latest.json" <<'PY' || fail "the missed drill's report does not say it missed its RTO target"
import json, sys
report = json.load(open(sys.argv[1]))
assert report["success"] is False and report["failed_step"] == "", report  # a missed target, not a broken step
assert report["rto"]["seconds"] > report["rto"]["target_seconds"] == 0.01, report["rto"]
assert report["rpo"]["seconds"] <= report["rpo"]["target_seconds"], report["rpo"]
PY

log "dr: failover: the front door moves to region B after B's health check"
play playbooks/dr_failover.yml
[[ "$(site_behind_frontdoor)" == standby ]] || fail "the front door does not answer from the standby"
log "dr: failing back to the lost primary is refused by the health check and moves nothing"
if play playbooks/dr_failover.yml -e llmops_dr_failover_to=primary -e dr_traffic_health_ready_timeout=3 >"$WORK/failback.log" 2>&1; then
  fail "failover to a dead site succeeded"
fi
[[ "$(site_behind_frontdoor)" == standby ]] || fail "a refused failover moved the front door"

log "dr: restoring again changes nothing"
play playbooks/restore.yml -e llmops_restore_hosts=llmops_dr_standby | tee "$WORK/restore2.log"
[[ "$(changes "$WORK/restore2.log")" == 0 ]] || fail "a second restore of the same set changed something"

log "dr: point in time: the moment between the two backups restores the first"
PIT="$(python -c "import sys; v=sys.argv[1]; print('%s-%s-%sT%s:%s:%sZ' % (v[0:4], v[4:6], v[6:8], v[9:11], v[11:13], v[13:15]))" "$V2")"
play playbooks/restore.yml -e llmops_restore_hosts=llmops_dr_standby -e llmops_restore_point_in_time="$PIT" \
  -e "{\"llmops_restore_models\": [{\"name\": \"tiny-llama\", \"path\": \"$WORK/pit/tiny-llama\"}]}"
[[ ! -e "$WORK/pit/tiny-llama/README.md" && -e "$WORK/pit/tiny-llama/config.json" ]] \
  || fail "the point-in-time restore did not bring back the first version"

STANDBY="$WORK/region-b/models/tiny-llama"
log "dr: a wrong key is a clear error and changes nothing"
before="$(tree_sum "$STANDBY")"
if play playbooks/restore.yml -e llmops_restore_hosts=llmops_dr_standby \
     -e "{\"llmops_restore_encryption\": {\"key_file\": \"$WORK/keys/wrong.key\"}}" >"$WORK/wrongkey.log" 2>&1; then
  fail "a restore with the wrong key succeeded"
fi
grep -qi "wrong key" "$WORK/wrongkey.log" || { cat "$WORK/wrongkey.log"; fail "the wrong-key error does not say so"; }
[[ "$(tree_sum "$STANDBY")" == "$before" ]] || fail "a failed restore changed the model"

log "dr: a truncated newest set is never restored; the newest good one is"
damage_blob "$V2" README.md truncate  # an upload cut short
play playbooks/restore.yml -e llmops_restore_hosts=llmops_dr_standby | tee "$WORK/truncated.log"
# The first version has no README.md: its absence shows the good set $V1 replaced the newest one.
[[ ! -e "$STANDBY/README.md" && -e "$STANDBY/config.json" ]] || fail "the restore did not fall back to the good set $V1"

log "dr: a corrupted set (same size, bytes changed) fails verification and the previous model stays"
damage_blob "$V1" config.json flip
rm -rf "$STANDBY" && mkdir -p "$STANDBY" && echo "previous model" > "$STANDBY/previous.txt"
before="$(tree_sum "$STANDBY")"
if play playbooks/restore.yml -e llmops_restore_hosts=llmops_dr_standby >"$WORK/corrupt.log" 2>&1; then
  fail "a corrupted set was restored"
fi
grep -Eqi "authentication|integrity|corrupt|tamper" "$WORK/corrupt.log" || { cat "$WORK/corrupt.log"; fail "the corruption error is unclear"; }
[[ "$(tree_sum "$STANDBY")" == "$before" ]] || fail "a failed restore replaced the previous model"

log "dr: the backup timer's units render and pass systemd-analyze verify"
play tests/dr/schedule.yml
systemd-analyze verify --man=no "$WORK/units/llmops-dr-backup.service" "$WORK/units/llmops-dr-backup.timer"

rm -rf "$OUT" && mkdir -p "$OUT"
cp "$WORK"/reports/latest.json "$WORK"/reports/latest.md "$OUT"/
cp "$WORK"/region-a/textfile/*.prom "$WORK"/region-b/textfile/*.prom "$OUT"/
echo "dr: backup, replication, wipe, drill, failover and the restore faults passed; report in $OUT/latest.md"
