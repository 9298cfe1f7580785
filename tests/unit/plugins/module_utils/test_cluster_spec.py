import pytest

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError


def spec(**pool):
    base = {"name": "gpu", "count": 2}
    base.update(pool)
    return {"name": "lab", "node_pools": [base]}


def test_parses_a_full_pool():
    parsed = parse_cluster_spec(spec(gpu={"type": "nvidia-l4", "count": 2}, labels={"a": 1},
                                     taints=[{"key": "nvidia.com/gpu", "effect": "NoExecute"}],
                                     min_count=1, max_count=4, capacity_type="spot"))
    pool = parsed.pool("gpu")
    assert pool.count == 2 and pool.gpu.type == "nvidia-l4" and pool.gpu.count == 2
    assert pool.labels == {"a": "1"}
    assert pool.taints[0].effect == "NoExecute" and pool.taints[0].value == ""
    assert parsed.pool("missing") is None


@pytest.mark.parametrize("pool, field, words", [
    ({"count": -1}, "node_pools[0].count", "0 or more"),
    ({"count": "3"}, "node_pools[0].count", "integer"),
    ({"min_count": 3, "max_count": 1}, "node_pools[0].min_count", "greater than max_count"),
    ({"count": 9, "max_count": 4}, "node_pools[0].count", "outside"),
    ({"gpu": {"count": 1}}, "node_pools[0].gpu.type", "required"),
    ({"gpu": {"type": "nvidia-l4", "count": 0}}, "node_pools[0].gpu.count", "1 or more"),
    ({"taints": [{"key": "k", "effect": "Sometimes"}]}, "node_pools[0].taints[0].effect", "NoSchedule"),
    ({"capacity_type": "cheap"}, "node_pools[0].capacity_type", "spot"),
    ({"name": "GPU_pool"}, "node_pools[0].name", "not a valid name"),
])
def test_bad_input_names_the_field(pool, field, words):
    with pytest.raises(SpecError) as err:
        parse_cluster_spec(spec(**pool))
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")
    assert words in str(err.value)


def test_duplicate_pool_names_are_rejected():
    with pytest.raises(SpecError) as err:
        parse_cluster_spec({"name": "lab", "node_pools": [{"name": "a"}, {"name": "a"}]})
    assert err.value.field == "node_pools[1].name"


def test_cluster_name_is_checked():
    with pytest.raises(SpecError) as err:
        parse_cluster_spec({"name": "-bad-"})
    assert err.value.field == "name"
