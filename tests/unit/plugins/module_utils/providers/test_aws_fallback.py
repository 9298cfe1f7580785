"""The capacity fallback on AWS, end to end through gpu_cluster: real boto3 over HTTP to moto.

The test proxy (aws_backend.py) makes chosen node groups fail as EKS reports it (CREATE_FAILED with the
Auto Scaling launch failure in the health issue) by rules: a type out in some zones, out in the whole
region, out for spot only, the account's vCPU quota used up, or a group that stays CREATING. The Price
List answers come from aws_price_list.py (`price_list` fixture), so a pool with a fallback option is
walked in the plan's price order; its rates are test data.
"""
import pytest
from aws_backend import REGION

import aws_price_list
from ansible_collections.llmops.platform.plugins.modules import gpu_cluster


@pytest.fixture
def failures(aws_backend):
    """The proxy's launch-failure rules for one test, cleared after it."""
    yield aws_backend.proxy.launch_failures
    del aws_backend.proxy.launch_failures[:]


@pytest.fixture
def cluster(aws_backend, run_module):
    """gpu_cluster arguments for a cluster named after the test; the cluster is deleted afterwards."""
    names = []

    def args(name, pools, **extra):
        names.append(name)
        values = {"provider": "aws", "name": name, "region": REGION, "wait_timeout": 60,
                  "provider_options": aws_backend.provider_options(), "node_pools": pools}
        values.update(extra)
        return values
    yield args
    for name in names:
        run_module(gpu_cluster.main, {"provider": "aws", "name": name, "region": REGION, "state": "absent",
                                      "provider_options": aws_backend.provider_options()})


def trace(result):
    return [(a["instance_type"], a["capacity_type"], a["outcome"], a["code"]) for a in result["attempts"]]


def warned(result):
    """The warning texts of a result (ansible-core 2.19 returns them as WarningSummary dicts)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def group_of(aws_backend, cluster, pool):
    return aws_backend.client("eks").describe_nodegroup(clusterName=cluster, nodegroupName=pool)["nodegroup"]


def test_a_stockout_in_the_pools_zone_falls_back_to_the_next_type(aws_backend, run_module, cluster, failures):
    failures.append({"instance_type": "g6.xlarge", "zones": ["us-east-1a"]})
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "zones": ["us-east-1a"]}
    result = run_module(gpu_cluster.main, cluster("llmops-fb-zone", [pool]))
    assert result["changed"] and not result.failed, result
    assert trace(result) == [("g6.xlarge", "on_demand", "no_capacity", "InsufficientInstanceCapacity"),
                             ("g6.2xlarge", "on_demand", "created", None)]
    assert all(a["zones"] == ["us-east-1a"] for a in result["attempts"])
    # The play output: one warning per attempt that did not create the pool.
    # (ansible-core keeps warnings process-wide and once per text, so earlier runs' may be there too.)
    assert "node_pool/gpu: g6.xlarge on_demand in us-east-1a: no_capacity after %.1fs (InsufficientInstanceCapacity)" \
        % result["attempts"][0]["seconds"] in warned(result)
    assert not any("g6.2xlarge on_demand in us-east-1a" in w for w in warned(result)), "a created pool is no warning"


def test_a_stockout_in_one_zone_does_not_stop_a_pool_over_several(aws_backend, run_module, cluster, failures):
    # The node group's Auto Scaling group launches in the zones that have capacity: no fallback needed.
    failures.append({"instance_type": "g6.xlarge", "zones": ["us-east-1a"]})
    result = run_module(gpu_cluster.main, cluster("llmops-fb-zones", [{"name": "gpu", "gpu": {"type": "nvidia-l4"}}]))
    assert trace(result) == [("g6.xlarge", "on_demand", "created", None)], result
    assert result["attempts"][0]["zones"] == ["us-east-1a", "us-east-1b", "us-east-1c"]


def test_a_stockout_in_the_whole_region_follows_the_price_order(
        aws_backend, run_module, cluster, failures, price_list, monkeypatch):
    # Priced so g6.2xlarge is the cheaper: the fallback walks the plan's order, not the catalog's.
    monkeypatch.setitem(aws_price_list.RATES, ("g6.xlarge", REGION), "1.5000000000")
    failures.append({"instance_type": "g6.2xlarge"})
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "fallback": {"attempt_timeout": 600}}
    args = cluster("llmops-fb-region", [pool])
    before = len(aws_backend.proxy.requests)
    planned = run_module(gpu_cluster.main, args, check_mode=True)
    assert aws_backend.proxy.mutations(before) == [], "the plan of attempts is read, nothing is created"
    assert [(a["instance_type"], a["outcome"]) for a in planned["attempts"]][:3] == [
        ("g6.2xlarge", "planned"), ("g6.xlarge", "planned"), ("g6.4xlarge", "planned")]
    result = run_module(gpu_cluster.main, args)
    assert trace(result) == [("g6.2xlarge", "on_demand", "no_capacity", "InsufficientInstanceCapacity"),
                             ("g6.xlarge", "on_demand", "created", None)], result
    assert group_of(aws_backend, "llmops-fb-region", "gpu")["instanceTypes"] == ["g6.xlarge"]


def test_an_exhausted_vcpu_quota_skips_the_family_and_takes_another_gpu(
        aws_backend, run_module, cluster, failures, price_list):
    failures.append({"instance_type": "g6.xlarge", "code": "VcpuLimitExceeded"})
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "instance_types": ["g6.xlarge", "g6.2xlarge"],
            "fallback": {"gpu_types": ["nvidia-h100-80gb"]}}
    args = cluster("llmops-fb-quota", [pool])
    result = run_module(gpu_cluster.main, args)
    assert not result.failed, result
    assert trace(result) == [("g6.xlarge", "on_demand", "no_capacity", "VcpuLimitExceeded"),
                             ("g6.2xlarge", "on_demand", "skipped", "VcpuLimitExceeded"),
                             ("p5.4xlarge", "on_demand", "created", None)]
    assert "Running On-Demand G and VT instances quota is exhausted" in result["attempts"][0]["error"]
    assert [a["gpu_type"] for a in result["attempts"]] == ["nvidia-l4", "nvidia-l4", "nvidia-h100-80gb"]
    assert result["cluster"]["node_pools"]["gpu"]["gpu"] == {"type": "nvidia-h100-80gb", "count": 1}
    # The pool runs a GPU its fallback accepts: the next run sees no drift.
    again = run_module(gpu_cluster.main, args)
    assert again["changed"] is False and again["not_updatable"] == [], again


def test_spot_falls_back_to_on_demand(aws_backend, run_module, cluster, failures, price_list):
    failures.extend({"instance_type": t, "capacity_type": "SPOT"} for t in ("g6.xlarge", "g6.2xlarge"))
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "instance_types": ["g6.xlarge", "g6.2xlarge"],
            "capacity_type": "spot", "fallback": {"capacity_types": ["spot", "on_demand"]}}
    args = cluster("llmops-fb-spot", [pool])
    result = run_module(gpu_cluster.main, args)
    assert not result.failed, result
    assert [(a["capacity_type"], a["outcome"]) for a in result["attempts"]] == [
        ("spot", "no_capacity"), ("spot", "no_capacity"), ("on_demand", "created")]
    assert "Could not launch Spot Instances" in result["attempts"][0]["error"]
    assert group_of(aws_backend, "llmops-fb-spot", "gpu")["capacityType"] == "ON_DEMAND"
    assert any("created as on_demand (allowed by its fallback)" in e for e in result["events"])
    again = run_module(gpu_cluster.main, args)
    assert again["changed"] is False and again["not_updatable"] == [], again


def test_an_attempt_pending_past_attempt_timeout_is_abandoned(aws_backend, run_module, cluster, failures, price_list):
    failures.append({"instance_type": "g6.xlarge", "code": "Pending"})
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "instance_types": ["g6.xlarge", "g6.2xlarge"],
            "fallback": {"attempt_timeout": 3}}
    before = len(aws_backend.proxy.requests)
    result = run_module(gpu_cluster.main, cluster("llmops-fb-slow", [pool]))
    assert not result.failed, result
    assert trace(result) == [("g6.xlarge", "on_demand", "timed_out", "AttemptTimeout"),
                             ("g6.2xlarge", "on_demand", "created", None)]
    # The waiter polls every second up to the attempt's 3 s (poll_interval 1 in the test options).
    assert 2 <= result["attempts"][0]["seconds"] < 30 and "still CREATING" in result["attempts"][0]["error"]
    # The pending group was deleted before the next create (same name).
    writes = [m for m in aws_backend.proxy.mutations(before) if "/node-groups" in m[1]]
    assert [m[0] for m in writes] == ["POST", "DELETE", "POST"]
    assert group_of(aws_backend, "llmops-fb-slow", "gpu")["instanceTypes"] == ["g6.2xlarge"]


def test_every_candidate_missing_fails_with_the_trace(aws_backend, run_module, cluster, failures, price_list):
    failures.extend({"instance_type": t} for t in ("g6.xlarge", "g6.2xlarge"))
    pool = {"name": "gpu", "gpu": {"type": "nvidia-l4"}, "instance_types": ["g6.xlarge", "g6.2xlarge"],
            "fallback": {"attempt_timeout": 600}}
    result = run_module(gpu_cluster.main, cluster("llmops-fb-none", [pool]))
    assert result.failed and "no instance type for node pool gpu" in result["msg"]
    assert [a["outcome"] for a in result["attempts"]] == ["no_capacity", "no_capacity"]
    # (ansible-core keeps warnings process-wide and once per text, so earlier runs' may be there too.)
    for a in result["attempts"]:
        assert "node_pool/gpu: %s on_demand in us-east-1a,us-east-1b,us-east-1c: no_capacity after %.1fs " \
            "(InsufficientInstanceCapacity)" % (a["instance_type"], a["seconds"]) in warned(result)
