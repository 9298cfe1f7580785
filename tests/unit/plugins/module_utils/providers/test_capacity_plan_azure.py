"""The priced capacity plan on Azure: resource SKUs and usages from recorded ARM exchanges (the real SDK
clients over HTTPS, azure_fixture_server.py), prices from a loopback Retail Prices API in the documented
shape (azure_prices_server.py), the plan itself (capacity_plan.plan_capacity) unmocked."""
import json

import pytest

from azure_fixture_server import TOKEN
from azure_prices_server import RetailPricesServer, load_items

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.capacity_plan import PlanEntry, plan_capacity

pytestmark = pytest.mark.usefixtures("clean_azure_env")


@pytest.fixture
def prices():
    srv = RetailPricesServer(load_items("eastus"))
    yield srv
    srv.close()
    assert srv.errors == [], srv.errors


def plan(server, prices, capacity_type="on_demand", regions=("eastus",), **extra):
    provider = AzureProvider(server.provider_options(retail_prices_url=prices.url))
    return plan_capacity([PlanEntry("", provider, list(regions))], ["nvidia-t4"], 1, capacity_type, **extra)


def test_on_demand_linux_prices_rank_the_offers(server, prices):
    server.play("skus_eastus", "usages_eastus")
    result = plan(server, prices, nodes=2)
    offers = result["offers"]
    assert [(o["instance_type"], o["zones"], o["price_per_hour"]) for o in offers] == [
        ("Standard_NC4as_T4_v3", ["1", "2"], 0.5), ("Standard_NC8as_T4_v3", ["1", "2", "3"], 0.7)]
    first = offers[0]
    assert first["price_source"].startswith("Azure Retail Prices API (meter 00000000-0000-0000-0000-000000000a01")
    # Family quota 24 vCPUs, 4 used: 20 left; two NC4as nodes need 8.
    assert (first["quota_headroom"], first["quota_per_node"], first["fits_quota"]) == (20, 4.0, True)
    assert result["cheapest"] == first
    # One documented filter per size and region; NextPageLink was followed (one item per page here).
    assert prices.filters[0] == ("serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and armSkuName eq "
                                 "'Standard_NC4as_T4_v3' and priceType eq 'Consumption'")
    assert prices.pages > len(prices.filters)


def test_spot_takes_the_linux_spot_row_not_low_priority(server, prices):
    server.play("skus_eastus", "usages_eastus")
    result = plan(server, prices, capacity_type="spot")
    assert [(o["instance_type"], o["price_per_hour"]) for o in result["offers"]] == [
        ("Standard_NC8as_T4_v3", 0.08), ("Standard_NC4as_T4_v3", 0.1)]
    assert result["offers"][0]["quota_name"] == "lowPriorityCores"
    # Ranked by price per GPU-hour: the bigger size is cheaper here, and comes first.
    assert result["cheapest"]["instance_type"] == "Standard_NC8as_T4_v3"


def test_retail_prices_down_means_price_unknown(server, prices):
    server.play("skus_eastus", "usages_eastus")
    prices.status = 503
    result = plan(server, prices)
    assert all(o["price_per_hour"] is None for o in result["offers"])
    assert all("503" in o["price_unknown_reason"] for o in result["offers"])
    assert result["cheapest"] is None
    assert sum("price unknown" in e for e in result["events"]) == 2


def test_two_different_linux_rates_are_not_guessed(server, prices):
    server.play("skus_eastus", "usages_eastus")
    twin = dict(load_items("eastus")[0], retailPrice=0.55, unitPrice=0.55, meterId="00000000-0000-0000-0000-000000000b01")
    prices.items.append(twin)
    result = plan(server, prices)
    nc4 = [o for o in result["offers"] if o["instance_type"] == "Standard_NC4as_T4_v3"][0]
    assert nc4["price_per_hour"] is None and result["cheapest"]["instance_type"] == "Standard_NC8as_T4_v3"
    assert "2 different Linux rates (0.5, 0.55)" in nc4["price_unknown_reason"]
    assert any("price unknown" in e and "different Linux rates" in e for e in result["events"])


def test_a_region_azure_does_not_have_names_the_field(server, prices):
    server.play("skus_unknown_region")
    with pytest.raises(SpecError) as err:
        plan(server, prices, regions=("eastus9",))
    assert err.value.field == "regions[0]" and "eastus9 is not a region azure has" in str(err.value)
    assert prices.filters == []


def test_module_ranks_aws_and_azure_together_in_check_mode(aws_backend, run_module, price_list, server, prices):
    """gpu_capacity_info with provider aws and clouds [azure]: one ranking over both clouds' offers."""
    from ansible_collections.llmops.platform.plugins.modules import gpu_capacity_info

    server.play("skus_eastus", "usages_eastus")
    before = len(aws_backend.proxy.requests)
    result = run_module(gpu_capacity_info.main, {
        "provider": "aws", "regions": ["us-east-1"], "provider_options": aws_backend.provider_options(),
        "gpu": {"type": "nvidia-t4"}, "clouds": [
            {"provider": "azure", "regions": ["eastus"],
             "provider_options": server.provider_options(retail_prices_url=prices.url)}]}, check_mode=True)
    assert not result.failed, result
    assert {o["cloud"] for o in result["offers"]} == {"aws", "azure"}
    # The Price List fixture has no g4dn rows: AWS's offers are unpriced and ranked after Azure's priced ones.
    assert [o["cloud"] for o in result["offers"][:2]] == ["azure", "azure"]
    assert all(o["price_per_hour"] is None for o in result["offers"][2:])
    assert result["cheapest"]["instance_type"] == "Standard_NC4as_T4_v3"
    assert aws_backend.proxy.mutations(before) == []
    # A credential inside clouds[].provider_options is masked like the top-level provider_options.
    assert TOKEN not in json.dumps(result) and "testing" not in json.dumps(result["invocation"])
