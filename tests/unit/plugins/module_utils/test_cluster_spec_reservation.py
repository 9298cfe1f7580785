"""node_pools[].reservation as cluster_spec parses it: the shape only (each provider checks it against the cloud)."""
import pytest

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import ReservationSpec, parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError


def pool_with(reservation, **extra):
    pool = {"name": "gpu", "gpu": {"type": "nvidia-h100"}, "reservation": reservation}
    pool.update(extra)
    return parse_cluster_spec({"name": "c", "node_pools": [pool]}).node_pools[0]


def test_a_named_reservation_defaults_to_type_reservation():
    assert pool_with({"name": " cr-0123 "}).reservation == ReservationSpec(type="reservation", name="cr-0123")
    assert pool_with({"type": "capacity_block", "name": "cr-1"}).reservation.type == "capacity_block"
    assert pool_with({"type": "flex_start"}).reservation == ReservationSpec(type="flex_start", name=None)


@pytest.mark.parametrize("reservation, extra, field, words", [
    ({"type": "reservation"}, {}, "node_pools[0].reservation.name", "is required for a reservation"),
    ({"type": "capacity_block", "name": ""}, {}, "node_pools[0].reservation.name", "is required for a capacity_block"),
    ({"type": "flex_start", "name": "x"}, {}, "node_pools[0].reservation.name", "is not used by flex_start"),
    ({"type": "odcr", "name": "x"}, {}, "node_pools[0].reservation.type", "must be one of reservation, capacity_block"),
    ({"name": "x", "zone": "a"}, {}, "node_pools[0].reservation.zone", "is not a reservation key"),
    ("cr-1", {}, "node_pools[0].reservation", "must be a dictionary"),
    ({"name": "x"}, {"capacity_type": "spot"}, "node_pools[0].reservation.type", "needs capacity_type on_demand"),
    ({"name": "x"}, {"fallback": {"attempt_timeout": 600}}, "node_pools[0].reservation", "cannot be combined"),
])
def test_a_bad_reservation_names_the_field(reservation, extra, field, words):
    with pytest.raises(SpecError) as err:
        pool_with(reservation, **extra)
    assert err.value.field == field and words in str(err.value)


def test_a_capacity_block_pool_reported_as_capacity_block_is_not_drift():
    block = pool_with({"type": "capacity_block", "name": "cr-1"})
    assert block.accepts("capacity_type", "capacity_block")
    assert not pool_with({"name": "cr-1"}).accepts("capacity_type", "capacity_block")
    assert not pool_with({"type": "capacity_block", "name": "cr-1"}).accepts("capacity_type", "spot")
