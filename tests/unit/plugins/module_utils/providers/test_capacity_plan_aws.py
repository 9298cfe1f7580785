"""The priced capacity plan (gpu_capacity_info) on AWS, end to end: real boto3 over HTTP to moto.

moto serves the offerings, instance types and spot price history (DescribeSpotPriceHistory: moto's own
answer, one row per zone). It has no Price List Query API, so the test proxy answers GetProducts in the
documented shape after checking every request against botocore's service model (aws_price_list.py;
the `price_list` fixture is in conftest.py). Its rates are test data, not AWS's prices.
"""
import pytest

from ansible_collections.llmops.platform.plugins.modules import gpu_capacity_info


def plan_args(backend, **extra):
    args = {"provider": "aws", "regions": ["us-east-1"], "gpu": {"types": ["nvidia-l4", "nvidia-l40s"]},
            "provider_options": backend.provider_options()}
    args.update(extra)
    return args


def test_on_demand_offers_are_priced_from_the_price_list_and_ranked(aws_backend, run_module, price_list):
    before = len(aws_backend.proxy.requests)
    result = run_module(gpu_capacity_info.main, plan_args(aws_backend, nodes=2), check_mode=True)
    assert not result.failed, result
    offers = result["offers"]
    priced = [o for o in offers if o["price_per_hour"] is not None]
    assert [o["instance_type"] for o in priced] == ["g6.xlarge", "g6.2xlarge", "g6e.xlarge"]
    first = offers[0]
    assert first["cloud"] == "aws" and first["region"] == "us-east-1" and first["capacity_type"] == "on_demand"
    assert first["zones"] == sorted(first["zones"]) and first["zones"][0] == "us-east-1a"
    assert (first["price_per_hour"], first["price_per_gpu_hour"], first["price_currency"]) == (0.8, 0.8, "USD")
    assert first["price_source"].startswith("AWS Price List Query API GetProducts") and first["price_read_at"]
    # vCPU quota: 64 vCPUs; two g6.xlarge nodes need 2 x 4.
    assert (first["quota_limit"], first["quota_per_node"], first["fits_quota"]) == (64.0, 4.0, True)
    assert result["cheapest"] == first
    # Types in the catalog without a Price List row come after every priced offer, price null, reason given.
    unpriced = offers[len(priced):]
    assert unpriced and all(o["price_per_gpu_hour"] is None for o in unpriced)
    assert all("no row" in o["price_unknown_reason"] for o in unpriced)
    assert any("price unknown" in e and unpriced[0]["instance_type"] in e for e in result["events"])
    # The documented filters, on the us-east-1 endpoint, one instance type and region at a time.
    sent = dict((f["Field"], f["Value"]) for f in price_list.requests[0]["Filters"])
    assert price_list.requests[0]["ServiceCode"] == "AmazonEC2" and all(
        f["Type"] == "TERM_MATCH" for f in price_list.requests[0]["Filters"])
    assert dict((k, sent[k]) for k in ("regionCode", "operatingSystem", "tenancy", "preInstalledSw", "capacitystatus")) == {
        "regionCode": "us-east-1", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": "Used"}
    assert aws_backend.proxy.mutations(before) == [], "a plan changes nothing"


def test_spot_prices_come_from_spot_price_history(aws_backend, run_module, price_list):
    result = run_module(gpu_capacity_info.main, plan_args(aws_backend, gpu={"type": "nvidia-l4"}, capacity_type="both"))
    assert not result.failed, result
    spot = [o for o in result["offers"] if o["capacity_type"] == "spot"]
    assert spot and all(o["price_source"].startswith("EC2 DescribeSpotPriceHistory") for o in spot)
    ec2 = aws_backend.client("ec2")
    history = ec2.describe_spot_price_history(InstanceTypes=["g6.xlarge"], ProductDescriptions=["Linux/UNIX"])
    expected = dict((r["AvailabilityZone"], float(r["SpotPrice"])) for r in history["SpotPriceHistory"])
    g6 = [o for o in spot if o["instance_type"] == "g6.xlarge"][0]
    assert g6["price_by_zone"] == expected and g6["price_per_hour"] == min(expected.values())
    assert g6["quota_name"].endswith("(L-3819A6DF)") and g6["quota_limit"] == 8.0
    assert {o["capacity_type"] for o in result["offers"]} == {"on_demand", "spot"}
    # Ranked by price per GPU-hour across capacity types: every priced offer is in order.
    prices = [o["price_per_gpu_hour"] for o in result["offers"] if o["price_per_gpu_hour"] is not None]
    assert prices == sorted(prices)
    assert result["cheapest"]["price_per_gpu_hour"] == prices[0]


def test_price_list_unreachable_says_price_unknown_never_a_number(aws_backend, run_module, price_list):
    price_list.denied = True
    result = run_module(gpu_capacity_info.main, plan_args(aws_backend, gpu={"type": "nvidia-l4"}))
    assert not result.failed, result
    assert result["offers"] and all(o["price_per_hour"] is None and o["price_source"] is None for o in result["offers"])
    assert all("AccessDeniedException" in o["price_unknown_reason"] for o in result["offers"])
    assert any("price unknown" in e and "could not be read" in e for e in result["events"])
    assert result["cheapest"] is None
    assert any("no offer meets the request" in e for e in result["events"])


def test_budget_and_quota_decide_the_cheapest(aws_backend, run_module, price_list):
    budget = run_module(gpu_capacity_info.main, plan_args(aws_backend, max_price_per_gpu_hour=0.9))
    assert [o["within_budget"] for o in budget["offers"] if o["price_per_hour"] is not None] == [True, False, False]
    assert budget["cheapest"]["instance_type"] == "g6.xlarge"
    # 17 nodes of 4 vCPUs do not fit 64 vCPUs; 8 vCPU nodes fit still fewer: nothing meets the request.
    crowded = run_module(gpu_capacity_info.main, plan_args(aws_backend, nodes=17))
    assert crowded["offers"][0]["fits_quota"] is False and crowded["cheapest"] is None


@pytest.mark.parametrize("extra, field, words", [
    ({"gpu": {"type": "nvidia-b300"}}, "gpu.type", "nvidia-l4"),
    ({"gpu": {"types": ["nvidia-l4", "nvidia-x9"]}}, "gpu.types[1]", "unknown GPU type"),
    ({"gpu": {"type": "nvidia-l4", "count": 0}}, "gpu.count", "1 or more"),
    ({"nodes": 0}, "nodes", "1 or more"),
    ({"max_price_per_gpu_hour": 0}, "max_price_per_gpu_hour", "above 0"),
    ({"regions": ["us-east-1", "us-east-9"]}, "regions[1]", "not a region aws has"),
    ({"clouds": [{"provider": "aws", "regions": ["mars-north-1"]}]}, "clouds[0].regions[0]", "not a region aws has"),
    ({"clouds": [{"provider": "aws"}]}, "clouds[0].region", "is required"),
])
def test_bad_input_names_the_field_before_any_call(aws_backend, run_module, price_list, extra, field, words):
    before = len(aws_backend.proxy.requests)
    result = run_module(gpu_capacity_info.main, plan_args(aws_backend, **extra))
    assert result.failed and result["msg"].startswith(field + ":"), result["msg"]
    assert words in result["msg"]
    assert aws_backend.proxy.requests[before:] == []


def test_several_clouds_are_ranked_together(aws_backend, run_module, price_list):
    """A second AWS entry (another region) stands in for a second cloud: one ranking over both."""
    result = run_module(gpu_capacity_info.main, plan_args(aws_backend, gpu={"type": "nvidia-l4"}, clouds=[
        {"provider": "aws", "regions": ["eu-west-1"], "provider_options": aws_backend.provider_options()}]))
    assert not result.failed, result
    assert result["regions_without_offers"] == ["eu-west-1"]
    assert result["cheapest"]["region"] == "us-east-1"
