"""kubeconfig and context reach every role's kubernetes.core calls through module_defaults (issue 20): the
roles run for real against a kubeconfig whose only server is a closed loopback port, and the arguments
the first cluster call was invoked with are read from ansible's JSON callback. That call fails (no
cluster, and no kubernetes or helm client here), which is what makes its invocation visible; the test
asserts on the arguments, not on the failure. A task that lost the defaults would send no kubeconfig.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
CONTEXT = "probe-context"
# kubeconfig is no_log in kubernetes.core (it may be a dict with credentials): a given path reads back as this.
GIVEN = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def _kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig.yml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
        "clusters": [{"name": "closed", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "probe", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": "closed", "user": "probe"}}]}))
    return str(path)


def _first_failure(tmp_path, args):
    """Run ansible-playbook with the JSON callback; the name and module arguments of the first failed task."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run(["ansible-playbook"] + args, cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode != 0, "nothing failed: did a task reach a cluster? " + proc.stdout[-2000:]
    for play in json.loads(proc.stdout)["plays"]:
        for task in play["tasks"]:
            result = next(iter(task["hosts"].values()), {})
            if result.get("failed"):
                # A loop reports per item: the first failed item carries the invocation.
                result = next((item for item in result.get("results", []) if item.get("failed")), result)
                return task["task"]["name"], result.get("invocation", {}).get("module_args", {})
    raise AssertionError("no failed task in the output: " + proc.stderr[-2000:])


def _run_role(tmp_path, role, variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Run the role", "ansible.builtin.include_role": {"name": "llmops.platform." + role},
                   "vars": variables}]}]))
    # The venv's python runs the modules: the system one lacks the collection's requirements.
    return _first_failure(tmp_path, ["-i", "localhost,", "-e", "ansible_python_interpreter=%s" % sys.executable,
                                     str(playbook)])


def test_kube_bench_job_calls_get_kubeconfig_and_context(tmp_path):
    name, args = _run_role(tmp_path, "kube_bench", {
        "kube_bench_enabled": True, "kube_bench_provider": "aws", "kube_bench_apply_enabled": True,
        "kube_bench_kubeconfig": _kubeconfig(tmp_path), "kube_bench_kube_context": CONTEXT,
        "kube_bench_manifest_dir": str(tmp_path / "manifests"), "kube_bench_report_file": str(tmp_path / "r.json")})
    assert name.endswith("Remove the previous benchmark Job")  # in run.yml, included from main.yml
    assert args["kubeconfig"] == GIVEN and args["context"] == CONTEXT


def test_empty_settings_send_no_kubeconfig_or_context(tmp_path):
    """The defaults are empty strings: module_defaults must omit them, so the client's own defaults apply."""
    name, args = _run_role(tmp_path, "kube_bench", {
        "kube_bench_enabled": True, "kube_bench_provider": "aws", "kube_bench_apply_enabled": True,
        "kube_bench_kubeconfig": "", "kube_bench_kube_context": "",
        "kube_bench_manifest_dir": str(tmp_path / "manifests"), "kube_bench_report_file": str(tmp_path / "r.json")})
    assert name.endswith("Remove the previous benchmark Job")
    assert args.get("kubeconfig") is None and args.get("context") is None


def test_llm_serving_removal_gets_kubeconfig_and_context(tmp_path):
    name, args = _run_role(tmp_path, "llm_serving", {
        "llm_serving_state": "absent", "llm_serving_target": "kubernetes",
        "llm_serving_kubeconfig": _kubeconfig(tmp_path), "llm_serving_kube_context": CONTEXT,
        "llm_serving_manifest_dir": str(tmp_path / "manifests")})
    assert name.endswith("Delete the namespace and everything in it")  # absent.yml, included from main.yml
    assert args["kubeconfig"] == GIVEN and args["context"] == CONTEXT


def test_velero_helm_calls_get_kubeconfig(tmp_path):
    name, args = _run_role(tmp_path, "velero", {
        "velero_enabled": True, "velero_bucket": "backups", "velero_kubeconfig": _kubeconfig(tmp_path)})
    assert name.endswith("Add the Velero chart repository")
    assert args["kubeconfig"] == GIVEN


@pytest.mark.parametrize("steps, task", [("autoscaler", "Apply the manifests"),
                                         ("kube-bench", "Remove the previous benchmark Job")])
def test_cluster_baseline_calls_get_kubeconfig_and_context(tmp_path, steps, task):
    kubeconfig = _kubeconfig(tmp_path)
    name, args = _first_failure(tmp_path, [
        "-i", "inventories/aws/dev/hosts.yml", "playbooks/cluster_baseline.yml",
        "-e", "llmops_cluster_baseline_steps=%s" % steps,
        "-e", "cluster_autoscaler_kubeconfig=%s" % kubeconfig, "-e", "cluster_autoscaler_kube_context=%s" % CONTEXT,
        "-e", "kube_bench_kubeconfig=%s" % kubeconfig, "-e", "kube_bench_kube_context=%s" % CONTEXT,
        "-e", "cluster_autoscaler_manifest_dir=%s" % (tmp_path / "ca"),
        "-e", "kube_bench_manifest_dir=%s" % (tmp_path / "kb"),
        "-e", "kube_bench_report_file=%s" % (tmp_path / "report.json")])
    assert name.endswith(task), name
    assert args["kubeconfig"] == GIVEN and args["context"] == CONTEXT
