"""playbooks/provision.yml's GPU node count override (AWX survey "GPU node count", llmops_gpu_node_count),
run for real: the playbook (node_boot_config, the override, gpu_cluster) against the aws provider on moto,
and the resulting EKS node group's scaling config read back with boto3.

The documented effect on a bounded pool (docs/autoscaling.md): N becomes the floor, the maximum is raised
to N where needed, and the pool has N nodes now. Without the override the inventory's bounds come back.
"""
import json
import os
import pathlib
import subprocess
import sys

import yaml
from recap import changed_per_host

ROOT = pathlib.Path(__file__).resolve().parents[5]
CLUSTER = "llmops-count"


def _inventory(tmp_path, backend):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text((ROOT / "inventories/aws/dev/hosts.yml").read_text())
    cluster = {"provider": "aws", "name": CLUSTER, "region": "us-east-1", "wait_timeout": 120,
               "provider_options": backend.provider_options(),
               "node_pools": [{"name": "system", "count": 1, "instance_types": ["m7i.large"]},
                              {"name": "gpu", "count": 1, "min_count": 0, "max_count": 2,
                               "gpu": {"type": "nvidia-l4", "count": 1}}]}
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"llmops_environment": "dev",
                                                                      "llmops_cluster": cluster}))
    return inventory


def _provision(inventory, backend, *extra):
    env = dict(os.environ, AWS_ENDPOINT_URL=backend.proxy.url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory), str(ROOT / "playbooks/provision.yml")]
    for value in extra:
        cmd += ["-e", value]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT), check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def _scaling(backend, pool):
    return backend.client("eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName=pool)["nodegroup"]["scalingConfig"]


def test_override_sets_the_floor_of_a_bounded_gpu_pool_and_can_be_undone(aws_backend, tmp_path):
    inventory = _inventory(tmp_path, aws_backend)
    try:
        _provision(inventory, aws_backend)
        assert _scaling(aws_backend, "gpu") == {"minSize": 0, "maxSize": 2, "desiredSize": 1}

        # Inside the bounds: a count alone would be left to the autoscaler; the override makes it the floor.
        _provision(inventory, aws_backend, json.dumps({"llmops_gpu_node_count": 2}))
        assert _scaling(aws_backend, "gpu") == {"minSize": 2, "maxSize": 2, "desiredSize": 2}
        assert _scaling(aws_backend, "system") == {"minSize": 1, "maxSize": 1, "desiredSize": 1}

        # Above the bounds: the maximum follows.
        out = _provision(inventory, aws_backend, "llmops_gpu_node_count=4")
        assert _scaling(aws_backend, "gpu") == {"minSize": 4, "maxSize": 4, "desiredSize": 4}
        assert changed_per_host(out) == {"localhost": 1}

        # The same answer again changes nothing.
        again = _provision(inventory, aws_backend, "llmops_gpu_node_count=4")
        assert changed_per_host(again) == {"localhost": 0}, again[-2000:]

        # Empty (the survey left blank): the inventory's bounds and count are back.
        _provision(inventory, aws_backend, "llmops_gpu_node_count=")
        assert _scaling(aws_backend, "gpu") == {"minSize": 0, "maxSize": 2, "desiredSize": 1}
    finally:
        _teardown(aws_backend)  # the moto backend is shared by the session


def _teardown(backend):
    eks = backend.client("eks")
    if CLUSTER not in eks.list_clusters()["clusters"]:
        return
    for group in eks.list_nodegroups(clusterName=CLUSTER)["nodegroups"]:
        eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=group)
    eks.delete_cluster(name=CLUSTER)
