"""The ClusterProvider contract, checked for every registered provider.

Static part: every provider implements the whole interface consistently. Behavioural part: the
lifecycle every provider must follow (missing -> created -> scaled -> deleted, idempotent deletes,
"not found" is None, waits that end), run against real backends: podman for `local`. Cloud providers
add their harness (moto server, recorded REST exchanges) to HARNESSES when they arrive.
"""
import inspect

import pytest
from azure_fixture_server import azure_harness
from gcp_fixture_server import gcp_harness

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers import PROVIDERS, get_provider
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import (
    ClusterProvider, ClusterState, Node)
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import (
    apply_plan, plan_absent, plan_present)

ALL_FIELDS = {"status", "count", "min_count", "max_count", "instance_types", "zones", "gpu", "labels", "taints",
              "capacity_type", "disk_size_gb", "image", "node_config"}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_implements_the_interface(name):
    cls = PROVIDERS[name]
    assert issubclass(cls, ClusterProvider)
    assert cls.name == name
    assert not inspect.isabstract(cls), "abstract methods left: %s" % cls.__abstractmethods__
    assert set(cls.reported_pool_fields) <= ALL_FIELDS
    # What a provider can update in place it must also report, or it could never see it is done.
    assert set(cls.updatable_pool_fields) <= set(cls.reported_pool_fields)


def test_unknown_provider_names_the_field_and_the_choices():
    with pytest.raises(SpecError) as err:
        get_provider("openstack")
    assert err.value.field == "provider"
    assert "local" in str(err.value)


class Harness(object):
    """What the lifecycle test needs from a backend: a provider wired to it, plus the cluster-level
    and pool-level settings that backend requires (a region for clouds, an image for local)."""

    def __init__(self, provider, cluster=None, pool=None, after_change=None):
        self.provider, self.cluster, self.pool = provider, dict(cluster or {}), dict(pool or {})
        # Called with the cluster name after each change, for backends that need a nudge to do what
        # the cloud does by itself (e.g. launch the instances of a scaled node group in moto).
        self.after_change = after_change or (lambda name: None)


def local_harness(request):
    return Harness(get_provider("local"), pool={"image": request.getfixturevalue("node_image")})


def aws_harness(request):
    backend = request.getfixturevalue("aws_backend")
    return Harness(get_provider("aws", backend.provider_options(), "us-east-1"),
                   cluster={"region": "us-east-1"}, after_change=backend.sync_nodes)


# provider name -> function(pytest request) returning a Harness. Cloud harnesses start their
# backend (moto server, recorded-exchange server) through fixtures requested here.
HARNESSES = {"aws": aws_harness, "azure": azure_harness, "gcp": gcp_harness, "local": local_harness}


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_lifecycle(name, request, cluster_name):
    assert set(HARNESSES) == set(PROVIDERS), "every provider needs a contract harness"
    harness = HARNESSES[name](request)
    provider = harness.provider

    pool = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-t4"}, "labels": {"role": "gpu"}}
    pool.update(harness.pool)
    raw = {"name": cluster_name, "node_pools": [pool]}
    raw.update(harness.cluster)
    spec = parse_cluster_spec(raw)
    cluster = spec.name  # a harness may fix the name (recorded exchanges are keyed on it)
    provider.validate(spec)
    assert provider.get_cluster(cluster) is None
    assert provider.list_nodes(cluster) == []

    apply_plan(plan_present(spec, None, provider), spec, provider)
    harness.after_change(cluster)
    provider.wait_for_cluster(cluster, "present", timeout=120)
    state = provider.get_cluster(cluster)
    assert isinstance(state, ClusterState)
    assert state.node_pools["gpu"].count == 1
    assert state.node_pools["gpu"].gpu.type == "nvidia-t4"
    assert state.node_pools["gpu"].labels == {"role": "gpu"}
    assert not plan_present(spec, state, provider).changed, "state read back must match what was created"

    spec.node_pools[0].count = 2
    plan = plan_present(spec, state, provider)
    assert plan.describe() == ["update_node_pool node_pool/gpu (count: 1 -> 2)"]
    apply_plan(plan, spec, provider)
    harness.after_change(cluster)
    provider.wait_for_cluster(cluster, "present", timeout=120)
    nodes = provider.list_nodes(cluster)
    assert [n.name for n in nodes] == sorted(n.name for n in nodes)
    assert all(isinstance(n, Node) and n.pool == "gpu" and n.status == "running" for n in nodes)
    assert len(nodes) == 2 and all(n.connection["ansible_connection"] for n in nodes)

    apply_plan(plan_absent(cluster, provider.get_cluster(cluster)), spec, provider)
    provider.wait_for_cluster(cluster, "absent", timeout=60)
    assert provider.get_cluster(cluster) is None
    # Deleting what is already gone is a no-op, not an error.
    provider.delete_node_pool(cluster, "gpu")
    provider.delete_cluster(cluster)
