"""Credentials given to our modules never show: not in results, invocations, errors or logs.

Runs the modules the way a user (or AWX) does, through ansible-playbook at -vvv, which prints each
result with its `invocation.module_args`, and greps the whole output for every secret. AWX job events
store the same result objects, so this is also what an AWX event would hold.
"""
import json
import os
import pathlib
import subprocess
import sys
import uuid

from ansible_collections.llmops.platform.plugins.module_utils import entrypoint

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _secret(name):
    return "%s-%s" % (name, uuid.uuid4().hex)


def test_credential_keys_are_recognised_as_whole_words():
    options = {"secret_key": "a1", "client_secret": "a2", "access_token": "a3", "sas_token": "a4",
               "session_token": "a5", "service_account_info": {"private_key": "a6"}, "password": "a7",
               "max_tokens": "8", "gpu_ami_type": "AL2023_x86_64_NVIDIA", "token_count": "9",
               "access_key": "AKIAEXAMPLE", "profile": "prod", "nested": [{"api_key": "a8"}],
               "empty_secret": "", "client_id": "11111111-2222"}
    assert entrypoint.credential_values({"provider_options": options}) == {"a%d" % i for i in range(1, 9)}


def test_provider_credentials_never_appear_at_vvv(aws_backend, tmp_path):
    secrets = {name: _secret(name) for name in ("awssecret", "awssession", "gcptoken", "azuresecret", "costsecret",
                                                "plansecret")}
    tasks = [
        {"name": "AWS, a real call to the (moto) API with the credentials",
         "llmops.platform.gpu_cluster_info": {
             "provider": "aws", "name": "llmops-absent", "region": "us-east-1",
             "provider_options": {"endpoint_url": aws_backend.proxy.url, "access_key": "testing",
                                  "secret_key": secrets["awssecret"], "session_token": secrets["awssession"]}}},
        {"name": "GCP, failing on bad input (no region) after the credentials were parsed",
         "llmops.platform.gpu_cluster": {
             "provider": "gcp", "name": "llmops-masked",
             "provider_options": {"project": "p", "access_token": secrets["gcptoken"]}},
         "ignore_errors": True},
        {"name": "Azure, same",
         "llmops.platform.gpu_cluster": {
             "provider": "azure", "name": "llmops-masked",
             "provider_options": {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg",
                                  "client_id": "id", "tenant_id": "t", "client_secret": secrets["azuresecret"]}},
         "ignore_errors": True},
        {"name": "The cost of a cluster, a real (moto) call with the credentials",
         "llmops.platform.cluster_cost_info": {
             "provider": "aws", "name": "llmops-absent", "region": "us-east-1",
             "provider_options": {"endpoint_url": aws_backend.proxy.url, "access_key": "testing",
                                  "secret_key": secrets["costsecret"]}}},
        {"name": "A capacity plan over two clouds, failing on bad input after the second cloud's credentials were parsed",
         "llmops.platform.gpu_capacity_info": {
             "provider": "aws", "region": "us-east-1", "gpu": {"type": "nvidia-no-such-gpu"},
             "provider_options": {"endpoint_url": aws_backend.proxy.url, "access_key": "testing", "secret_key": "x"},
             "clouds": [{"provider": "gcp", "provider_options": {"project": "p", "access_token": secrets["plansecret"]}}]},
         "ignore_errors": True},
    ]
    playbook = tmp_path / "masked.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-vvv", "-i", "localhost,", "-c", "local",
                          "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)],
                         env=env, capture_output=True, text=True, cwd=str(ROOT), check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    # The invocations were printed (so the grep below can fail) ...
    assert output.count('module_args') >= 3, output[-4000:]
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    # ... the bad input was reported as such, and no secret is anywhere in the output.
    assert "region: is required by the gcp provider" in output and "region: is required by the azure provider" in output
    assert "gpu.type: unknown GPU type" in output
    for name, secret in secrets.items():
        assert secret not in output, "%s leaked into the -vvv output" % name


def test_journal_log_of_the_invocation_is_masked(run_module, monkeypatch):
    """AnsibleModule logs each invocation to the journal/syslog before running; nested secrets are masked there too."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible_collections.llmops.platform.plugins.modules import gpu_cluster_info

    logged = []
    monkeypatch.setattr(AnsibleModule, "log", lambda self, msg, log_args=None: logged.append((msg, log_args)))
    secret = _secret("journal")
    result = run_module(gpu_cluster_info.main, {"provider": "gcp", "name": "x",
                                                "provider_options": {"access_token": secret}})
    assert result.failed and "project" in result["msg"]
    assert logged and "provider_options" in logged[0][0]
    assert secret not in json.dumps(logged) and secret not in json.dumps(result)
