"""The capacity fallback loop of ClusterProvider (create_pool_with_fallback), on its own.

The three clouds' tests (test_aws.py, test_gcp.py, test_azure.py) check it through real exchanges; this
file pins the loop's own rules with a provider whose cloud is a table of answers per placement: the order
of attempts, what a miss's rules_out skips, what pool_missed is told comes next, that an error that
is not about capacity stops the loop at once, the attempt timeout, the pool's fallback (capacity types,
GPU types) and the price ranking.
"""
import time

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import CapacityMiss, ClusterProvider, Price


def _unused(*args):
    raise NotImplementedError("not used by the fallback loop")


class TableProvider(ClusterProvider):
    """Placements are (type, zone); `answers` maps a placement (or (capacity type,) + placement) to "ok",
    "stockout", "quota" (rules out the type's other zones), "pending" (still creating when the attempt's
    time runs out) or an exception to raise. A pool with another GPU type gets `gpu_placements[type]`."""

    name = "table"

    def __init__(self, placements, answers):
        super(TableProvider, self).__init__({})
        self.placements, self.answers, self.tried, self.told = placements, answers, [], []
        self.delay = 0
        self.gpu_placements, self.prices, self.deleted, self.bounds = {}, None, [], []

    def pool_placements(self, spec, pool):
        assert spec.pool(pool.name) is pool, "the provider sees the pool as part of its spec"
        if pool.gpu and pool.gpu.type in self.gpu_placements:
            return list(self.gpu_placements[pool.gpu.type])
        return list(self.placements)

    def try_pool_placement(self, spec, pool, placement):
        self.tried.append(placement if pool.capacity_type == "on_demand" else (pool.capacity_type,) + placement)
        self.bounds.append(self.operation_timeout)
        time.sleep(self.delay)
        answer = self.answers.get((pool.capacity_type,) + placement, self.answers.get(placement, "ok"))
        if isinstance(answer, Exception):
            raise answer
        if answer == "pending":
            time.sleep(self.operation_timeout)
            raise WaitTimeout("still creating %s" % (placement,), code="WaitTimeout")
        if answer == "ok":
            return None
        miss = CapacityMiss(code=answer.upper(), reason="%s in %s: %s" % (placement + (answer,)))
        if answer == "quota":
            miss.rules_out = lambda candidate: candidate[0] == placement[0]
        return miss

    def placement_fields(self, placement):
        return {"instance_type": placement[0], "zones": [placement[1]]}

    def pool_missed(self, spec, pool, placement, miss, following):
        self.told.append((placement, following))

    def pool_placed(self, spec, pool, placement, misses):
        self.record("placed %s in %s after %d misses" % (placement + (len(misses),)))

    def gpu_prices(self, region, instance_types, capacity_type="on_demand"):
        if self.prices is None:
            raise ProviderError("price source unreachable", code="Unreachable")
        return dict((t, Price(per_hour=self.prices[t], source="table", read_at="now"))
                    for t in instance_types if t in self.prices)

    def delete_node_pool(self, cluster_name, pool_name):
        self.deleted.append(pool_name)

    # The rest of the interface is not used by the loop.
    get_cluster = create_cluster = delete_cluster = create_node_pool = update_node_pool = \
        wait_for_cluster = list_nodes = _unused


def pool_spec(**pool):
    """A real ClusterSpec (parsed and checked as gpu_cluster does) and its pool named gpu."""
    spec = parse_cluster_spec({"name": "c", "region": "r1", "node_pools": [dict({"name": "gpu"}, **pool)]})
    return spec, spec.node_pools[0]


PLACEMENTS = [("a", "z1"), ("a", "z2"), ("a", "z3"), ("b", "z1"), ("b", "z2")]


def test_a_stockout_moves_on_and_a_quota_miss_skips_the_type():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): "quota", ("b", "z1"): "stockout"})
    assert provider.create_pool_with_fallback(*pool_spec()) == ("b", "z2")
    assert provider.tried == [("a", "z1"), ("a", "z2"), ("b", "z1"), ("b", "z2")]  # a/z3 shares a's quota
    assert provider.told == [(("a", "z1"), ("a", "z2")), (("a", "z2"), ("b", "z1")), (("b", "z1"), ("b", "z2"))]
    assert provider.events == ["placed b in z2 after 3 misses"]


def test_every_placement_missing_raises_with_the_last_code():
    provider = TableProvider(PLACEMENTS[:2], {("a", "z1"): "quota", ("a", "z2"): "stockout"})
    with pytest.raises(ProviderError) as err:
        provider.create_pool_with_fallback(*pool_spec())
    assert provider.tried == [("a", "z1")]
    assert provider.told == [(("a", "z1"), None)]
    assert err.value.code == "QUOTA" and "a in z1: quota" in err.value.message and "node_pool/gpu" in err.value.message


def test_an_error_that_is_not_about_capacity_stops_the_loop():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): ProviderError("denied", code="AuthorizationFailed")})
    with pytest.raises(ProviderError) as err:
        provider.create_pool_with_fallback(*pool_spec())
    assert err.value.code == "AuthorizationFailed"
    assert provider.tried == [("a", "z1"), ("a", "z2")] and provider.events == []


def test_every_attempt_is_traced_with_outcome_error_and_seconds():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): "quota", ("b", "z1"): "stockout"})
    provider.delay = 0.05
    provider.create_pool_with_fallback(*pool_spec())
    trace = [(a["instance_type"], a["zones"], a["outcome"], a["code"]) for a in provider.attempts]
    assert trace == [("a", ["z1"], "no_capacity", "STOCKOUT"), ("a", ["z2"], "no_capacity", "QUOTA"),
                     ("a", ["z3"], "skipped", "QUOTA"), ("b", ["z1"], "no_capacity", "STOCKOUT"),
                     ("b", ["z2"], "created", None)]
    assert provider.attempts[0]["error"] == "a in z1: stockout" and provider.attempts[0]["pool"] == "gpu"
    assert provider.attempts[2]["error"] == "ruled out by an earlier answer: a in z2: quota"
    # Tried placements took the cloud's time; a skipped one sent nothing and took none.
    assert all(a["seconds"] >= 0.05 for a in provider.attempts if a["outcome"] != "skipped")
    assert provider.attempts[2]["seconds"] == 0.0


def test_an_error_that_stops_the_loop_is_the_last_attempt_traced():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): ProviderError("denied", code="AuthorizationFailed")})
    with pytest.raises(ProviderError):
        provider.create_pool_with_fallback(*pool_spec())
    assert [(a["outcome"], a["code"], a["error"]) for a in provider.attempts] == [
        ("no_capacity", "STOCKOUT", "a in z1: stockout"), ("failed", "AuthorizationFailed", "denied")]


def test_an_attempt_pending_past_attempt_timeout_is_abandoned_and_the_next_tried():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "pending"})
    provider.operation_timeout = 30
    spec, pool = pool_spec(fallback={"attempt_timeout": 1})
    assert provider.create_pool_with_fallback(spec, pool) == ("a", "z2")
    # Each attempt is bounded by attempt_timeout; the one that ran past it had its half-made pool deleted.
    assert provider.bounds == [1, 1] and provider.deleted == ["gpu"]
    assert [(a["zones"], a["outcome"], a["code"]) for a in provider.attempts] == [
        (["z1"], "timed_out", "AttemptTimeout"), (["z2"], "created", None)]
    assert provider.attempts[0]["seconds"] >= 1 and provider.told == [(("a", "z1"), ("a", "z2"))]
    assert provider.operation_timeout == 30, "the overall bound is restored"


def test_pending_at_the_overall_deadline_is_a_wait_timeout_and_nothing_is_deleted():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "pending"})
    provider.operation_timeout = 1
    spec, pool = pool_spec(fallback={"attempt_timeout": 5})
    with pytest.raises(WaitTimeout):
        provider.create_pool_with_fallback(spec, pool)
    assert provider.deleted == [] and [a["outcome"] for a in provider.attempts] == ["failed"]


def test_spot_falls_back_to_on_demand_and_a_spot_quota_does_not_rule_out_on_demand():
    provider = TableProvider(PLACEMENTS[:2], {("spot", "a", "z1"): "quota"})
    spec, pool = pool_spec(capacity_type="spot", fallback={"capacity_types": ["spot", "on_demand"]})
    assert provider.create_pool_with_fallback(spec, pool) == ("a", "z1")
    assert provider.tried == [("spot", "a", "z1"), ("a", "z1")]
    assert [(a["capacity_type"], a["zones"], a["outcome"]) for a in provider.attempts] == [
        ("spot", ["z1"], "no_capacity"), ("spot", ["z2"], "skipped"), ("on_demand", ["z1"], "created")]
    assert "node_pool/gpu: created as on_demand (allowed by its fallback)" in provider.events


def test_other_gpu_types_come_after_the_pools_own_and_their_types_follow_the_price_ranking():
    provider = TableProvider([("a", "z1")], {("a", "z1"): "stockout", ("l4-big", "z1"): "stockout"})
    provider.gpu_placements["nvidia-l4"] = [("l4-small", "z1"), ("l4-big", "z1"), ("l4-unpriced", "z1")]
    provider.prices = {"l4-small": 2.0, "l4-big": 0.5}
    spec, pool = pool_spec(gpu={"type": "nvidia-t4"}, fallback={"gpu_types": ["nvidia-l4"]})
    assert provider.create_pool_with_fallback(spec, pool) == ("l4-small", "z1")
    # Cheapest per GPU-hour first, unknown prices last; the pool's own GPU type before any other.
    assert provider.tried == [("a", "z1"), ("l4-big", "z1"), ("l4-small", "z1")]
    assert [a["gpu_type"] for a in provider.attempts] == ["nvidia-t4", "nvidia-l4", "nvidia-l4"]
    planned = TableProvider([("a", "z1")], {})
    planned.gpu_placements, planned.prices = provider.gpu_placements, provider.prices
    assert [(a["instance_type"], a["outcome"]) for a in planned.planned_attempts(spec, pool)] == [
        ("a", "planned"), ("l4-big", "planned"), ("l4-small", "planned"), ("l4-unpriced", "planned")]
    assert planned.tried == [], "planning sends nothing"


def test_without_prices_the_catalog_order_stays_and_the_event_says_why():
    provider = TableProvider([], {})
    provider.gpu_placements["nvidia-l4"] = [("l4-small", "z1"), ("l4-big", "z1")]
    spec, pool = pool_spec(gpu={"type": "nvidia-l4"}, fallback={"capacity_types": ["on_demand"]})
    assert [a["instance_type"] for a in provider.planned_attempts(spec, pool)] == ["l4-small", "l4-big"]
    assert "prices unknown" in provider.events[0] and "Unreachable" in provider.events[0]


def test_a_provider_without_fallback_plans_nothing_and_says_so():
    class Lab(TableProvider):
        name = "lab"
        pool_placements = ClusterProvider.pool_placements
    provider = Lab([], {})
    assert provider.planned_attempts(*pool_spec(fallback={"attempt_timeout": 5})) == []
    assert provider.events == ["node_pool/gpu: the lab provider has no capacity fallback; fallback is ignored"]
