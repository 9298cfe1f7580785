"""The aws provider end to end against moto in server mode (real boto3 over HTTP on loopback).

Scenarios run through the real modules: create, second run unchanged, scale, capacity fallback,
delete; then bad input, kubeconfig and capacity questions.
"""
import json
import os
import pathlib
import stat
import subprocess
import sys

import pytest

from ansible_collections.llmops.platform.plugins.modules import gpu_capacity_info, gpu_cluster, gpu_cluster_info


def cluster_args(backend, name, pools, **extra):
    args = {"provider": "aws", "name": name, "region": "us-east-1", "wait_timeout": 60,
            "provider_options": backend.provider_options(), "node_pools": pools}
    args.update(extra)
    return args


GPU_POOL = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-t4", "count": 1},
            "labels": {"llmops.io/role": "gpu"}, "taints": [{"key": "nvidia.com/gpu", "value": "present"}],
            "capacity_type": "spot", "disk_size_gb": 100}
SYSTEM_POOL = {"name": "system", "count": 1, "instance_types": ["m7i.large"]}


def test_create_rerun_scale_delete(aws_backend, run_module, tmp_path):
    kubeconfig = str(tmp_path / "kubeconfig")
    args = cluster_args(aws_backend, "llmops-aws-a", [SYSTEM_POOL, GPU_POOL], kubernetes_version="1.31",
                        kubeconfig=kubeconfig)

    before = len(aws_backend.proxy.requests)
    planned = run_module(gpu_cluster.main, args, check_mode=True)
    assert planned["changed"] and planned["actions"] == [
        "create_cluster cluster/llmops-aws-a", "create_node_pool node_pool/system", "create_node_pool node_pool/gpu"]
    assert aws_backend.proxy.requests[before:], "check mode reads the current state"
    assert aws_backend.proxy.mutations(before) == [], "check mode must not change anything"

    created = run_module(gpu_cluster.main, args)
    assert created["changed"], created
    gpu = created["cluster"]["node_pools"]["gpu"]
    assert gpu["instance_types"] == ["g4dn.xlarge"] and gpu["gpu"] == {"type": "nvidia-t4", "count": 1}
    assert gpu["capacity_type"] == "spot" and gpu["disk_size_gb"] == 100
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert created["cluster"]["kubernetes_version"] == "1.31"
    assert created["kubeconfig"] == kubeconfig
    assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
    with open(kubeconfig) as handle:
        text = handle.read()
    assert '"get-token"' in text and created["cluster"]["endpoint"] in text

    again = run_module(gpu_cluster.main, args)
    assert again["changed"] is False and again["actions"] == [], again

    scaled_pool = dict(GPU_POOL, count=3, labels={"llmops.io/role": "gpu", "tier": "a"})
    scaled = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-a", [SYSTEM_POOL, scaled_pool]))
    assert scaled["changed"]
    assert scaled["cluster"]["node_pools"]["gpu"]["count"] == 3
    assert scaled["cluster"]["node_pools"]["gpu"]["max_count"] == 3
    assert scaled["cluster"]["node_pools"]["gpu"]["labels"] == {"llmops.io/role": "gpu", "tier": "a"}

    aws_backend.sync_nodes("llmops-aws-a")
    info = run_module(gpu_cluster_info.main, {"provider": "aws", "name": "llmops-aws-a", "region": "us-east-1",
                                              "provider_options": aws_backend.provider_options()})
    assert sorted(n["pool"] for n in info["nodes"]) == ["gpu", "gpu", "gpu", "system"]

    immutable = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-a",
                                                          [SYSTEM_POOL, dict(scaled_pool, capacity_type="on_demand")]))
    assert immutable["changed"] is False
    assert "capacity_type" in immutable["not_updatable"][0]

    gone = run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-a", "region": "us-east-1",
                                         "state": "absent", "provider_options": aws_backend.provider_options()})
    assert gone["changed"] and gone["actions"] == ["delete_node_pool node_pool/gpu", "delete_node_pool node_pool/system",
                                                   "delete_cluster cluster/llmops-aws-a"]
    assert gone["cluster"] == {}
    again = run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-a", "region": "us-east-1",
                                          "state": "absent", "provider_options": aws_backend.provider_options()})
    assert again["changed"] is False


def test_capacity_fallback_takes_the_next_instance_type(aws_backend, run_module):
    aws_backend.proxy.no_capacity.add("g6.xlarge")
    try:
        pool = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-l4"}}
        result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-b", [pool]))
    finally:
        aws_backend.proxy.no_capacity.discard("g6.xlarge")
    assert result["changed"], result
    assert result["cluster"]["node_pools"]["gpu"]["instance_types"] == ["g6.2xlarge"]
    assert len(result["events"]) == 1
    assert "g6.xlarge had no capacity" in result["events"][0] and "InsufficientInstanceCapacity" in result["events"][0]
    assert result["events"][0].endswith("using g6.2xlarge")
    # The catalog lists g6.xlarge first, but the pool runs a candidate: no drift on the next run.
    assert run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-b", [pool]))["changed"] is False
    run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-b", "region": "us-east-1", "state": "absent",
                                  "provider_options": aws_backend.provider_options()})


def test_capacity_exhausted_everywhere_fails_clearly(aws_backend, run_module):
    aws_backend.proxy.no_capacity.update(["p4d.24xlarge"])
    try:
        pool = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-a100-40gb", "count": 8}}
        result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-c", [pool]))
    finally:
        aws_backend.proxy.no_capacity.discard("p4d.24xlarge")
    assert result.failed
    assert "no instance type for node pool gpu" in result["msg"] and "InsufficientInstanceCapacity" in result["msg"]
    assert "gpu_capacity_info" in result["msg"]
    run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-c", "region": "us-east-1", "state": "absent",
                                  "provider_options": aws_backend.provider_options()})


@pytest.mark.parametrize("pool, region, field, words", [
    ({"name": "gpu", "gpu": {"type": "nvidia-b300"}}, "us-east-1", "node_pools[0].gpu.type", "unknown GPU type"),
    ({"name": "gpu", "gpu": {"type": "nvidia-l4", "count": 3}}, "us-east-1", "node_pools[0].gpu.count", "1, 4, 8"),
    ({"name": "gpu", "count": 2, "min_count": 3, "max_count": 2}, "us-east-1", "node_pools[0].min_count", "greater"),
    ({"name": "gpu", "gpu": {"type": "nvidia-l4"}}, "eu-west-1", "node_pools[0].gpu.type", "not offered in eu-west-1"),
    ({"name": "gpu", "gpu": {"type": "nvidia-t4"}, "instance_types": ["g6.xlarge"]}, "us-east-1",
     "node_pools[0].instance_types[0]", "does not carry"),
])
def test_bad_input_names_the_field(aws_backend, run_module, pool, region, field, words):
    before = len(aws_backend.proxy.requests)
    result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-bad", [pool], region=region))
    assert result.failed and result["msg"].startswith(field), result["msg"]
    assert words in result["msg"]
    assert aws_backend.proxy.mutations(before) == []


def test_missing_credentials_say_where_to_put_them(aws_backend, run_module, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = aws_backend.provider_options()
    del options["access_key"], options["secret_key"]
    result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-bad", [GPU_POOL], provider_options=options))
    assert result.failed
    assert "provider_options: no AWS credentials" in result["msg"] and "AWX" in result["msg"]


def test_missing_role_is_named(aws_backend, run_module):
    options = aws_backend.provider_options()
    del options["node_role_arn"]
    result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-bad", [GPU_POOL], provider_options=options))
    assert result.failed and result["msg"].startswith("provider_options.node_role_arn: is required")


def test_gpu_capacity_lists_zones_and_quota(aws_backend, run_module):
    aws_backend.proxy.quotas["L-DB2E81BA"] = 64.0
    result = run_module(gpu_capacity_info.main, {
        "provider": "aws", "region": "us-east-1", "gpu": {"type": "nvidia-l4", "count": 1},
        "regions": ["us-east-1", "eu-west-1"], "provider_options": aws_backend.provider_options()})
    assert not result.failed, result
    offers = result["offers"]
    assert offers and {o["region"] for o in offers} == {"us-east-1"}
    assert {o["instance_type"] for o in offers} >= {"g6.xlarge"}
    assert all(o["zone"].startswith("us-east-1") and o["gpus_per_node"] == 1 for o in offers)
    assert all(o["quota_limit"] == 64.0 and o["quota_unit"] == "vCPUs" for o in offers)
    assert result["regions_without_offers"] == ["eu-west-1"]


def test_dev_inventory_finds_the_nodes_the_provider_made(aws_backend, run_module):
    """inventories/aws/dev/aws_ec2.yml, run by ansible-inventory against the same moto backend."""
    pools = [{"name": "system", "count": 1, "instance_types": ["m7i.large"]},
             {"name": "gpu", "count": 2, "gpu": {"type": "nvidia-l4"}}]
    assert not run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-dev", pools)).failed
    aws_backend.sync_nodes("llmops-dev")
    # A logging VM beside the cluster (not an EKS node): found by its llmops:* tags, grouped apart.
    ec2 = aws_backend.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    logging_vm = ec2.run_instances(ImageId=image, InstanceType="m7i.xlarge", MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "llmops:cluster", "Value": "llmops-dev"},
                                              {"Key": "llmops:role", "Value": "logging"}]}])["Instances"][0]
    env = dict(os.environ, AWS_ENDPOINT_URL=aws_backend.proxy.url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    root = pathlib.Path(__file__).resolve().parents[5]
    out = subprocess.run([sys.executable, "-m", "ansible.cli.inventory", "-i", str(root / "inventories/aws/dev"), "--list"],
                         env=env, capture_output=True, text=True, check=True, cwd=str(root)).stdout
    inventory = json.loads(out)
    gpu_nodes = inventory["llmops_gpu_nodes"]["hosts"]
    assert len(gpu_nodes) == 2 and len(inventory["llmops_nodes"]["hosts"]) == 3
    assert inventory["llmops_monitoring"]["hosts"] == [h for h in inventory["llmops_nodes"]["hosts"] if h not in gpu_nodes]
    assert inventory["llmops_logging"]["hosts"] == [logging_vm["PrivateDnsName"]]
    assert logging_vm["PrivateDnsName"] not in inventory["llmops_nodes"]["hosts"]
    ec2.terminate_instances(InstanceIds=[logging_vm["InstanceId"]])
    # ansible-inventory marks values from the cloud as unsafe ({"__ansible_unsafe": value}).
    hostvars = dict((k, v.get("__ansible_unsafe", v) if isinstance(v, dict) else v)
                    for k, v in inventory["_meta"]["hostvars"][gpu_nodes[0]].items())
    assert hostvars["llmops_node_pool"] == "gpu" and hostvars["llmops_node_gpu_type"] == "nvidia-l4"
    assert hostvars["llmops_cluster_name"] == "llmops-dev" and hostvars["ansible_user"] == "ec2-user"
    run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-dev", "region": "us-east-1", "state": "absent",
                                  "provider_options": aws_backend.provider_options()})


def test_provision_and_teardown_playbooks_run_unchanged_on_aws(aws_backend):
    """The same playbooks as the local lab, on inventories/aws/dev, against moto."""
    root = pathlib.Path(__file__).resolve().parents[5]
    env = dict(os.environ, AWS_ENDPOINT_URL=aws_backend.proxy.url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    extra = json.dumps({"llmops_aws_subnet_ids": sorted(aws_backend.subnets)})

    def playbook(name):
        # Nodes live only in moto, so plays that log in to them are limited away.
        return subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(root / "inventories/aws/dev"),
                               str(root / "playbooks" / name), "--limit", "llmops_controller", "-e", extra],
                              env=env, capture_output=True, text=True, cwd=str(root), check=False)

    first = playbook("provision.yml")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "changed=1" in first.stdout
    second = playbook("provision.yml")
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout[-3000:]
    eks = aws_backend.client("eks")
    assert sorted(eks.list_nodegroups(clusterName="llmops-dev")["nodegroups"]) == ["gpu", "system"]
    down = playbook("teardown.yml")
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert "llmops-dev" not in eks.list_clusters()["clusters"]
