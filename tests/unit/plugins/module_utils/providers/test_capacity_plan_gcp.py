"""The priced capacity plan on GCP: offers from Compute (acceleratorTypes, regions), machine shapes from
machineTypes.list and prices from the Cloud Billing Catalog (services.skus.list), all as recorded REST
exchanges (fixtures/gcp_plan/*.json) served by gcp_fixture_server.py to the real AuthorizedSession.

Every request is checked against the discovery document of its API (compute.v1, cloudbilling.v1, shipped
with google-api-python-client), and so is every recorded response body, against the method's response
schema: a fixture with a field the API does not have fails here.
"""
import json

import pytest
import schema_check

from gcp_fixture_server import FIXTURES, REGION, FixtureServer, provider_options

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.capacity_plan import PlanEntry, plan_capacity
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp import GcpProvider

PLAN_FIXTURES = FIXTURES.parent / "gcp_plan"
RESPONSES = {"regions.list": ("compute.v1", "RegionList"), "machineTypes.list": ("compute.v1", "MachineTypeList"),
             "services.skus.list": ("cloudbilling.v1", "ListSkusResponse"),
             "acceleratorTypes.aggregatedList": ("compute.v1", "AcceleratorTypeAggregatedList"),
             "regions.get": ("compute.v1", "Region")}


def exchanges(name):
    return json.loads((PLAN_FIXTURES / ("%s.json" % name)).read_text())["exchanges"]


def serve(request, name):
    server = FixtureServer(exchanges(name), name=name).start()

    def finish():
        server.stop()
        server.check_done()

    request.addfinalizer(finish)
    options = provider_options(server, billing_endpoint=server.url)
    return GcpProvider(options, REGION), server


@pytest.mark.parametrize("name", ["plan_l4", "billing_disabled"])
def test_recorded_answers_fit_the_discovery_documents(name):
    problems = []
    for exchange in exchanges(name):
        document, schema = RESPONSES[exchange["api"].split(" ")[1]]
        if exchange["response"].get("status", 200) == 200:
            problems += schema_check.discovery_body_problems(schema_check.load_discovery(document), schema,
                                                             exchange["response"]["json"], where=exchange["api"])
    assert problems == []


def test_skus_list_query_uses_only_documented_parameters():
    method = schema_check.load_discovery("cloudbilling.v1")["resources"]["services"]["resources"]["skus"]["methods"]["list"]
    for exchange in exchanges("plan_l4"):
        if exchange["api"].endswith("services.skus.list"):
            assert set(exchange["request"]["query"]) <= set(method["parameters"])


def test_gpu_and_machine_skus_price_each_shape_and_rank_them(request):
    provider, dummy = serve(request, "plan_l4")
    result = plan_capacity([PlanEntry("", provider, ["us-central1", "europe-west4"])], ["nvidia-l4"], 1, "both")
    offers = result["offers"]
    central = [o for o in offers if o["region"] == "us-central1" and o["capacity_type"] == "on_demand"]
    # 4 vCPU x 0.025 + 16 GiB x 0.003 + 1 GPU x 0.56 (the fixture's SKUs).
    first = [o for o in central if o["instance_type"] == "g2-standard-4"][0]
    assert first["price_per_hour"] == pytest.approx(0.708) and first["zones"] == ["us-central1-a", "us-central1-c"]
    assert "T001-0000-0001" in first["price_source"] and "4 vCPU, 16 GiB, 1 GPU" in first["price_source"]
    spot = [o for o in offers if o["instance_type"] == "g2-standard-4" and o["capacity_type"] == "spot"][0]
    assert spot["price_per_hour"] == pytest.approx(0.252) and spot["quota_name"] == "PREEMPTIBLE_NVIDIA_L4_GPUS"
    # Spot first (cheapest per GPU-hour), then on demand; europe-west4 (no GPU SKU) after every priced offer.
    assert result["cheapest"] == spot == offers[0]
    west = [o for o in offers if o["region"] == "europe-west4"]
    assert west and all(o["price_per_hour"] is None for o in west)
    assert offers[-len(west):] == west
    assert "0 OnDemand SKUs for 'Nvidia L4 GPU' in europe-west4" in west[0]["price_unknown_reason"]
    assert first["quota_headroom"] == 7.0 and first["fits_quota"] is True


def test_billing_api_disabled_means_price_unknown(request):
    provider, dummy = serve(request, "billing_disabled")
    result = plan_capacity([PlanEntry("", provider, ["us-central1"])], ["nvidia-l4"], 1)
    assert result["offers"] and all(o["price_per_hour"] is None for o in result["offers"])
    unknown = [e for e in result["events"] if "price unknown" in e]
    assert len(unknown) == len(result["offers"]) and all("Cloud Billing API has not been used" in e for e in unknown)
    assert result["cheapest"] is None


def test_a_region_gcp_does_not_have_names_the_field(request):
    server = FixtureServer(exchanges("plan_l4")[:1], name="regions_only").start()
    request.addfinalizer(server.stop)
    provider = GcpProvider(provider_options(server), REGION)
    with pytest.raises(SpecError) as err:
        plan_capacity([PlanEntry("clouds[1].", provider, ["us-central1", "us-central9"])], ["nvidia-l4"], 1)
    assert err.value.field == "clouds[1].regions[1]" and "us-central9 is not a region gcp has" in str(err.value)
    assert "us-central1" in err.value.hint
    server.check_done()
