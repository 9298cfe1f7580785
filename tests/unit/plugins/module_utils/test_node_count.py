"""The GPU node count override (plugins/module_utils/node_count.py): what a survey answer does to pools."""
import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.node_count import apply_gpu_node_count

SYSTEM = {"name": "system", "count": 2, "instance_types": ["m7i.large"]}
FIXED_GPU = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-l4", "count": 1}}
BOUNDED_GPU = {"name": "gpu", "count": 1, "min_count": 0, "max_count": 2, "gpu": {"type": "nvidia-l4", "count": 1}}


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_empty_override_keeps_the_inventory(empty):
    pools = [SYSTEM, BOUNDED_GPU]
    assert apply_gpu_node_count(pools, empty) == pools


def test_unbounded_gpu_pool_gets_the_count_and_other_pools_stay():
    pools = apply_gpu_node_count([SYSTEM, FIXED_GPU], "3")
    assert pools == [SYSTEM, dict(FIXED_GPU, count=3)]
    assert "min_count" not in pools[1] and "max_count" not in pools[1]


def test_bounded_gpu_pool_gets_a_floor_inside_its_bounds():
    (pool,) = apply_gpu_node_count([BOUNDED_GPU], 2)
    assert (pool["count"], pool["min_count"], pool["max_count"]) == (2, 2, 2)


def test_bounded_gpu_pool_max_is_raised_to_the_override():
    (pool,) = apply_gpu_node_count([BOUNDED_GPU], 5)
    assert (pool["count"], pool["min_count"], pool["max_count"]) == (5, 5, 5)


def test_zero_lets_a_bounded_gpu_pool_scale_to_zero():
    (pool,) = apply_gpu_node_count([dict(BOUNDED_GPU, min_count=1, max_count=4, count=2)], 0)
    assert (pool["count"], pool["min_count"], pool["max_count"]) == (0, 0, 4)


def test_pool_with_only_a_minimum_gets_the_floor():
    (pool,) = apply_gpu_node_count([{"name": "gpu", "count": 1, "min_count": 1, "gpu": {"type": "nvidia-t4"}}], 3)
    assert (pool["count"], pool["min_count"]) == (3, 3) and "max_count" not in pool


def test_input_is_not_modified():
    original = dict(BOUNDED_GPU)
    apply_gpu_node_count([original], 4)
    assert original == BOUNDED_GPU


@pytest.mark.parametrize("bad", ["two", -1, "1.5", True])
def test_bad_override_names_the_variable(bad):
    with pytest.raises(SpecError) as error:
        apply_gpu_node_count([BOUNDED_GPU], bad)
    assert error.value.field == "llmops_gpu_node_count"
    assert "llmops_gpu_node_count" in str(error.value)
