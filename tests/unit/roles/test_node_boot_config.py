"""node_boot_config renders each provider's node_config from the role defaults (real ansible-playbook run).

The sysctls given to GKE/AKS must be exactly what node_hardening writes to /etc/sysctl.d for the pool's
profile: checked against roles/node_hardening/templates/sysctl.conf.j2 rendered with the role's merge.
"""
import json
import pathlib
import subprocess
import sys

import jinja2
import pytest
import yaml

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec

ROOT = pathlib.Path(__file__).resolve().parents[3]
HARDENING = yaml.safe_load((ROOT / "roles" / "node_hardening" / "defaults" / "main.yml").read_text())
PLAY = [{"hosts": "localhost", "gather_facts": False,
         "vars": {"llmops_cluster": {"provider": "{{ provider }}", "name": "render", "node_pools": [
             {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-l4", "count": 1}},
             {"name": "monitoring", "count": 1}]}},
         "roles": ["llmops.platform.node_boot_config"],
         "tasks": [{"ansible.builtin.copy": {"content": "{{ node_boot_config_pools | to_json }}",
                                             "dest": "{{ out }}", "mode": "0600"}}]}]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    work = tmp_path_factory.mktemp("render")
    (work / "play.yml").write_text(yaml.safe_dump(PLAY))
    result = {}
    for provider in ("local", "aws", "gcp", "azure"):
        out = work / (provider + ".json")
        run = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(work / "play.yml"),
                              "-e", "provider=%s out=%s ansible_python_interpreter=%s" % (provider, out, sys.executable),
                              "-e", "node_boot_config_aws_bundle_s3_uri=s3://bucket/llmops/bundle.tar.gz",
                              "-e", "node_boot_config_aws_bundle_sha256=" + "ab" * 32],
                             capture_output=True, text=True, cwd=str(ROOT), check=False)
        assert run.returncode == 0, run.stdout[-3000:]
        result[provider] = {p["name"]: p for p in json.loads(out.read_text())}
    return result


def role_sysctl_file(profile):
    wanted = dict(HARDENING["node_hardening_sysctl"])
    wanted.update(HARDENING["node_hardening_sysctl_" + profile])
    wanted.update(HARDENING["node_hardening_sysctl_overrides"])
    template = jinja2.Template((ROOT / "roles" / "node_hardening" / "templates" / "sysctl.conf.j2").read_text())
    text = template.render(__node_hardening_sysctl_wanted=wanted, node_hardening_profile=profile, ansible_managed="x")
    return dict(line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("provider", ["gcp", "azure"])
@pytest.mark.parametrize("pool, profile", [("gpu", "kubernetes_node"), ("monitoring", "standalone")])
def test_sysctls_are_what_the_role_writes(rendered, provider, pool, profile):
    config = rendered[provider][pool]["node_config"]
    assert config["sysctls"] == role_sysctl_file(profile)
    assert config["kubelet"] == HARDENING["node_hardening_kubelet"]
    assert config["kubelet"]["readOnlyPort"] == 0 and config["secure_boot"] is True
    # What gpu_cluster gets parses cleanly, unchanged.
    assert parse_cluster_spec({"name": "c", "node_pools": [rendered[provider][pool]]}).node_pools[0].node_config == config


def test_lab_user_data_runs_the_same_role_at_first_boot(rendered):
    for pool, profile, roles in (("gpu", "kubernetes_node", ["llmops.platform.node_hardening", "llmops.platform.nvidia_gpu"]),
                                 ("monitoring", "standalone", ["llmops.platform.node_hardening"])):
        user_data = rendered["local"][pool]["node_config"]["user_data"]
        assert user_data.startswith("#cloud-config\n")
        doc = yaml.safe_load(user_data)
        assert doc["locale"] is False and doc["users"] == []
        files = {f["path"]: f["content"] for f in doc["write_files"]}
        assert json.loads(files["/etc/llmops/boot/vars.json"]) == {"node_hardening_profile": profile}
        assert yaml.safe_load(files["/etc/llmops/boot/node.yml"])[0]["roles"] == roles
        groups = yaml.safe_load(files["/etc/llmops/boot/inventory.yml"])
        assert ("llmops_gpu_nodes" in groups) == (pool == "gpu") and "llmops_nodes" in groups
        assert doc["runcmd"][0][-1] == "/etc/llmops/boot/node.yml"
        assert sorted(rendered["local"][pool]["node_config"]) == ["user_data"]


def test_eks_user_data_is_mime_with_nodeadm_and_the_role(rendered):
    import email
    user_data = rendered["aws"]["gpu"]["node_config"]["user_data"]
    message = email.message_from_string(user_data)
    assert message.is_multipart()
    parts = {p.get_content_type(): p.get_payload() for p in message.get_payload()}
    nodeconfig = yaml.safe_load(parts["application/node.eks.aws"])
    assert nodeconfig["kind"] == "NodeConfig" and nodeconfig["apiVersion"] == "node.eks.aws/v1alpha1"
    assert nodeconfig["spec"]["kubelet"]["config"] == HARDENING["node_hardening_kubelet"]
    cloud = yaml.safe_load(parts["text/cloud-config"])
    assert cloud["runcmd"] == [["sh", "/etc/llmops/boot/first-boot.sh"]]
    files = {f["path"]: f for f in cloud["write_files"]}
    script = files["/etc/llmops/boot/first-boot.sh"]["content"]
    assert files["/etc/llmops/boot/first-boot.sh"]["permissions"] == "0700"
    # Verified before it is extracted; the playbook runs last and its output goes to the boot log.
    assert script.index("s3://bucket/llmops/bundle.tar.gz") < script.index("sha256sum -c") < script.index("tar -xzf")
    assert ("ab" * 32 + "  /opt/llmops/bundle.tar.gz") in script and "LOG=/var/log/llmops-boot.log" in script
    assert script.rstrip().splitlines()[-3].endswith("/etc/llmops/boot/node.yml")
    # Fail closed: kubelet waits for the marker the script writes only after the playbook succeeded.
    dropin = files["/etc/systemd/system/kubelet.service.d/90-llmops-boot.conf"]["content"]
    assert "ConditionPathExists=/var/lib/llmops/boot-ok" in dropin
    assert script.index("node.yml") < script.index("touch /var/lib/llmops/boot-ok")
