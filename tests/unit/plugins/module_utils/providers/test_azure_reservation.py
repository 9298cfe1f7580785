"""Capacity reservation groups on AKS against recorded ARM exchanges (fixtures/azure/reservation_group.json).

The real azure-mgmt-compute and azure-mgmt-containerservice clients talk HTTPS to the loopback fixture server
(azure_fixture_server.py), which fails the test on any request it did not expect, any exchange left unplayed,
and any PUT body that does not fit the SDK's AgentPool model (capacityReservationGroupID is that model's REST
name). A refusal that sent a PUT would fail there; the tests also assert that none was seen.
"""
import copy

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider

from azure_fixture_server import load_scenario

pytestmark = pytest.mark.usefixtures("clean_azure_env")
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-00000000abcd"
GROUP = SUBSCRIPTION + "/resourceGroups/llmops-capacity-rg/providers/Microsoft.Compute/capacityReservationGroups/llmops-t4"
GROUP_GET, MEMBERS = 0, 1


@pytest.fixture
def provider(server):
    return AzureProvider(server.provider_options())


def spec_with(reservation, **pool_changes):
    pool = {"name": "gpu", "count": 2, "gpu": {"type": "nvidia-t4"}, "zones": ["1"], "labels": {"role": "gpu"},
            "reservation": reservation}
    pool.update(pool_changes)
    return parse_cluster_spec({"name": "llmops-ut", "region": "eastus", "node_pools": [pool]})


def play(server, count=None, change=None):
    """The scenario's first `count` exchanges (all by default), `change` applied to the list first."""
    exchanges = copy.deepcopy(load_scenario("reservation_group", server.base))
    if change:
        change(exchanges)
    server.play("skus_eastus")
    server.exchanges.extend(exchanges[:count])


def puts(server):
    return [e for e in server.played if e["method"] == "PUT"]


def test_a_pool_on_a_capacity_reservation_group_is_created_from_it(server, provider):
    play(server)
    spec = spec_with({"name": GROUP})
    provider.validate(spec)
    provider.create_node_pool(spec, spec.pool("gpu"))
    assert [(a["instance_type"], a["zones"], a["outcome"]) for a in provider.attempts] == [
        ("Standard_NC4as_T4_v3", ["1"], "created")]
    assert len(puts(server)) == 1


def member(exchanges):
    return exchanges[MEMBERS]["response"]["body"]["value"][0]


def used_up(exchanges):
    view = exchanges[GROUP_GET]["response"]["body"]["properties"]["instanceView"]["capacityReservations"][0]
    view["utilizationInfo"]["virtualMachinesAllocated"] = [{"id": SUBSCRIPTION + "/vm-%d" % i} for i in range(1)]


def pool_absent(base):
    """AgentPools_Get answering 404: the pool is new, so the group must have room for it."""
    return {"api": "Microsoft.ContainerService 2026-08-01 AgentPools_Get",
            "request": {"method": "GET", "path": SUBSCRIPTION + "/resourceGroups/llmops-ut-rg/providers/"
                        "Microsoft.ContainerService/managedClusters/llmops-ut/agentPools/gpu"},
            "response": {"status": 404, "body": {"error": {"code": "NotFound", "message": "agent pool gpu not found"}}}}


@pytest.mark.parametrize("change, pool_changes, words", [
    (lambda ex: member(ex)["sku"].update(name="Standard_NC24ads_A100_v4"), {},
     "it holds Standard_NC24ads_A100_v4 (Succeeded), the pool runs Standard_NC4as_T4_v3"),
    (lambda ex: member(ex)["properties"].update(provisioningState="Creating"), {}, "(Creating)"),
    (None, {"zones": ["3"]}, "the group is in zones 1, 2, the pool in 3"),
    (None, {"zones": []}, "the group is zonal (zones 1, 2), the pool names no zones"),
])
def test_a_group_that_cannot_hold_the_pool_is_refused_before_any_put(server, provider, change, pool_changes, words):
    play(server, 2, change)
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with({"name": GROUP}, **pool_changes))
    assert err.value.field == "node_pools[0].reservation.name"
    assert words in str(err.value)
    assert puts(server) == []


def test_a_group_with_too_few_free_vms_is_refused_for_a_new_pool(server, provider):
    play(server, 2, used_up)
    server.exchanges.append(pool_absent(server.base))
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with({"name": GROUP}))
    assert err.value.field == "node_pools[0].reservation.name"
    assert "1 Standard_NC4as_T4_v3 VMs of it are free, the pool needs 2" in str(err.value)
    assert puts(server) == []


def test_a_group_that_does_not_exist_names_the_field(server, provider):
    def missing(exchanges):
        exchanges[GROUP_GET]["response"] = {"status": 404, "body": {"error": {
            "code": "ResourceNotFound", "message": "The Resource 'Microsoft.Compute/capacityReservationGroups/llmops-t4' "
            "under resource group 'llmops-capacity-rg' was not found."}}}
    play(server, 1, missing)
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with({"name": GROUP}))
    assert err.value.field == "node_pools[0].reservation.name"
    assert "capacity reservation group llmops-t4 does not exist in resource group llmops-capacity-rg" in str(err.value)


@pytest.mark.parametrize("reservation, field", [
    ({"type": "capacity_block", "name": "cr-0a1b2c3d4e5f60001"}, "node_pools[0].reservation.type"),
    ({"name": "llmops-t4"}, "node_pools[0].reservation.name"),
    ({"name": GROUP.replace("00000000abcd", "00000000ffff")}, "node_pools[0].reservation.name"),
])
def test_what_aks_cannot_use_is_refused_naming_the_field(server, provider, reservation, field):
    server.play("skus_eastus")
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with(reservation))
    assert err.value.field == field
