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

from azure_fixture_server import body_model
from schema_check import azure_body_problems

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers import azure_api, azure_translate
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterProvider
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import apply_plan, plan_present
from ansible_collections.llmops.platform.plugins.modules import gpu_cluster

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
# `server` and `clean_azure_env` come from conftest.py in this directory.
pytestmark = pytest.mark.usefixtures("clean_azure_env")


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


# -- foundations on an existing cluster: drift ----------------------------------------------------------------
PLAIN_POOL = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-t4"}, "labels": {"role": "gpu"}}
OTHER_SUBNET = SUBNET.replace("/subnets/nodes", "/subnets/gpu-nodes")


def test_foundation_fields_aks_can_change_are_planned_then_updated_in_place(server):
    server.play("cluster_before_foundations")
    provider = AzureProvider(server.provider_options(admin_group_object_ids=[GROUP], check_sku_availability=False))
    spec = spec_of(PLAIN_POOL)
    provider.validate(spec)
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    # What check mode returns: the plan, with nothing but the read sent.
    assert plan.describe() == [
        "update_cluster cluster/llmops-ut (aad_managed: None -> True, admin_group_object_ids: None -> ['%s'], "
        "azure_rbac: None -> True, disable_local_accounts: False -> True, oidc_issuer: False -> True, "
        "workload_identity: None -> True)" % GROUP]
    assert not plan.not_updatable and [p["method"] for p in server.played] == ["GET"]

    server.play("update_cluster_foundations")
    apply_plan(plan, spec, provider)
    sent = [p for p in server.played if p["method"] == "PUT"][0]["body"]["properties"]
    assert sent["aadProfile"] == {"managed": True, "adminGroupObjectIDs": [GROUP], "enableAzureRBAC": True}
    assert (sent["oidcIssuerProfile"], sent["securityProfile"], sent["disableLocalAccounts"]) == (
        {"enabled": True}, {"workloadIdentity": {"enabled": True}}, True)
    # The rest of the cluster went back as it was read (a PUT replaces the whole managed cluster).
    assert sent["networkProfile"]["podCidr"] == "10.244.0.0/16" and len(sent["agentPoolProfiles"]) == 2


@pytest.mark.parametrize("options, changes", [
    # Another admin group, Azure RBAC off, local accounts allowed again: each is its own change.
    ({"admin_group_object_ids": ["5f6e7d8c-9b0a-4132-a5b6-c7d8e9f0a1b2"], "azure_rbac": False,
      "disable_local_accounts": False}, ["admin_group_object_ids", "azure_rbac", "disable_local_accounts"]),
    # Group IDs and subnet IDs are compared as ARM compares them: case does not matter.
    ({"admin_group_object_ids": [GROUP.upper()], "vnet_subnet_id": SUBNET.upper()}, []),
    ({"workload_identity": False, "oidc_issuer": False}, ["workload_identity"]),
])
def test_only_the_foundation_fields_that_differ_are_changed(server, options, changes):
    server.play("cluster_running_node_config")
    provider = AzureProvider(server.provider_options(**dict(FOUNDATION_OPTIONS, **options)))
    spec = spec_of(dict(PLAIN_POOL, count=3))
    plan = plan_present(spec, provider.get_cluster(CLUSTER), provider)
    assert sorted(k for a in plan.actions for k in a.changes) == changes
    if options.get("oidc_issuer") is False:
        # AKS has no way to turn the issuer off: said, not planned, not silently ignored.
        assert provider.events == ["cluster/llmops-ut: provider_options.oidc_issuer is false, but AKS cannot turn "
                                   "the OIDC issuer off once it is on; it stays on"]


@pytest.mark.parametrize("options, words", [
    ({"vnet_subnet_id": OTHER_SUBNET},
     ["provider_options.vnet_subnet_id (agent pool gpu vnetSubnetID) is '%s', the inventory wants '%s'" % (SUBNET, OTHER_SUBNET),
      "agent pool system vnetSubnetID", "recreate agent pool gpu in the wanted subnet",
      "recreate the cluster (its System pool system is made by the provider)"]),
    ({"pod_cidr": "172.16.0.0/16"},
     ["provider_options.pod_cidr (networkProfile.podCidr) is '192.168.0.0/16', the inventory wants '172.16.0.0/16'",
      "recreate the cluster (playbooks/teardown.yml, then provision)"]),
    ({"network_plugin": "kubenet", "network_plugin_mode": "dynamic"},
     ["provider_options.network_plugin (networkProfile.networkPlugin) is 'azure', the inventory wants 'kubenet'",
      "provider_options.network_plugin_mode (networkProfile.networkPluginMode) is 'overlay'"]),
])
def test_foundation_fields_fixed_at_creation_fail_before_any_change(server, options, words):
    server.play("cluster_running_node_config")
    # An in-place change is wanted too (another admin group): it must not be made half-way either.
    provider = AzureProvider(server.provider_options(**dict(
        FOUNDATION_OPTIONS, admin_group_object_ids=["5f6e7d8c-9b0a-4132-a5b6-c7d8e9f0a1b2"], **options)))
    spec = spec_of(PLAIN_POOL)
    state = provider.get_cluster(CLUSTER)
    with pytest.raises(ProviderError) as err:
        plan_present(spec, state, provider)
    text = str(err.value)
    for word in words + ["nothing was changed", "or set the option back to what the cluster has"]:
        assert word in text
    assert [p["method"] for p in server.played] == ["GET"]  # plan time: nothing was sent but the read


def test_a_misspelled_foundation_field_fails_the_schema_check(server, monkeypatch):
    """Mutation: Azure RBAC sent as enableAzureRbac (the REST name is enableAzureRBAC). The fixture is made not to
    mention it, so only the check against the SDK's ManagedCluster model can catch it."""
    fields = tuple((key, ("aadProfile", "enableAzureRbac") if key == "azure_rbac" else path, in_place)
                   for key, path, in_place in azure_translate.FOUNDATION_FIELDS)
    monkeypatch.setattr(azure_translate, "FOUNDATION_FIELDS", fields)
    server.play("cluster_before_foundations", "update_cluster_foundations")
    for exchange in server.exchanges:
        if exchange["request"]["method"] == "PUT":
            del exchange["request"]["json"]["properties"]["aadProfile"]["enableAzureRBAC"]
    provider = AzureProvider(server.provider_options(admin_group_object_ids=[GROUP]))
    spec = spec_of(PLAIN_POOL)
    apply_plan(plan_present(spec, provider.get_cluster(CLUSTER), provider), spec, provider)
    problems = server.schema_problems()
    assert len(problems) == 1 and "properties.aadProfile.enableAzureRbac: not a field of" in problems[0]
    server.played[:] = [p for p in server.played if p["body"] is None]  # the mutation is proven; let teardown pass


def test_gpu_cluster_in_check_mode_reports_the_foundation_update_and_sends_no_change(server, run_module):
    server.play("cluster_before_foundations", "list_nodes_2")
    args = {"provider": "azure", "name": CLUSTER, "region": "eastus", "node_pools": [PLAIN_POOL],
            "provider_options": server.provider_options(admin_group_object_ids=[GROUP], check_sku_availability=False)}
    result = run_module(gpu_cluster.main, args, check_mode=True)
    assert not result.failed and result["changed"]
    assert result["actions"] == ["update_cluster cluster/llmops-ut (aad_managed: None -> True, admin_group_object_ids: "
                                 "None -> ['%s'], azure_rbac: None -> True, disable_local_accounts: False -> True, "
                                 "oidc_issuer: False -> True, workload_identity: None -> True)" % GROUP]
    assert set(p["method"] for p in server.played) == {"GET"}


def test_gpu_cluster_fails_on_a_foundation_field_fixed_at_creation_naming_it(server, run_module):
    server.play("cluster_running_node_config")
    args = {"provider": "azure", "name": CLUSTER, "region": "eastus", "node_pools": [dict(PLAIN_POOL, count=3)],
            "provider_options": server.provider_options(**dict(FOUNDATION_OPTIONS, vnet_subnet_id=OTHER_SUBNET,
                                                               check_sku_availability=False))}
    result = run_module(gpu_cluster.main, args)
    assert result.failed
    assert "provider_options.vnet_subnet_id (agent pool gpu vnetSubnetID)" in result["msg"]
    assert "recreate agent pool gpu in the wanted subnet" in result["msg"]
    assert [p["method"] for p in server.played] == ["GET"]


@pytest.mark.parametrize("groups, field", [
    ([""], "provider_options.admin_group_object_ids[0]"),
    ([GROUP, "llmops-dev-admins"], "provider_options.admin_group_object_ids[1]"),
    (GROUP, "provider_options.admin_group_object_ids"),
])
def test_admin_groups_must_be_object_ids(groups, field):
    options = {"subscription_id": "s", "resource_group": "rg", "access_token": "t", "admin_group_object_ids": groups}
    with pytest.raises(SpecError) as err:
        AzureProvider(options).validate(spec_of(PLAIN_POOL))
    assert err.value.field == field
    assert "GUID" in str(err.value) or "list" in str(err.value)


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
    sysctl_body = dict((field, sample[kind]) for field, kind in azure_translate.AKS_SYSCTLS.values())
    assert azure_body_problems(models.SysctlConfig, sysctl_body) == []
    kubelet_body = dict((field, sample[kind]) for field, kind in azure_translate.AKS_KUBELET.values())
    assert azure_body_problems(models.KubeletConfig, kubelet_body) == []
    # Both ways: a new AKS sysctl field shows up here as unmapped.
    every = set(models.SysctlConfig()._attr_to_rest_field[k]._rest_name for k in models.SysctlConfig._attr_to_rest_field)
    assert every == set(f for f, _k in azure_translate.AKS_SYSCTLS.values())
    kubelet_fields = set(models.KubeletConfig()._attr_to_rest_field[k]._rest_name
                         for k in models.KubeletConfig._attr_to_rest_field)
    assert set(f for f, _k in azure_translate.AKS_KUBELET.values()) == kubelet_fields


# -- the walker itself: a misspelled field fails (mutation) ---------------------------------------------------
def test_a_misspelled_field_in_a_sent_body_fails_the_schema_check(server, monkeypatch):
    """Mutation: the brief's own spelling of tcp_keepalive_time (netIpv4TcpkeepaliveTime) is not AKS's."""
    monkeypatch.setitem(azure_translate.AKS_SYSCTLS, "net.ipv4.tcp_keepalive_time", ("netIpv4TcpkeepaliveTime", int))
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
    assert err.value.code not in azure_api.CAPACITY_CODES and provider.events == []
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
