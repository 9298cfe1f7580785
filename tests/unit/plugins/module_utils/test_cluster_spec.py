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


def test_node_config_is_parsed_into_a_plain_dict():
    parsed = parse_cluster_spec(spec(node_config={
        "user_data": "#cloud-config\n", "sysctls": {"kernel.kptr_restrict": 2, "net.ipv4.ip_forward": True},
        "kubelet": {"readOnlyPort": 0, "podPidsLimit": 4096}, "secure_boot": True}))
    config = parsed.pool("gpu").node_config
    # Sysctl values become strings, as /etc/sysctl.d and every cloud API take them.
    assert config == {"user_data": "#cloud-config\n",
                      "sysctls": {"kernel.kptr_restrict": "2", "net.ipv4.ip_forward": "1"},
                      "kubelet": {"readOnlyPort": 0, "podPidsLimit": 4096}, "secure_boot": True}
    assert parsed.pool("gpu").summary()["node_config"] == config


def test_node_config_defaults_to_empty_and_drops_unset_keys():
    assert parse_cluster_spec(spec()).pool("gpu").node_config == {}
    # AnsibleModule fills unset suboptions with None: they are not configuration.
    unset = {"user_data": None, "sysctls": None, "kubelet": None, "secure_boot": None}
    assert parse_cluster_spec(spec(node_config=unset)).pool("gpu").node_config == {}


@pytest.mark.parametrize("node_config, field, words", [
    ("yes", "node_pools[0].node_config", "dictionary"),
    ({"userdata": "x"}, "node_pools[0].node_config.userdata", "not a node_config key"),
    ({"user_data": {"a": 1}}, "node_pools[0].node_config.user_data", "string"),
    ({"sysctls": ["kernel.sysrq=0"]}, "node_pools[0].node_config.sysctls", "dictionary"),
    ({"sysctls": {"kernel sysrq": 0}}, "node_pools[0].node_config.sysctls", "kernel parameter name"),
    ({"sysctls": {"kernel.sysrq": [0]}}, "node_pools[0].node_config.sysctls.kernel.sysrq", "number or a string"),
    ({"kubelet": "readOnlyPort=0"}, "node_pools[0].node_config.kubelet", "KubeletConfiguration"),
    ({"kubelet": {"read-only-port": 0}}, "node_pools[0].node_config.kubelet", "camelCase"),
    ({"secure_boot": "yes"}, "node_pools[0].node_config.secure_boot", "true or false"),
])
def test_bad_node_config_names_the_field(node_config, field, words):
    with pytest.raises(SpecError) as err:
        parse_cluster_spec(spec(node_config=node_config))
    assert err.value.field == field
    assert words in str(err.value)


def test_fallback_is_parsed_and_accepts_what_it_allows():
    from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec
    pool = parse_cluster_spec(spec(capacity_type="spot", gpu={"type": "nvidia-l4"}, fallback={
        "capacity_types": ["spot", "on_demand"], "gpu_types": ["nvidia-l4", "nvidia-a10g"], "attempt_timeout": 900,
        "regions": None})).pool("gpu")
    # The pool's own GPU type is not repeated as an alternative.
    assert (pool.fallback.capacity_types, pool.fallback.gpu_types, pool.fallback.attempt_timeout) == (
        ("spot", "on_demand"), ("nvidia-a10g",), 900)
    assert pool.accepts("capacity_type", "on_demand") and pool.accepts("gpu", GpuSpec("nvidia-a10g", 1))
    assert not pool.accepts("gpu", GpuSpec("nvidia-a10g", 4)) and not pool.accepts("gpu", GpuSpec("nvidia-t4", 1))
    assert pool.accepts("instance_types", ["g5.xlarge"]) and not pool.accepts("instance_types", ["g4dn.xlarge"])
    plain = parse_cluster_spec(spec(gpu={"type": "nvidia-l4"})).pool("gpu")
    assert plain.fallback is None and not plain.accepts("capacity_type", "spot")


@pytest.mark.parametrize("pool, field, words", [
    ({"fallback": {"regions": ["us-west-2"]}}, "node_pools[0].fallback.regions", "lives in its cluster's region"),
    ({"fallback": {"zones": ["a"]}}, "node_pools[0].fallback.zones", "not a fallback key"),
    ({"fallback": ["spot"]}, "node_pools[0].fallback", "dictionary"),
    ({"fallback": {"capacity_types": ["spot", "reserved"]}}, "node_pools[0].fallback.capacity_types[1]", "not one of"),
    ({"fallback": {"capacity_types": ["spot", "on_demand"]}}, "node_pools[0].fallback.capacity_types[0]",
     "pool's capacity_type (on_demand)"),
    ({"fallback": {"capacity_types": ["on_demand", "on_demand"]}}, "node_pools[0].fallback.capacity_types[1]", "twice"),
    ({"fallback": {"gpu_types": ["nvidia-l4"]}}, "node_pools[0].fallback.gpu_types", "needs the pool's gpu"),
    ({"gpu": {"type": "nvidia-l4"}, "fallback": {"gpu_types": ["nvidia-b300"]}}, "node_pools[0].fallback.gpu_types[0]",
     "unknown GPU type"),
    ({"fallback": {"attempt_timeout": 0}}, "node_pools[0].fallback.attempt_timeout", "1 or more"),
])
def test_bad_fallback_names_the_field(pool, field, words):
    with pytest.raises(SpecError) as err:
        parse_cluster_spec(spec(**pool))
    assert err.value.field == field and words in str(err.value), str(err.value)
