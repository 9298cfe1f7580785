# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Azure (AKS) provider against recorded ARM exchanges.

The real SDK clients (azure-mgmt-containerservice, azure-mgmt-compute, azure-core pipelines and LRO
pollers) talk HTTPS to a loopback server that plays fixtures/azure/*.json in order and checks every
request (method, path, api-version, JSON body); see azure_fixture_server.py. Nothing between our code
and the HTTP wire is mocked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect

import pytest

from azure_fixture_server import azure_harness

from ansible_collections.llmops.platform.plugins.module_utils import azure_auth
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers import azure_api, azure_translate
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterState, Node
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import apply_plan, plan_absent, plan_present

CLUSTER = "llmops-ut"
GPU_POOL = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-t4"}, "labels": {"role": "gpu"}}
# `server` and `clean_azure_env` come from conftest.py in this directory.
pytestmark = pytest.mark.usefixtures("clean_azure_env")


@pytest.fixture
def provider(server):
    return AzureProvider(server.provider_options())


def spec_of(*pools, **cluster):
    raw = {"name": CLUSTER, "region": "eastus", "node_pools": [dict(p) for p in pools or [GPU_POOL]]}
    raw.update(cluster)
    return parse_cluster_spec(raw)


# -- the AWS scenarios: create, unchanged, scale, fallback, delete ---------------------------------------
def test_create_cluster_and_gpu_pool_then_second_run_is_unchanged(server, provider):
    server.play("skus_eastus", "cluster_absent", "create_cluster", "create_gpu_pool", "cluster_running_1")
    spec = spec_of()
    provider.validate(spec)
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert plan.describe() == ["create_cluster cluster/llmops-ut", "create_node_pool node_pool/gpu"]
    apply_plan(plan, spec, provider)

    state = provider.get_cluster(CLUSTER)
    assert isinstance(state, ClusterState)
    assert state.status == "running" and state.region == "eastus" and state.kubernetes_version == "1.33"
    assert state.endpoint == "https://llmops-ut-q1w2e3r4.hcp.eastus.azmk8s.io:443"
    # The provider-made System pool is infrastructure: not reported, so never planned on.
    assert sorted(state.node_pools) == ["gpu"]
    gpu = state.node_pools["gpu"]
    assert (gpu.count, gpu.instance_types, gpu.gpu.type, gpu.gpu.count, gpu.labels, gpu.capacity_type) == (
        1, ["Standard_NC4as_T4_v3"], "nvidia-t4", 1, {"role": "gpu"}, "on_demand")
    second = plan_present(spec, state, provider)
    assert not second.changed and not second.not_updatable
    assert provider.events == []


def test_scale_a_pool_in_place(server, provider):
    server.play("cluster_running_1", "scale_gpu_pool", "cluster_running_2")
    spec = spec_of(dict(GPU_POOL, count=2))
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert plan.describe() == ["update_node_pool node_pool/gpu (count: 1 -> 2)"]
    apply_plan(plan, spec, provider)
    provider.wait_for_cluster(CLUSTER, "present", timeout=30)


def test_capacity_fallback_to_the_next_vm_size_records_an_event(server, provider):
    server.play("skus_eastus", "fallback_zonal")
    spec = spec_of(dict(GPU_POOL, zones=["1"]))
    provider.validate(spec)
    provider.create_node_pool(spec, spec.node_pools[0])
    assert provider.events == [
        "node_pool/gpu: Standard_NC4as_T4_v3 had no capacity in eastus zone 1 (ZonalAllocationFailed); "
        "using Standard_NC8as_T4_v3 in zone 1"]
    assert [(a["instance_type"], a["zones"], a["outcome"], a["code"]) for a in provider.attempts] == [
        ("Standard_NC4as_T4_v3", ["1"], "no_capacity", "ZonalAllocationFailed"),
        ("Standard_NC8as_T4_v3", ["1"], "created", None)]


def test_capacity_fallback_exhausted_names_sizes_code_and_hint(server, provider):
    server.play("skus_eastus", "fallback_exhausted")
    spec = spec_of()
    provider.validate(spec)  # Standard_NC16as_T4_v3 is NotAvailableForSubscription: never tried
    with pytest.raises(ProviderError) as err:
        provider.create_node_pool(spec, spec.node_pools[0])
    text = str(err.value)
    assert err.value.code == "AllocationFailed"
    assert "Standard_NC4as_T4_v3 had no capacity in eastus (ErrCode_InsufficientVCPUQuota)" in text
    assert "Standard_NC8as_T4_v3 had no capacity in eastus (AllocationFailed)" in text
    assert "NC16as" not in text.split(":")[1]
    assert err.value.hint and "quota" in err.value.hint


def test_delete_pools_before_cluster_and_again_as_no_ops(server, provider):
    server.play("cluster_running_2", "delete_gpu_pool", "delete_cluster", "cluster_absent", "delete_again")
    spec = spec_of()
    plan = plan_absent(CLUSTER, provider.get_cluster(CLUSTER))
    assert plan.describe() == ["delete_node_pool node_pool/gpu", "delete_cluster cluster/llmops-ut"]
    apply_plan(plan, spec, provider)
    provider.wait_for_cluster(CLUSTER, "absent", timeout=30)
    provider.delete_node_pool(CLUSTER, "gpu")
    provider.delete_cluster(CLUSTER)


def test_contract_harness_runs_the_lifecycle_exchanges(request):
    """The same steps as test_contract.py::test_lifecycle, through azure_harness (until the lead wires it)."""
    harness = azure_harness(request)
    provider = harness.provider
    raw = {"name": "ignored", "node_pools": [dict(GPU_POOL, **harness.pool)]}
    raw.update(harness.cluster)
    spec = parse_cluster_spec(raw)
    provider.validate(spec)
    assert provider.get_cluster(spec.name) is None
    assert provider.list_nodes(spec.name) == []
    apply_plan(plan_present(spec, None, provider), spec, provider)
    provider.wait_for_cluster(spec.name, "present", timeout=120)
    state = provider.get_cluster(spec.name)
    assert state.node_pools["gpu"].labels == {"role": "gpu"}
    assert not plan_present(spec, state, provider).changed
    spec.node_pools[0].count = 2
    apply_plan(plan_present(spec, state, provider), spec, provider)
    provider.wait_for_cluster(spec.name, "present", timeout=120)
    assert len(provider.list_nodes(spec.name)) == 2
    apply_plan(plan_absent(spec.name, provider.get_cluster(spec.name)), spec, provider)
    provider.wait_for_cluster(spec.name, "absent", timeout=60)
    assert provider.get_cluster(spec.name) is None
    provider.delete_node_pool(spec.name, "gpu")
    provider.delete_cluster(spec.name)


# -- other operations ------------------------------------------------------------------------------------
def test_list_nodes_reads_the_pool_scale_set_instances(server, provider):
    server.play("list_nodes_2")
    nodes = provider.list_nodes(CLUSTER)
    assert [n.name for n in nodes] == ["aks-gpu-12345678-vmss000000", "aks-gpu-12345678-vmss000001"]
    assert all(isinstance(n, Node) and n.pool == "gpu" and n.status == "running" for n in nodes)
    assert nodes[0].connection["ansible_connection"] == "ssh"
    assert nodes[0].connection["azure_resource_group"] == "MC_llmops-ut-rg_llmops-ut_eastus"
    assert nodes[0].connection["azure_instance_id"] == "0"


def test_kubeconfig_is_the_parsed_user_credential(server, provider):
    server.play("kubeconfig")
    config = provider.kubeconfig(CLUSTER)
    assert config["kind"] == "Config"
    assert config["clusters"][0]["cluster"]["server"] == "https://llmops-ut-q1w2e3r4.hcp.eastus.azmk8s.io:443"


def test_gpu_capacity_from_resource_skus_and_family_quota(server, provider):
    server.play("skus_eastus", "usages_eastus")
    offers = [o.as_dict() for o in provider.gpu_capacity("nvidia-t4", 1, ["eastus"])]
    where = [(o["instance_type"], o["zone"]) for o in offers]
    # NC4as is zone-restricted in 3, NC16as is NotAvailableForSubscription, NC64as carries 4 GPUs.
    assert where == [("Standard_NC4as_T4_v3", "1"), ("Standard_NC4as_T4_v3", "2"), ("Standard_NC8as_T4_v3", "1"),
                     ("Standard_NC8as_T4_v3", "2"), ("Standard_NC8as_T4_v3", "3")]
    assert offers[0]["quota_name"] == "standardNCASv3_T4Family"
    assert (offers[0]["quota_limit"], offers[0]["quota_used"], offers[0]["quota_unit"]) == (24, 4, "vCPUs")


def test_gpu_capacity_for_spot_reports_the_low_priority_quota(server, provider):
    server.play("skus_eastus", "usages_eastus")
    offers = provider.gpu_capacity("nvidia-t4", 1, ["eastus"], capacity_type="spot")
    assert {(o.quota_name, o.quota_limit, o.quota_used) for o in offers} == {("lowPriorityCores", 100, 0)}


def test_spot_pool_reads_back_without_aks_own_label_and_taint_then_updates_them_in_place(server, provider):
    server.play("cluster_running_spot", "update_labels_taints")
    pool = dict(GPU_POOL, capacity_type="spot")
    state = provider.get_cluster(CLUSTER)
    assert state.node_pools["gpu"].capacity_type == "spot"
    assert state.node_pools["gpu"].taints == []
    assert not plan_present(spec_of(pool), state, provider).changed

    spec = spec_of(dict(pool, labels={"role": "inference"},
                        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]))
    plan = plan_present(spec, state, provider)
    assert [a.verb for a in plan.actions] == ["update_node_pool"]
    assert sorted(plan.actions[0].changes) == ["labels", "taints"]
    apply_plan(plan, spec, provider)


def test_cluster_gets_the_first_on_demand_cpu_pool_as_system_pool(server, provider):
    server.play("create_cluster_spec_system_pool")
    system = {"name": "system", "count": 2, "instance_types": ["Standard_D4s_v5"], "zones": ["1", "2"],
              "labels": {"llmops.io/role": "system"},
              "taints": [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}]}
    spec = spec_of(system, GPU_POOL, kubernetes_version="1.33")
    assert provider.system_pool_for(spec).name == "system"
    provider.create_cluster(spec)
    provider.create_node_pool(spec, spec.node_pools[0])  # made with the cluster: no request


def test_kubernetes_version_is_upgraded_in_place(server, provider):
    server.play("cluster_running_1", "upgrade_cluster")
    spec = spec_of(kubernetes_version="1.34")
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert plan.describe() == ["update_cluster cluster/llmops-ut (kubernetes_version: '1.33' -> '1.34')"]
    apply_plan(plan, spec, provider)


def test_not_updatable_fields_are_reported_not_applied(server, provider):
    server.play("cluster_running_1")
    spec = spec_of(dict(GPU_POOL, instance_types=["Standard_NC8as_T4_v3"], capacity_type="spot", zones=["2"]))
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert not plan.changed
    assert [line.split(":")[0] for line in plan.not_updatable] == [
        "node_pool/gpu capacity_type", "node_pool/gpu instance_types", "node_pool/gpu zones"]


# -- errors ------------------------------------------------------------------------------------------------
def test_authorization_failed_names_the_code_and_the_role(server, provider):
    server.play("authorization_failed")
    with pytest.raises(ProviderError) as err:
        provider.get_cluster(CLUSTER)
    assert err.value.code == "AuthorizationFailed"
    assert "Azure Kubernetes Service Contributor Role" in err.value.hint
    assert "llmops-ut-rg" in err.value.hint


def test_missing_resource_group_is_an_error_not_an_absent_cluster(server, provider):
    server.play("resource_group_not_found")
    with pytest.raises(ProviderError) as err:
        provider.get_cluster(CLUSTER)
    assert err.value.code == "ResourceGroupNotFound"
    assert "create resource group llmops-ut-rg" in err.value.hint


def test_throttling_and_5xx_are_retried(server, provider):
    server.play("throttled_then_ok")
    assert provider.get_cluster(CLUSTER).node_pools["gpu"].count == 1


def test_wait_timeout_names_what_it_waited_for(server, provider):
    server.play("cluster_updating")
    with pytest.raises(WaitTimeout) as err:
        provider.wait_for_cluster(CLUSTER, "present", timeout=0)
    assert "AKS cluster llmops-ut and its agent pools" in str(err.value)
    assert "pool gpu: Creating" in str(err.value)


def test_operation_timeout_names_the_operation(server, provider):
    server.play("create_cluster_never_ends")
    provider.operation_timeout = 0.3
    with pytest.raises(WaitTimeout) as err:
        provider.create_cluster(spec_of())
    assert "Azure operation 'create AKS cluster llmops-ut'" in str(err.value)
    assert "InProgress" in str(err.value)


def test_credential_failure_becomes_a_provider_error_with_the_options(server, provider, monkeypatch):
    class NoToken(object):
        def get_token(self, *scopes, **kwargs):
            raise azure_api.ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    monkeypatch.setattr(provider, "_credential", NoToken)
    with pytest.raises(ProviderError) as err:
        provider.get_cluster(CLUSTER)
    assert err.value.code == "ClientAuthenticationError"
    assert "AZURE_SECRET" in err.value.hint and "client_secret" in err.value.hint


# -- bad input: each error names the field ------------------------------------------------------------------
OPTIONS = {"subscription_id": "00000000-0000-0000-0000-00000000abcd", "resource_group": "rg", "access_token": "t"}


@pytest.mark.parametrize("pool, field", [
    (dict(GPU_POOL, gpu={"type": "nvidia-l4"}), "node_pools[0].gpu.type"),
    (dict(GPU_POOL, gpu={"type": "nvidia-b300"}), "node_pools[0].gpu.type"),
    (dict(GPU_POOL, gpu={"type": "nvidia-t4", "count": 3}), "node_pools[0].gpu.count"),
    (dict(GPU_POOL, instance_types=["Standard_NC64as_T4_v3"]), "node_pools[0].instance_types[0]"),
    (dict(GPU_POOL, min_count=1), "node_pools[0].max_count"),
    (dict(GPU_POOL, zones=["us-east-1a"]), "node_pools[0].zones[0]"),
])
def test_validate_names_the_pool_field(pool, field):
    with pytest.raises(SpecError) as err:
        AzureProvider(OPTIONS).validate(spec_of(pool))
    assert err.value.field == field


def test_min_over_max_is_refused_before_the_provider():
    with pytest.raises(SpecError) as err:
        spec_of(dict(GPU_POOL, min_count=3, max_count=2))
    assert err.value.field == "node_pools[0].min_count"


def test_region_is_required():
    with pytest.raises(SpecError) as err:
        AzureProvider(OPTIONS).validate(spec_of(region=None))
    assert err.value.field == "region"


def test_region_where_the_gpu_sizes_are_not_offered(server, provider):
    server.play("skus_westus")
    with pytest.raises(SpecError) as err:
        provider.validate(spec_of(region="westus"))
    assert err.value.field == "region"
    assert "node_pools[0]" in str(err.value) and "NotAvailableForSubscription" in str(err.value)


@pytest.mark.parametrize("options, env, field, words", [
    ({"resource_group": "rg"}, {}, "provider_options.subscription_id", ["AZURE_SUBSCRIPTION_ID"]),
    ({"subscription_id": "s"}, {}, "provider_options.resource_group", []),
    ({"subscription_id": "s", "resource_group": "rg", "client_id": "c", "client_secret": "x"}, {},
     "provider_options.tenant_id", ["AZURE_TENANT", "AWX"]),
    ({"subscription_id": "s", "resource_group": "rg"}, {"AZURE_SECRET": "x", "AZURE_TENANT": "t"},
     "provider_options.client_id", ["AZURE_CLIENT_ID"]),
])
def test_missing_credentials_name_option_and_env(options, env, field, words, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SpecError) as err:
        AzureProvider(options).validate(spec_of())
    assert err.value.field == field
    for word in words:
        assert word in str(err.value)


def test_credentials_from_awx_env_or_default_chain(monkeypatch):
    base = {"resource_group": "rg"}
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "s")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    assert isinstance(AzureProvider(base)._credential(), azure_auth.DefaultAzureCredential)  # user-assigned identity
    monkeypatch.setenv("AZURE_SECRET", "x")
    monkeypatch.setenv("AZURE_TENANT", "t")
    assert isinstance(AzureProvider(base)._credential(), azure_auth.ClientSecretCredential)
    assert AzureProvider(base).subscription_id == "s"


def test_without_the_sdk_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(azure_api, "HAS_AZURE", False)
    monkeypatch.setattr(azure_api, "AZURE_IMPORT_ERROR", "No module named 'azure'")
    with pytest.raises(ProviderError) as err:
        AzureProvider(OPTIONS).get_cluster(CLUSTER)
    assert "pip install azure-identity" in err.value.hint


def test_fields_the_interface_promises():
    assert AzureProvider.name == "azure"
    assert not inspect.isabstract(AzureProvider)
    assert AzureProvider.updatable_pool_fields == frozenset(["count", "min_count", "max_count", "labels", "taints"])
    assert set(AzureProvider.updatable_pool_fields) <= set(AzureProvider.reported_pool_fields)
    assert AzureProvider.updatable_cluster_fields == frozenset(["kubernetes_version"]) | azure_translate.FOUNDATION_IN_PLACE
    assert azure_translate.FOUNDATION_IN_PLACE == frozenset(["oidc_issuer", "workload_identity", "aad_managed",
                                                             "admin_group_object_ids", "azure_rbac", "tenant_id",
                                                             "disable_local_accounts"])
