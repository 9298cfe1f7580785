"""The aws provider end to end against moto in server mode (real boto3 over HTTP on loopback).

Scenarios run through the real modules: create, second run unchanged, scale, capacity fallback,
delete; then bad input, kubeconfig and capacity questions.
"""
import base64
import json
import os
import pathlib
import stat
import subprocess
import sys

import pytest
from aws_backend import validate_request
from recap import changed_per_host

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
    # The attempt trace: the cloud's answer for the first type, then the type that was created.
    assert [(a["pool"], a["instance_type"], a["outcome"], a["code"]) for a in result["attempts"]] == [
        ("gpu", "g6.xlarge", "no_capacity", "InsufficientInstanceCapacity"), ("gpu", "g6.2xlarge", "created", None)]
    assert "InsufficientInstanceCapacity" in result["attempts"][0]["error"]
    assert all(a["seconds"] > 0 and a["zones"] for a in result["attempts"])
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


def test_gpu_capacity_lists_zones_and_quota(aws_backend, run_module, price_list):
    aws_backend.proxy.quotas["L-DB2E81BA"] = 64.0
    result = run_module(gpu_capacity_info.main, {
        "provider": "aws", "region": "us-east-1", "gpu": {"type": "nvidia-l4", "count": 1},
        "regions": ["us-east-1", "eu-west-1"], "provider_options": aws_backend.provider_options()})
    assert not result.failed, result
    offers = result["offers"]
    assert offers and {o["region"] for o in offers} == {"us-east-1"}
    assert {o["instance_type"] for o in offers} >= {"g6.xlarge"}
    assert all(o["zones"] and all(z.startswith("us-east-1") for z in o["zones"]) and o["gpus_per_node"] == 1
               for o in offers)
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
    # EKS managed node group instances are listed for reports only: no group a play logs in to holds them.

    def hosts(group):
        return inventory.get(group, {}).get("hosts", [])
    gpu_nodes = hosts("llmops_managed_gpu_nodes")
    assert len(gpu_nodes) == 2 and len(hosts("llmops_managed_nodes")) == 3
    for group in ("llmops_nodes", "llmops_gpu_nodes", "llmops_monitoring", "llmops_bastion", "llmops_logging"):
        assert not set(hosts(group)) & set(hosts("llmops_managed_nodes")), group
    assert hosts("llmops_logging") == [logging_vm["PrivateDnsName"]]
    assert logging_vm["PrivateDnsName"] not in hosts("llmops_managed_nodes") + hosts("llmops_nodes")
    ec2.terminate_instances(InstanceIds=[logging_vm["InstanceId"]])
    # ansible-inventory marks values from the cloud as unsafe ({"__ansible_unsafe": value}).
    hostvars = dict((k, v.get("__ansible_unsafe", v) if isinstance(v, dict) else v)
                    for k, v in inventory["_meta"]["hostvars"][gpu_nodes[0]].items())
    assert hostvars["llmops_node_pool"] == "gpu" and hostvars["llmops_node_gpu_type"] == "nvidia-l4"
    assert hostvars["llmops_cluster_name"] == "llmops-dev"
    run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-dev", "region": "us-east-1", "state": "absent",
                                  "provider_options": aws_backend.provider_options()})


ADMIN = "arn:aws:iam::123456789012:role/platform-admins"


def ours(tags):
    tags = dict((t["Key"], t["Value"]) for t in tags or [])
    return tags.get("llmops.io/foundation") == "llmops-dev" and tags.get("llmops.io/managed-by") == "llmops.platform"


def leftovers(backend):
    """Everything of ours (tagged llmops.io/foundation=llmops-dev) still in the account."""
    ec2, iam = backend.client("ec2"), backend.client("iam")
    found = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if ours(v.get("Tags"))],
        "subnets": [x["SubnetId"] for x in ec2.describe_subnets()["Subnets"] if ours(x.get("Tags"))],
        "nat_gateways": [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                         if n["State"] not in ("deleted", "deleting")],
        "eips": [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]],
        "igws": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"] if ours(g.get("Tags"))],
        "route_tables": [r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"] if ours(r.get("Tags"))],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("llmops-dev-")],
        "oidc_providers": [o["Arn"] for o in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]],
        "launch_templates": [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]
                             if t["LaunchTemplateName"].startswith("llmops-dev-")],
    }
    return dict((k, v) for k, v in found.items() if v)


def test_fresh_account_foundations_provision_rerun_teardown(aws_backend):
    """inventories/aws/dev end to end on moto: fresh account -> foundations -> cluster and GPU node group
    -> foundations again (the cluster's identity) -> both again with changed=0 -> teardown -> nothing of
    ours left, and what was there before (the backend's own VPC) untouched."""
    root = pathlib.Path(__file__).resolve().parents[5]
    env = dict(os.environ, AWS_ENDPOINT_URL=aws_backend.proxy.url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    extra = json.dumps({"llmops_foundation": {"create": True, "zones": ["us-east-1a", "us-east-1b"],
                                              "admin_principals": [{"principal_arn": ADMIN}]}})
    brought = set(v["VpcId"] for v in aws_backend.ec2.describe_vpcs()["Vpcs"])
    assert leftovers(aws_backend) == {}, "the account must start without anything of ours"

    def playbook(name, *args):
        # Nodes live only in moto, so plays that log in to them are limited away.
        return subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(root / "inventories/aws/dev"),
                               str(root / "playbooks" / name), "--limit", "llmops_controller", "-e", extra] + list(args),
                              env=env, capture_output=True, text=True, cwd=str(root), check=False)

    def changed(run):
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
        return changed_per_host(run.stdout)["localhost"]

    # The foundations also give the node role read access to the first-boot bundle's prefix (only there: a
    # bucket set for provision.yml would build and upload the bundle, which test_node_boot_bundle.py covers).
    bundle = json.dumps({"llmops_boot_bundle": {"bucket": "llmops-dev-boot", "prefix": "boot"}})

    def foundations(*args):
        return playbook("foundations.yml", "-e", bundle, *args)

    check = foundations("--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert leftovers(aws_backend) == {}, "check mode must not create anything"

    assert changed(foundations()) > 0
    ec2, iam, eks = aws_backend.client("ec2"), aws_backend.client("iam"), aws_backend.client("eks")
    made = leftovers(aws_backend)
    assert len(made["vpcs"]) == 1 and len(made["subnets"]) == 4 and len(made["nat_gateways"]) == 1
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": made["vpcs"]}])["Subnets"]
    tags = [dict((t["Key"], t["Value"]) for t in x["Tags"]) for x in subnets]
    assert sorted(x["AvailabilityZone"] for x in subnets) == ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]
    assert sum(1 for t in tags if t.get("kubernetes.io/role/elb") == "1") == 2
    assert sum(1 for t in tags if t.get("kubernetes.io/role/internal-elb") == "1") == 2
    assert all(t["kubernetes.io/cluster/llmops-dev"] == "shared" for t in tags)
    # Private subnets route 0.0.0.0/0 through the NAT gateway, public ones through the internet gateway.
    routes = dict((a["SubnetId"], r["Routes"]) for r in ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": made["vpcs"]}])["RouteTables"] for a in r.get("Associations", []) if a.get("SubnetId"))
    for subnet, t in zip(subnets, tags):
        default = [x for x in routes[subnet["SubnetId"]] if x.get("DestinationCidrBlock") == "0.0.0.0/0"][0]
        assert ("NatGatewayId" in default) == (t["llmops.io/tier"] == "private"), (t, default)
    attached = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="llmops-dev-eks-node")["AttachedPolicies"]]
    assert {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"} <= set(attached)
    read = iam.get_role_policy(RoleName="llmops-dev-eks-node", PolicyName="llmops-boot-bundle")["PolicyDocument"]
    assert read["Statement"] == [{"Sid": "ReadBootBundle", "Effect": "Allow", "Action": "s3:GetObject",
                                  "Resource": "arn:aws:s3:::llmops-dev-boot/boot/*"}]

    assert changed(playbook("provision.yml")) == 1
    assert sorted(eks.list_nodegroups(clusterName="llmops-dev")["nodegroups"]) == ["gpu", "system"]
    cluster = eks.describe_cluster(name="llmops-dev")["cluster"]
    assert sorted(cluster["resourcesVpcConfig"]["subnetIds"]) == sorted(
        s["SubnetId"] for s, t in zip(subnets, tags) if t["llmops.io/tier"] == "private")
    assert cluster["roleArn"].endswith(":role/llmops-dev-eks-cluster")

    assert changed(foundations()) > 0  # now the cluster exists: its identity
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert len(providers) == 1 and providers[0]["Arn"].endswith(cluster["identity"]["oidc"]["issuer"].split("://")[1])
    entries = aws_backend.proxy.access_entries["llmops-dev"]
    assert list(entries) == [ADMIN]
    assert entries[ADMIN]["policies"] == {
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy": {"type": "cluster"}}
    trust = iam.get_role(RoleName="llmops-dev-cluster-autoscaler")["Role"]["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"]["Federated"] == providers[0]["Arn"]
    assert list(statement["Condition"]["StringEquals"].values())[0] in (
        "system:serviceaccount:kube-system:cluster-autoscaler", "sts.amazonaws.com")
    policy = iam.get_role_policy(RoleName="llmops-dev-cluster-autoscaler", PolicyName="cluster-autoscaler")["PolicyDocument"]
    scale = [x for x in policy["Statement"] if "autoscaling:SetDesiredCapacity" in x["Action"]][0]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/llmops-dev": "owned"}}

    assert changed(foundations()) == 0
    assert changed(playbook("provision.yml")) == 0

    # Every EKS request the code sent (create_cluster, node groups, access entries) fits botocore's model.
    assert aws_backend.proxy.invalid == []
    created = [b for m, p, b in aws_backend.proxy.bodies if p == "/clusters" and b.get("name") == "llmops-dev"][0]
    assert validate_request("CreateCluster", created) == ""
    assert created["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"

    changed(playbook("teardown.yml"))
    assert "llmops-dev" not in eks.list_clusters()["clusters"]
    assert leftovers(aws_backend) == {}
    assert brought <= set(v["VpcId"] for v in aws_backend.ec2.describe_vpcs()["Vpcs"]), "a brought VPC was deleted"
    assert changed(playbook("teardown.yml")) == 0


def test_user_data_goes_into_a_launch_template_and_changes_roll_out(aws_backend, run_module):
    pool = dict(GPU_POOL, node_config={"user_data": "#cloud-config\nruncmd: [echo one]\n", "sysctls": {"kernel.kptr_restrict": "2"}})
    args = cluster_args(aws_backend, "llmops-aws-lt", [pool])
    created = run_module(gpu_cluster.main, args)
    assert created["changed"], created
    ec2, eks = aws_backend.client("ec2"), aws_backend.client("eks")
    template = ec2.describe_launch_templates(LaunchTemplateNames=["llmops-aws-lt-gpu"])["LaunchTemplates"][0]
    tags = dict((t["Key"], t["Value"]) for t in template["Tags"])
    assert tags["llmops.io/managed-by"] == "llmops.platform" and tags["llmops.io/node-pool"] == "gpu"
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"])
    data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert base64.b64decode(data["UserData"]).decode() == pool["node_config"]["user_data"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 100 and data["MetadataOptions"]["HttpTokens"] == "required"
    group = eks.describe_nodegroup(clusterName="llmops-aws-lt", nodegroupName="gpu")["nodegroup"]
    assert group["launchTemplate"]["id"] == template["LaunchTemplateId"]
    sent = [b for m, p, b in aws_backend.proxy.bodies if p.endswith("/clusters/llmops-aws-lt/node-groups")][0]
    assert validate_request("CreateNodegroup", dict(sent, clusterName="llmops-aws-lt")) == ""
    assert "diskSize" not in sent and sent["launchTemplate"] == {"id": template["LaunchTemplateId"], "version": "1"}
    assert any("sysctls" in e for e in created["events"])

    assert run_module(gpu_cluster.main, args)["changed"] is False  # disk in the template is not drift

    changed_pool = dict(pool, node_config=dict(pool["node_config"], user_data="#cloud-config\nruncmd: [echo two]\n"))
    planned = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-lt", [changed_pool]), check_mode=True)
    assert planned["changed"] and "node_config" in planned["actions"][0]
    rolled = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-lt", [changed_pool]))
    assert rolled["changed"] and any("rolling out launch template" in e for e in rolled["events"]), rolled
    update = [b for m, p, b in aws_backend.proxy.bodies if p.endswith("/node-groups/gpu/update-version")]
    assert [u["launchTemplate"] for u in update] == [{"id": template["LaunchTemplateId"], "version": "2"}]
    assert aws_backend.proxy.invalid == []
    assert run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-lt", [changed_pool]))["changed"] is False

    gone = run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-lt", "region": "us-east-1",
                                         "state": "absent", "provider_options": aws_backend.provider_options()})
    assert gone["changed"] and not gone.failed, gone
    assert [t for t in ec2.describe_launch_templates()["LaunchTemplates"] if t["LaunchTemplateName"] == "llmops-aws-lt-gpu"] == []


def test_node_group_still_creating_is_a_timeout_not_a_capacity_failure(aws_backend, run_module):
    aws_backend.proxy.stay_creating.add("slow")
    try:
        pool = {"name": "slow", "count": 1, "gpu": {"type": "nvidia-l4"}}
        result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-slow", [pool], wait_timeout=3))
    finally:
        aws_backend.proxy.stay_creating.discard("slow")
    assert result.failed
    assert "node group slow" in result["msg"] and "still CREATING" in result["msg"], result["msg"]
    assert "not a capacity failure" in result["msg"] and "no instance type" not in result["msg"]
    # The group was left to finish, not deleted as a capacity fallback would.
    assert aws_backend.client("eks").list_nodegroups(clusterName="llmops-aws-slow")["nodegroups"] == ["slow"]
    run_module(gpu_cluster.main, {"provider": "aws", "name": "llmops-aws-slow", "region": "us-east-1", "state": "absent",
                                  "provider_options": aws_backend.provider_options()})


def test_aws_default_wait_timeout_is_above_eks_create_and_stockout_times():
    from ansible_collections.llmops.platform.plugins.module_utils.providers.aws import AwsProvider

    assert AwsProvider.default_wait_timeout >= 30 * 60  # EKS create 10-15 min; stockout reported after ~20 min


@pytest.mark.parametrize("args", [
    {"provider": "aws", "gpu": {"type": "nvidia-l4"}},
    {"provider": "aws", "gpu": {"type": "nvidia-l4"}, "regions": []},
])
def test_gpu_capacity_without_region_names_region(aws_backend, run_module, args):
    args = dict(args, provider_options=aws_backend.provider_options())
    result = run_module(gpu_capacity_info.main, args)
    assert result.failed and result["msg"].startswith("region: is required"), result["msg"]
    assert "Traceback" not in result["msg"] and "botocore" not in result["msg"]


@pytest.mark.parametrize("options, field", [
    ({"authentication_mode": "TOKEN"}, "provider_options.authentication_mode"),
    ({"foundation": "llmops-nothing", "subnet_ids": None}, "provider_options.foundation"),
])
def test_bad_aws_options_name_the_field(aws_backend, run_module, options, field):
    provider_options = aws_backend.provider_options(**options)
    result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-bad", [SYSTEM_POOL],
                                                       provider_options=provider_options))
    assert result.failed and result["msg"].startswith(field), result["msg"]


def test_user_data_over_the_ec2_limit_names_the_field(aws_backend, run_module):
    pool = dict(SYSTEM_POOL, node_config={"user_data": "#!/bin/sh\n" + "x" * 20000})
    result = run_module(gpu_cluster.main, cluster_args(aws_backend, "llmops-aws-bad", [pool]))
    assert result.failed and result["msg"].startswith("node_pools[0].node_config.user_data"), result["msg"]


def test_access_entry_requests_are_checked_against_the_eks_model():
    """The proxy's validator refuses what the real API would: proven once by a misspelled field."""
    good = {"clusterName": "c", "principalArn": ADMIN, "policyArn": "arn:aws:eks::aws:cluster-access-policy/X",
            "accessScope": {"type": "cluster"}}
    assert validate_request("AssociateAccessPolicy", good) == ""
    assert "accesScope" in validate_request("AssociateAccessPolicy", dict(
        (("accesScope" if k == "accessScope" else k), v) for k, v in good.items()))
    assert "type" in validate_request("CreateAccessEntry", {"clusterName": "c", "principalArn": ADMIN, "type": 3})
