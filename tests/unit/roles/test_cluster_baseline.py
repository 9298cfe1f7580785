"""playbooks/cluster_baseline.yml (roles cluster_autoscaler and kube_bench), rendered for the real
inventories without a cluster (apply disabled; static hosts file and group_vars, no cloud API), and every
manifest validated with kubernetes-validate (strict: unknown fields fail) for the Kubernetes versions the
other manifests use. The kube-bench summary path runs for real on a report in kube-bench's JSON shape.
Not run here: a Kubernetes API (the Jobs and the autoscaler never ran on a cluster; docs/autoscaling.md).
"""
import json
import os
import pathlib
import subprocess

import kubernetes_validate
import pytest
import yaml

from test_llm_serving_manifests import KUBERNETES_VERSIONS  # the versions the serving manifests are checked for

ROOT = pathlib.Path(__file__).resolve().parents[3]


def run(tmp_path, inventory, *extra):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    cmd = ["ansible-playbook", "-i", "inventories/%s/hosts.yml" % inventory, "playbooks/cluster_baseline.yml",
           "-e", "cluster_autoscaler_apply_enabled=false", "-e", "kube_bench_apply_enabled=false",
           "-e", "cluster_autoscaler_manifest_dir=%s" % (tmp_path / "ca"),
           "-e", "kube_bench_manifest_dir=%s" % (tmp_path / "kb"),
           "-e", "kube_bench_report_file=%s" % (tmp_path / "report.json")]
    for value in extra:
        cmd += ["-e", value]
    proc = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def docs(directory):
    return [doc for path in sorted(pathlib.Path(directory).glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate_all(documents):
    for version in KUBERNETES_VERSIONS:
        for doc in documents:
            kubernetes_validate.validate(doc, version, strict=True)


def cluster(inventory):
    return yaml.safe_load((ROOT / "inventories" / inventory / "group_vars/all/cluster.yml").read_text())


@pytest.mark.parametrize("inventory", ["aws/dev", "aws/prod"])
def test_eks_autoscaler_manifests(tmp_path, inventory):
    proc, output = run(tmp_path, inventory)
    assert proc.returncode == 0, output[-4000:]
    rendered = docs(tmp_path / "ca")
    kinds = ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "ServiceAccount"]
    assert sorted(d["kind"] for d in rendered) == kinds
    validate_all(rendered)
    group_vars = cluster(inventory)
    name, account = group_vars["llmops_cluster"]["name"], group_vars["llmops_aws_account_id"]
    sa = next(d for d in rendered if d["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        "arn:aws:iam::%s:role/%s-cluster-autoscaler" % (account, name)
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    minor = ".".join(str(group_vars["llmops_cluster"]["kubernetes_version"]).split(".")[:2])
    assert container["image"] == "registry.k8s.io/autoscaling/cluster-autoscaler:v%s.0" % minor
    args = container["args"]
    assert "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/%s" % name in args
    for flag in ("--cloud-provider=aws", "--expander=least-waste", "--scale-down-enabled=true",
                 "--scale-down-gpu-utilization-threshold=0.5", "--max-node-provision-time=25m",
                 "--balance-similar-node-groups=true"):
        assert flag in args, flag
    assert {"name": "AWS_REGION", "value": group_vars["llmops_cluster"]["region"]} in container["env"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    # the Role lets it keep its status and priority ConfigMaps, in its own namespace only
    assert next(d for d in rendered if d["kind"] == "Role")["metadata"]["namespace"] == "kube-system"


def test_inventory_role_arn_and_priority_expander(tmp_path):
    arn = "arn:aws:iam::210987654321:role/platform/custom-ca"
    priorities = {"10": [".*spot.*"], "50": [".*-gpu-.*"]}
    proc, output = run(tmp_path, "aws/dev", "cluster_autoscaler_role_arn=%s" % arn,
                       json.dumps({"cluster_autoscaler_expander": "priority,least-waste",
                                   "cluster_autoscaler_expander_priorities": priorities}))
    assert proc.returncode == 0, output[-4000:]
    rendered = docs(tmp_path / "ca")
    validate_all(rendered)
    assert next(d for d in rendered if d["kind"] == "ServiceAccount")["metadata"]["annotations"] == \
        {"eks.amazonaws.com/role-arn": arn}
    config = next(d for d in rendered if d["kind"] == "ConfigMap")
    assert config["metadata"]["name"] == "cluster-autoscaler-priority-expander"
    assert yaml.safe_load(config["data"]["priorities"]) == priorities


@pytest.mark.parametrize("extra, named", [
    ("cluster_autoscaler_expander=fastest", "cluster_autoscaler_expander"),
    ("cluster_autoscaler_expander=priority", "cluster_autoscaler_expander_priorities"),
    ('{"cluster_autoscaler_kubernetes_version": "1.21"}', "cluster_autoscaler_versions"),
    ('{"llmops_aws_account_id": ""}', "cluster_autoscaler_role_arn"),
])
def test_bad_autoscaler_settings_stop_with_the_variable_named(tmp_path, extra, named):
    proc, output = run(tmp_path, "aws/dev", extra)
    assert proc.returncode != 0 and named in output, output[-3000:]


@pytest.mark.parametrize("inventory, benchmark", [("aws/dev", "eks-1.5.0"), ("gcp/dev", "gke-1.6.0"),
                                                  ("azure/prod", "aks-1.7")])
def test_kube_bench_job_per_cloud(tmp_path, inventory, benchmark):
    proc, output = run(tmp_path, inventory)
    assert proc.returncode == 0, output[-4000:]
    rendered = docs(tmp_path / "kb")
    assert [d["kind"] for d in rendered] == ["Namespace", "Job"]
    validate_all(rendered)
    namespace, job = rendered
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["kube-bench", "run", "--targets", "node", "--benchmark", benchmark, "--json"]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "docker.io/aquasec/kube-bench" and tag.startswith("v") and tag != "latest"
    assert pod["hostPID"] and pod["restartPolicy"] == "Never" and not pod["automountServiceAccountToken"]
    assert all(m["readOnly"] for m in container["volumeMounts"])
    assert job["spec"]["backoffLimit"] == 0
    if inventory != "aws/dev":
        assert not (tmp_path / "ca").exists(), "GKE/AKS scale natively: no autoscaler manifests"
        assert "scales node pools itself" in output or "scales agent pools itself" in output


def test_local_lab_does_nothing_and_says_so(tmp_path):
    proc, output = run(tmp_path, "local")
    assert proc.returncode == 0, output[-4000:]
    assert "The local lab has no Kubernetes API" in output
    assert not (tmp_path / "ca").exists() and not (tmp_path / "kb").exists()


def test_the_validator_catches_a_misspelled_field(tmp_path):
    proc, output = run(tmp_path, "aws/dev")
    assert proc.returncode == 0, output[-4000:]
    job = next(d for d in docs(tmp_path / "kb") if d["kind"] == "Job")
    job["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)


def _bench_log(tmp_path, fail):
    results = [{"test_number": "3.1.1", "test_desc": "kubeconfig permissions", "status": "PASS", "scored": True,
                "remediation": ""},
               {"test_number": "3.2.1", "test_desc": "anonymous auth", "status": "FAIL" if fail else "PASS",
                "scored": True, "remediation": "Set authentication.anonymous.enabled: false"},
               {"test_number": "3.2.9", "test_desc": "event qps", "status": "WARN", "scored": False, "remediation": ""}]
    report = {"Controls": [{"id": "3", "version": "eks-1.5.0", "text": "Worker Node Security Configuration",
                            "node_type": "node", "tests": [
                                {"section": "3.1", "desc": "Worker Node Configuration Files", "pass": 1, "fail": 0,
                                 "warn": 0, "info": 0, "results": results[:1]},
                                {"section": "3.2", "desc": "Kubelet", "pass": 0 if fail else 1, "fail": 1 if fail else 0,
                                 "warn": 1, "info": 0, "results": results[1:]}]}]}
    path = tmp_path / "kube-bench.log"
    path.write_text("I0101 kube-bench starting\n" + json.dumps(report) + "\n")
    return path


def test_report_is_summarised_in_the_output_and_a_json_file(tmp_path):
    proc, output = run(tmp_path, "aws/dev", "kube_bench_log_file=%s" % _bench_log(tmp_path, fail=True))
    assert proc.returncode == 0, output[-4000:]
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["totals"] == {"pass": 1, "fail": 1, "warn": 1, "info": 0}
    assert [f["id"] for f in summary["failed"]] == ["3.2.1"] and summary["result"] == "fail"
    assert "3.2 Kubelet: 0 pass, 1 fail, 1 warn, 0 info (failed: 3.2.1)" in output
    assert "total (eks-1.5.0): 1 pass, 1 fail, 1 warn, 0 info" in output


def test_failed_checks_fail_the_play_when_asked(tmp_path):
    proc, output = run(tmp_path, "aws/dev", "kube_bench_log_file=%s" % _bench_log(tmp_path, fail=True),
                       "kube_bench_fail_on_failed_checks_enabled=true")
    assert proc.returncode != 0 and "failed 1 checks: 3.2.1" in output, output[-3000:]
    passing = tmp_path / "ok"
    passing.mkdir()
    proc, output = run(passing, "aws/dev", "kube_bench_log_file=%s" % _bench_log(passing, fail=False),
                       "kube_bench_fail_on_failed_checks_enabled=true")
    assert proc.returncode == 0, output[-3000:]
