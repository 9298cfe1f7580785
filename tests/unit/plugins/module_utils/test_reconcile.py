"""The planner is pure: desired spec + reported state -> actions. No provider calls happen here."""
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterState, NodePoolState
from ansible_collections.llmops.platform.plugins.module_utils.providers.local import LocalPodmanProvider
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import plan_absent, plan_present

PROVIDER = LocalPodmanProvider()
SPEC = parse_cluster_spec({"name": "lab", "node_pools": [
    {"name": "gpu", "count": 2, "image": "img", "gpu": {"type": "nvidia-l4"}},
    {"name": "mon", "count": 1, "image": "img"},
]})


def state(**counts):
    pools = {}
    for name, count in counts.items():
        pools[name] = NodePoolState(name=name, status="running", count=count, image="img",
                                    gpu=GpuSpec("nvidia-l4", 1) if name == "gpu" else None)
    return ClusterState(name="lab", status="running", node_pools=pools)


def test_missing_cluster_creates_cluster_then_pools_in_order():
    plan = plan_present(SPEC, None, PROVIDER)
    assert plan.describe() == ["create_cluster cluster/lab", "create_node_pool node_pool/gpu",
                               "create_node_pool node_pool/mon"]


def test_matching_state_plans_nothing():
    plan = plan_present(SPEC, state(gpu=2, mon=1), PROVIDER)
    assert not plan.changed and plan.not_updatable == []


def test_scaling_is_an_in_place_update():
    plan = plan_present(SPEC, state(gpu=3, mon=1), PROVIDER)
    assert [a.verb for a in plan.actions] == ["update_node_pool"]
    assert plan.actions[0].changes == {"count": (3, 2)}


def test_missing_pool_is_created():
    assert plan_present(SPEC, state(gpu=2), PROVIDER).describe() == ["create_node_pool node_pool/mon"]


def test_unlisted_pool_is_kept_unless_purged():
    current = state(gpu=2, mon=1, old=1)
    assert not plan_present(SPEC, current, PROVIDER).changed
    assert plan_present(SPEC, current, PROVIDER, purge_node_pools=True).describe() == \
        ["delete_node_pool node_pool/old"]


def test_immutable_difference_is_reported_not_applied():
    current = state(gpu=2, mon=1)
    current.node_pools["gpu"].image = "old-img"
    plan = plan_present(SPEC, current, PROVIDER)
    assert not plan.changed
    assert len(plan.not_updatable) == 1 and "node_pool/gpu image" in plan.not_updatable[0]


def test_fields_the_provider_does_not_report_are_not_drift():
    spec = parse_cluster_spec({"name": "lab", "node_pools": [
        {"name": "mon", "count": 1, "image": "img", "disk_size_gb": 50, "instance_types": ["m7i.large"]}]})
    assert not plan_present(spec, state(mon=1), PROVIDER).changed


def test_absent_deletes_pools_before_cluster():
    assert plan_absent("lab", state(mon=1, gpu=2)).describe() == [
        "delete_node_pool node_pool/gpu", "delete_node_pool node_pool/mon", "delete_cluster cluster/lab"]
    assert not plan_absent("lab", None).changed


def test_autoscaled_count_inside_bounds_is_not_drift():
    from ansible_collections.llmops.platform.plugins.module_utils.providers.aws import AwsProvider
    provider = AwsProvider({}, "us-east-1")
    spec = parse_cluster_spec({"name": "lab", "node_pools": [
        {"name": "gpu", "count": 2, "min_count": 1, "max_count": 4, "image": "img"}]})
    inside = ClusterState(name="lab", status="running", node_pools={
        "gpu": NodePoolState(name="gpu", status="running", count=3, min_count=1, max_count=4, image="img")})
    assert not plan_present(spec, inside, provider).changed
    inside.node_pools["gpu"].count = 6  # outside the bounds: back to the asked size
    assert plan_present(spec, inside, provider).describe() == ["update_node_pool node_pool/gpu (count: 6 -> 2)"]
    # The local lab does not autoscale: there the count is always what was asked.
    inside.node_pools["gpu"].count = 3
    assert plan_present(spec, inside, PROVIDER).describe() == ["update_node_pool node_pool/gpu (count: 3 -> 2)"]
