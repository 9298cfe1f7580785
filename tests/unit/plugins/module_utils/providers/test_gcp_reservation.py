"""Reservations and flex-start on GKE against recorded GKE v1 / Compute v1 exchanges (fixtures/gcp/reservation.json).

The fixture server checks every request against the container.v1 / compute.v1 discovery documents that ship
with google-api-python-client (NodeConfig.reservationAffinity, NodeConfig.flexStart, reservations.get), fails
the test on any request it did not expect, and on any exchange left unplayed: a refusal that sent a create
would fail there, and the tests also assert that no POST was seen.
"""
import copy

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp import GcpProvider

from gcp_fixture_server import REGION, FixtureServer, load_scenario, provider_options

ACCEL, RESERVATION, CLUSTER, CREATE, DONE = range(5)


def serve(request, exchanges):
    server = FixtureServer(exchanges, name="reservation").start()

    def finish():
        server.stop()
        server.check_done()
    request.addfinalizer(finish)
    return GcpProvider(provider_options(server), REGION), server


def exchanges(*picked, **reservation_changes):
    """The scenario's exchanges `picked`, with the reservation's specificReservation fields changed."""
    recorded = load_scenario("reservation")["exchanges"]
    chosen = [copy.deepcopy(recorded[i]) for i in picked]
    for exchange in chosen:
        if exchange["api"].endswith("reservations.get"):
            answer = exchange["response"]["json"]
            for key, value in reservation_changes.items():
                if key == "status":
                    answer["status"] = value
                else:
                    answer["specificReservation"][key] = value
    return chosen


def spec_with(reservation, **pool_changes):
    pool = {"name": "gpu", "count": 2, "gpu": {"type": "nvidia-l4", "count": 1}, "zones": ["us-central1-b"],
            "reservation": reservation}
    pool.update(pool_changes)
    return parse_cluster_spec({"name": "llmops-dev", "region": REGION, "node_pools": [pool]})


def posts(server):
    return [path for method, path, dummy, dummy2 in server.seen if method == "POST"]


def test_a_pool_on_a_reservation_is_created_with_its_affinity(request):
    provider, server = serve(request, exchanges(ACCEL, RESERVATION, CLUSTER, CREATE, DONE))
    spec = spec_with({"name": "llmops-l4"})
    provider.validate(spec)
    provider.create_node_pool(spec, spec.pool("gpu"))
    body = [b for m, dummy, dummy2, b in server.seen if m == "POST"][0]["nodePool"]
    assert body["config"]["reservationAffinity"] == {"consumeReservationType": "SPECIFIC_RESERVATION",
                                                     "key": "compute.googleapis.com/reservation-name",
                                                     "values": ["llmops-l4"]}
    assert [(a["instance_type"], a["zones"], a["outcome"]) for a in provider.attempts] == [
        ("g2-standard-4", ["us-central1-b"], "created")]


@pytest.mark.parametrize("changes, picked, words", [
    ({"status": "CREATING"}, (ACCEL, RESERVATION), "its status is CREATING, not READY"),
    ({"instanceProperties": {"machineType": "a2-highgpu-1g", "guestAccelerators": [
        {"acceleratorType": "nvidia-tesla-a100", "acceleratorCount": 1}]}}, (ACCEL, RESERVATION),
     "it holds a2-highgpu-1g, the pool runs g2-standard-4"),
    ({"instanceProperties": {"machineType": "g2-standard-4", "guestAccelerators": [
        {"acceleratorType": "nvidia-l4", "acceleratorCount": 2}]}}, (ACCEL, RESERVATION),
     "its GPUs are 2 x nvidia-l4, the pool needs 1 x nvidia-l4"),
    # Too few free VMs: the cluster is read to tell a new pool (refused) from one already on it.
    ({"inUseCount": "1"}, (ACCEL, RESERVATION, CLUSTER), "1 of its 2 VMs are free, the pool needs 2"),
])
def test_a_reservation_that_cannot_hold_the_pool_is_refused_before_any_create(request, changes, picked, words):
    provider, server = serve(request, exchanges(*picked, **changes))
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with({"name": "llmops-l4"}))
    assert err.value.field == "node_pools[0].reservation.name"
    assert words in str(err.value)
    assert posts(server) == []


def test_a_reservation_that_does_not_exist_names_the_field(request):
    missing = exchanges(ACCEL, RESERVATION)
    missing[1]["response"] = {"status": 404, "json": {"error": {
        "code": 404, "status": "NOT_FOUND",
        "message": "The resource 'projects/llmops-test/zones/us-central1-b/reservations/llmops-l4' was not found"}}}
    provider, server = serve(request, missing)
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with({"name": "llmops-l4"}))
    assert err.value.field == "node_pools[0].reservation.name"
    assert "reservation llmops-l4 does not exist in us-central1-b" in str(err.value)
    assert posts(server) == []


def test_a_flex_start_pool_is_created_autoscaled_with_flex_start_vms(request):
    create = exchanges(CREATE)[0]
    create["request"]["body"] = {"nodePool": {"name": "gpu", "initialNodeCount": 0, "config": {
        "machineType": "g2-standard-4", "flexStart": True,
        "reservationAffinity": {"consumeReservationType": "NO_RESERVATION"}},
        "management": {"autoRepair": False},
        "autoscaling": {"enabled": True, "minNodeCount": 0, "maxNodeCount": 2, "locationPolicy": "ANY"}}}
    provider, server = serve(request, exchanges(ACCEL, CLUSTER) + [create] + exchanges(DONE))
    spec = spec_with({"type": "flex_start"}, count=0, min_count=0, max_count=2)
    provider.validate(spec)
    provider.create_node_pool(spec, spec.pool("gpu"))
    assert len(posts(server)) == 1


@pytest.mark.parametrize("reservation, changes, field", [
    ({"type": "capacity_block", "name": "cr-0a1b2c3d4e5f60001"}, {}, "node_pools[0].reservation.type"),
    ({"type": "flex_start"}, {"count": 0}, "node_pools[0].max_count"),
    ({"name": "projects/other/reservations/x"}, {}, "node_pools[0].reservation.name"),
])
def test_what_gke_cannot_use_is_refused_naming_the_field(request, reservation, changes, field):
    provider, server = serve(request, exchanges(ACCEL))
    with pytest.raises(SpecError) as err:
        provider.validate(spec_with(reservation, **changes))
    assert err.value.field == field
