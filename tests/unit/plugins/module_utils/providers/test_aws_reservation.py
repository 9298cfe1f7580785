"""Reservations and Capacity Blocks on AWS, end to end through gpu_cluster: real boto3 over HTTP to moto.

moto has no DescribeCapacityReservations: the test proxy (aws_backend.py) answers it from
`proxy.capacity_reservations` in the EC2 API's shape, checking each request against botocore's model. The
EKS CreateNodegroup bodies the proxy records are checked against botocore's EKS model; the launch template
data went through boto3's own parameter validation against the EC2 model before it was sent.
"""
import pytest
from aws_backend import REGION, validate_request
# The same `cluster` fixture as the fallback tests: gpu_cluster arguments, the cluster deleted afterwards.
from test_aws_fallback import cluster  # noqa: F401 pylint: disable=unused-import

from ansible_collections.llmops.platform.plugins.modules import gpu_cluster

# A reservation that fits the pool below: an active On-Demand Capacity Reservation for 2 g6.xlarge in us-east-1b.
FITS = {"InstanceType": "g6.xlarge", "InstancePlatform": "Linux/UNIX", "AvailabilityZone": "us-east-1b",
        "State": "active", "TotalInstanceCount": 2, "AvailableInstanceCount": 2, "ReservationType": "default",
        "InstanceMatchCriteria": "targeted", "Tenancy": "default"}


@pytest.fixture
def reservations(aws_backend):
    """The proxy's capacity reservations for one test, cleared after it."""
    yield aws_backend.proxy.capacity_reservations
    aws_backend.proxy.capacity_reservations.clear()
    assert aws_backend.proxy.invalid == [], aws_backend.proxy.invalid


def pool_on(reservation_id, kind="reservation", **extra):
    pool = {"name": "gpu", "count": 2, "gpu": {"type": "nvidia-l4"}, "reservation": {"type": kind, "name": reservation_id}}
    pool.update(extra)
    return pool


def created_group(aws_backend, cluster_name):
    """The CreateNodegroup body the proxy recorded, checked against botocore's EKS model."""
    body = aws_backend.proxy.nodegroup_creates[(cluster_name, "gpu")]
    assert validate_request("CreateNodegroup", dict(body, clusterName=cluster_name)) == ""
    return body


def template_data(aws_backend, body):
    ec2 = aws_backend.client("ec2")
    version = ec2.describe_launch_template_versions(LaunchTemplateId=body["launchTemplate"]["id"],
                                                    Versions=[body["launchTemplate"]["version"]])
    return version["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def test_a_pool_on_a_capacity_reservation_launches_into_it(aws_backend, run_module, cluster, reservations):
    reservations["cr-0a1b2c3d4e5f60001"] = dict(FITS)
    args = cluster("llmops-cr-good", [pool_on("cr-0a1b2c3d4e5f60001")])
    result = run_module(gpu_cluster.main, args)
    assert result["changed"] and not result.failed, result
    body = created_group(aws_backend, "llmops-cr-good")
    assert body["instanceTypes"] == ["g6.xlarge"] and body["capacityType"] == "ON_DEMAND"
    # Only the reservation's zone: an instance launched elsewhere would not draw on it.
    assert set(aws_backend.subnets[s] for s in body["subnets"]) == {"us-east-1b"}
    data = template_data(aws_backend, body)
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": "cr-0a1b2c3d4e5f60001"}}
    assert "InstanceMarketOptions" not in data
    # The pool now holds the reservation's instances: a second run is no change, not "too few free".
    reservations["cr-0a1b2c3d4e5f60001"]["AvailableInstanceCount"] = 0
    again = run_module(gpu_cluster.main, args)
    assert not again.failed and not again["changed"], again


def test_a_pool_on_a_capacity_block_uses_its_market_and_capacity_type(aws_backend, run_module, cluster, reservations):
    reservations["cr-0a1b2c3d4e5f60002"] = dict(FITS, ReservationType="capacity-block")
    args = cluster("llmops-cb-good", [pool_on("cr-0a1b2c3d4e5f60002", "capacity_block")])
    result = run_module(gpu_cluster.main, args)
    assert result["changed"] and not result.failed, result
    body = created_group(aws_backend, "llmops-cb-good")
    assert body["capacityType"] == "CAPACITY_BLOCK"
    data = template_data(aws_backend, body)
    assert data["InstanceMarketOptions"] == {"MarketType": "capacity-block"}
    assert data["CapacityReservationSpecification"]["CapacityReservationTarget"] == {
        "CapacityReservationId": "cr-0a1b2c3d4e5f60002"}
    # EKS reports CAPACITY_BLOCK: what the pool asked for, so not drift.
    again = run_module(gpu_cluster.main, args)
    assert not again.failed and not again["changed"], again


@pytest.mark.parametrize("changes, kind, words", [
    ({"InstanceType": "g5.xlarge"}, "reservation", "it holds g5.xlarge, the pool runs g6.xlarge"),
    ({"AvailabilityZone": "us-east-1d"}, "reservation", "it is in us-east-1d, the pool's subnets are in"),
    ({"State": "expired"}, "reservation", "its state is expired, not active"),
    ({"State": "scheduled", "ReservationType": "capacity-block"}, "capacity_block", "the block has not started"),
    ({"InstancePlatform": "Windows"}, "reservation", "its platform is Windows"),
    ({"AvailableInstanceCount": 1}, "reservation", "1 of its 2 instances are free, the pool needs 2"),
    ({}, "capacity_block", "it is a default reservation, the pool names a capacity_block"),
])
def test_a_reservation_that_cannot_hold_the_pool_is_refused_before_anything_is_sent(
        aws_backend, run_module, cluster, reservations, changes, kind, words):
    reservations["cr-0a1b2c3d4e5f60003"] = dict(FITS, **changes)
    since = len(aws_backend.proxy.requests)
    result = run_module(gpu_cluster.main, cluster("llmops-cr-bad", [pool_on("cr-0a1b2c3d4e5f60003", kind)]))
    assert result.failed and "node_pools[0].reservation.name" in result["msg"] and words in result["msg"], result
    assert aws_backend.proxy.mutations(since) == [], "a create was sent before the reservation was checked"


def test_a_reservation_that_does_not_exist_names_the_field(aws_backend, run_module, cluster, reservations):
    since = len(aws_backend.proxy.requests)
    result = run_module(gpu_cluster.main, cluster("llmops-cr-none", [pool_on("cr-0ffffffffffffffff")]))
    assert result.failed and "node_pools[0].reservation.name" in result["msg"], result
    assert "cr-0ffffffffffffffff does not exist in %s" % REGION in result["msg"]
    assert aws_backend.proxy.mutations(since) == []
