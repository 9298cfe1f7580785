# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AKS: foundations' managed-cluster fields, node_config (linuxOSConfig/kubeletConfig/securityProfile), native
autoscaling, pool-name rules and honest waits; against recorded ARM exchanges played to the real SDK clients.

Every request body the provider sends is also checked against the azure-mgmt-containerservice model classes
(azure_fixture_server.FixtureServer.verify -> schema_check.azure_body_problems), so a field AKS does not
have fails here even where the fixture does not mention it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import pathlib
import re

import pytest

from azure_fixture_server import FixtureServer, body_model
from schema_check import azure_body_problems

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers import azure as azure_mod
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterProvider
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import plan_present

CLUSTER = "llmops-ut"
SUBNET = ("/subscriptions/00000000-0000-0000-0000-00000000abcd/resourceGroups/llmops-ut-rg/providers/"
          "Microsoft.Network/virtualNetworks/llmops-ut-vnet/subnets/nodes")
GROUP = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
NODE_CONFIG = {
    "user_data": "#cloud-config\n{}\n",
    "sysctls": {"net.ipv4.tcp_keepalive_time": "600", "net.ipv4.tcp_keepalive_intvl": "30",
                "net.ipv4.tcp_tw_reuse": "1", "vm.max_map_count": "262144",
                "kernel.kptr_restrict": "2", "net.ipv4.conf.all.rp_filter": "1"},
    "kubelet": {"podPidsLimit": 4096, "cpuManagerPolicy": "none", "containerLogMaxSize": "10Mi",
                "allowedUnsafeSysctls": ["net.core.somaxconn"], "readOnlyPort": 0, "protectKernelDefaults": True},
    "secure_boot": True,
}
GPU_POOL = {"name": "gpu", "count": 1, "min_count": 1, "max_count": 4, "gpu": {"type": "nvidia-t4"},
            "labels": {"role": "gpu"}, "node_config": NODE_CONFIG}
FOUNDATION_OPTIONS = {"vnet_subnet_id": SUBNET, "pod_cidr": "192.168.0.0/16", "admin_group_object_ids": [GROUP]}
DOCS = pathlib.Path(__file__).resolve().parents[5] / "docs" / "clouds.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_CLIENT_SECRET", "AZURE_TENANT",
                 "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path):
    srv = FixtureServer(str(tmp_path))
    yield srv
    try:
        srv.verify()
    finally:
        srv.close()


def spec_of(*pools):
    return parse_cluster_spec({"name": CLUSTER, "region": "eastus", "node_pools": [copy.deepcopy(p) for p in pools]})


# -- foundations: the managed-cluster fields ----------------------------------------------------------------
def test_cluster_is_created_in_the_foundation_subnet_with_oidc_workload_identity_and_entra_admins(server):
    server.play("create_cluster_foundations")
    provider = AzureProvider(server.provider_options(**FOUNDATION_OPTIONS))
    provider.create_cluster(spec_of(GPU_POOL))
    sent = server.played[0]["body"]["properties"]
    assert sent["aadProfile"] == {"managed": True, "adminGroupObjectIDs": [GROUP], "enableAzureRBAC": True}
    assert sent["disableLocalAccounts"] is True
    assert sent["agentPoolProfiles"][0]["vnetSubnetID"] == SUBNET


# -- node_config on AKS -------------------------------------------------------------------------------------
def test_bounded_gpu_pool_gets_native_autoscaling_and_node_config_in_its_boot_fields(server):
    server.play("skus_eastus", "create_gpu_pool_node_config", "cluster_running_node_config")
    provider = AzureProvider(server.provider_options(**FOUNDATION_OPTIONS))
    spec = spec_of(GPU_POOL)
    provider.validate(spec)
    # Keys AKS has no field for are events naming the key, never dropped in silence.
    unapplied = sorted(re.search(r"node_config\.(\S+?):", e).group(1) for e in provider.events)
    assert unapplied == ["kubelet.protectKernelDefaults", "kubelet.readOnlyPort", "sysctls.kernel.kptr_restrict",
                         "sysctls.net.ipv4.conf.all.rp_filter", "user_data"]
    provider.create_node_pool(spec, spec.node_pools[0])
    sent = server.played[-1]["body"]["properties"]
    assert sent["linuxOSConfig"]["sysctls"]["netIpv4TcpKeepaliveTime"] == 600
    assert sent["kubeletConfig"]["containerLogMaxSizeMB"] == 10

    # The autoscaler grew the pool to 3 of 1..4: count is its business, and node_config matches.
    state = provider.get_cluster(CLUSTER)
    assert (state.node_pools["gpu"].count, state.node_pools["gpu"].min_count, state.node_pools["gpu"].max_count) == (3, 1, 4)
    plan = plan_present(spec, state, provider)
    assert not plan.changed and not plan.not_updatable


def test_node_config_drift_is_reported_as_not_updatable(server):
    server.play("cluster_running_node_config")
    provider = AzureProvider(server.provider_options(**FOUNDATION_OPTIONS), "eastus")
    wanted = copy.deepcopy(GPU_POOL)
    wanted["node_config"]["sysctls"]["net.ipv4.tcp_keepalive_time"] = "300"
    wanted["node_config"]["kubelet"]["podPidsLimit"] = 8192
    spec = spec_of(wanted)
    provider.node_config_for_aks(spec.node_pools[0], 0)
    provider._wanted_node_config["gpu"] = spec.node_pools[0].node_config = provider.node_config_for_aks(
        spec.node_pools[0], 0, record=False)
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert not plan.changed
    assert len(plan.not_updatable) == 1 and plan.not_updatable[0].startswith("node_pool/gpu node_config:")
    assert "'300'" in plan.not_updatable[0] and "8192" in plan.not_updatable[0]
    assert "node_config" not in AzureProvider.updatable_pool_fields


@pytest.mark.parametrize("section, key, value", [
    ("sysctls", "net.core.somaxconn", "lots"),
    ("sysctls", "net.ipv4.tcp_tw_reuse", "2"),
    ("kubelet", "containerLogMaxSize", "1500Ki"),
    ("kubelet", "podPidsLimit", "many"),
])
def test_values_aks_cannot_take_name_the_key(section, key, value):
    pool = copy.deepcopy(GPU_POOL)
    pool["node_config"] = {section: {key: value}}
    with pytest.raises(SpecError) as err:
        AzureProvider({"subscription_id": "s", "resource_group": "rg", "access_token": "t"}).validate(spec_of(pool))
    assert err.value.field == "node_pools[0].node_config.%s.%s" % (section, key)


def test_every_mapped_name_is_a_field_of_the_sdk_model_and_every_model_field_is_mapped():
    from azure.mgmt.containerservice import models
    sample = {int: 1, bool: True, str: "32768 60999", list: ["a"], "mebibytes": 10}
    sysctl_body = dict((field, sample[kind]) for field, kind in azure_mod.AKS_SYSCTLS.values())
    assert azure_body_problems(models.SysctlConfig, sysctl_body) == []
    kubelet_body = dict((field, sample[kind]) for field, kind in azure_mod.AKS_KUBELET.values())
    assert azure_body_problems(models.KubeletConfig, kubelet_body) == []
    # Both ways: a new AKS sysctl field shows up here as unmapped.
    every = set(models.SysctlConfig()._attr_to_rest_field[k]._rest_name for k in models.SysctlConfig._attr_to_rest_field)
    assert every == set(f for f, _k in azure_mod.AKS_SYSCTLS.values())
    kubelet_fields = set(models.KubeletConfig()._attr_to_rest_field[k]._rest_name
                         for k in models.KubeletConfig._attr_to_rest_field)
    assert set(f for f, _k in azure_mod.AKS_KUBELET.values()) == kubelet_fields


# -- the walker itself: a misspelled field fails (mutation) ---------------------------------------------------
def test_a_misspelled_field_in_a_sent_body_fails_the_schema_check(server, monkeypatch):
    """Mutation: the brief's own spelling of tcp_keepalive_time (netIpv4TcpkeepaliveTime) is not AKS's."""
    monkeypatch.setitem(azure_mod.AKS_SYSCTLS, "net.ipv4.tcp_keepalive_time", ("netIpv4TcpkeepaliveTime", int))
    server.play("skus_eastus", "create_gpu_pool_node_config")
    for exchange in server.exchanges:  # a fixture written without that field would let the typo through
        if exchange["request"]["method"] == "PUT":
            del exchange["request"]["json"]["properties"]["linuxOSConfig"]
    provider = AzureProvider(server.provider_options(**FOUNDATION_OPTIONS))
    spec = spec_of(GPU_POOL)
    provider.validate(spec)
    provider.create_node_pool(spec, spec.node_pools[0])
    problems = server.schema_problems()
    assert len(problems) == 1 and "linuxOSConfig.sysctls.netIpv4TcpkeepaliveTime: not a field of SysctlConfig" in problems[0]
    server.played[:] = [p for p in server.played if p["body"] is None]  # the mutation is proven; let teardown pass


def test_the_walker_follows_nested_models_lists_and_maps():
    from azure.mgmt.containerservice import models
    body = {"properties": {"agentPoolProfiles": [{"name": "a", "nodeLabels": {"x": "y"}, "vmSise": "D2"}],
                           "aadProfile": {"adminGroupObjectIds": ["g"]}, "nodeResourceGroup": 5}}
    problems = azure_body_problems(models.ManagedCluster, body)
    assert [p.split(":")[0] for p in problems] == [
        "body.properties.agentPoolProfiles[0].vmSise", "body.properties.aadProfile.adminGroupObjectIds",
        "body.properties.nodeResourceGroup"]
    assert body_model("PUT", "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/"
                             "managedClusters/c/agentPools/gpu") is models.AgentPool


# -- errors and waits ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gpu-a100", "gpupoolnumber1", "g_pu"])
def test_aks_pool_names_are_checked_before_any_call(server, name):
    provider = AzureProvider(server.provider_options())
    pool = dict(GPU_POOL, name=name) if "_" not in name else GPU_POOL
    spec = spec_of(dict(GPU_POOL, name="system", gpu=None, node_config={}), pool)
    if "_" in name:
        spec.node_pools[1].name = name  # parse_cluster_spec already refuses '_'; AKS's own check still does
    with pytest.raises(SpecError) as err:
        provider.validate(spec)
    assert err.value.field == "node_pools[1].name"
    assert "^[a-z][a-z0-9]{0,11}$" in str(err.value)
    assert server.played == []  # nothing was sent


def test_a_pool_still_creating_when_the_wait_ends_is_not_a_capacity_failure(server):
    server.play("create_gpu_pool_never_ends")
    provider = AzureProvider(server.provider_options())
    provider.operation_timeout = 0.3
    spec = spec_of(dict(GPU_POOL, node_config={}))
    with pytest.raises(WaitTimeout) as err:
        provider.create_node_pool(spec, spec.node_pools[0])
    assert err.value.code == "StillRunning" and "still creating" in str(err.value)
    assert "not a capacity failure" in str(err.value)
    assert err.value.code not in azure_mod.CAPACITY_CODES and provider.events == []
    # No fallback happened: no delete of the pool, no second size tried.
    assert [p["method"] for p in server.played if "agentPools" in p["path"]] == ["PUT"]


def test_cluster_wait_says_which_pools_are_still_creating(server):
    server.play("cluster_updating")
    with pytest.raises(WaitTimeout) as err:
        AzureProvider(server.provider_options()).wait_for_cluster(CLUSTER, "present", timeout=0)
    assert err.value.code == "StillCreating"
    assert "agent pool gpu is still creating (not a capacity failure" in str(err.value)


def test_default_wait_is_above_aks_creation_and_stockout_times_and_documented():
    assert AzureProvider.default_wait_timeout >= 3600 > ClusterProvider.default_wait_timeout
    text = DOCS.read_text()
    assert "3600" in text and "OSProvisioningTimedOut" in text
