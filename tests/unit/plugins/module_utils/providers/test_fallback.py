"""The capacity fallback loop of ClusterProvider (create_pool_with_fallback), on its own.

The three clouds' tests (test_aws.py, test_gcp.py, test_azure.py) check it through real exchanges; this
file pins the loop's own rules with a provider whose cloud is a table of answers per placement: the order
of attempts, what a miss's rules_out skips, what pool_missed is told comes next, and that an error that
is not about capacity stops the loop at once.
"""
import time

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import CapacityMiss, ClusterProvider


def _unused(*args):
    raise NotImplementedError("not used by the fallback loop")


class TableProvider(ClusterProvider):
    """Placements are (type, zone); `answers` maps a placement to "ok", "stockout", "quota" (rules out the
    type's other zones) or an exception to raise."""

    name = "table"

    def __init__(self, placements, answers):
        super(TableProvider, self).__init__({})
        self.placements, self.answers, self.tried, self.told = placements, answers, [], []
        self.delay = 0

    def pool_placements(self, spec, pool):
        return list(self.placements)

    def try_pool_placement(self, spec, pool, placement):
        self.tried.append(placement)
        time.sleep(self.delay)
        answer = self.answers.get(placement, "ok")
        if isinstance(answer, Exception):
            raise answer
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

    # The rest of the interface is not used by the loop.
    get_cluster = create_cluster = delete_cluster = create_node_pool = update_node_pool = delete_node_pool = \
        wait_for_cluster = list_nodes = _unused


class Pool(object):
    name = "gpu"


PLACEMENTS = [("a", "z1"), ("a", "z2"), ("a", "z3"), ("b", "z1"), ("b", "z2")]


def test_a_stockout_moves_on_and_a_quota_miss_skips_the_type():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): "quota", ("b", "z1"): "stockout"})
    assert provider.create_pool_with_fallback(None, Pool()) == ("b", "z2")
    assert provider.tried == [("a", "z1"), ("a", "z2"), ("b", "z1"), ("b", "z2")]  # a/z3 shares a's quota
    assert provider.told == [(("a", "z1"), ("a", "z2")), (("a", "z2"), ("b", "z1")), (("b", "z1"), ("b", "z2"))]
    assert provider.events == ["placed b in z2 after 3 misses"]


def test_every_placement_missing_raises_with_the_last_code():
    provider = TableProvider(PLACEMENTS[:2], {("a", "z1"): "quota", ("a", "z2"): "stockout"})
    with pytest.raises(ProviderError) as err:
        provider.create_pool_with_fallback(None, Pool())
    assert provider.tried == [("a", "z1")]
    assert provider.told == [(("a", "z1"), None)]
    assert err.value.code == "QUOTA" and "a in z1: quota" in err.value.message and "node_pool/gpu" in err.value.message


def test_an_error_that_is_not_about_capacity_stops_the_loop():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): ProviderError("denied", code="AuthorizationFailed")})
    with pytest.raises(ProviderError) as err:
        provider.create_pool_with_fallback(None, Pool())
    assert err.value.code == "AuthorizationFailed"
    assert provider.tried == [("a", "z1"), ("a", "z2")] and provider.events == []


def test_every_attempt_is_traced_with_outcome_error_and_seconds():
    provider = TableProvider(PLACEMENTS, {("a", "z1"): "stockout", ("a", "z2"): "quota", ("b", "z1"): "stockout"})
    provider.delay = 0.05
    provider.create_pool_with_fallback(None, Pool())
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
        provider.create_pool_with_fallback(None, Pool())
    assert [(a["outcome"], a["code"], a["error"]) for a in provider.attempts] == [
        ("no_capacity", "STOCKOUT", "a in z1: stockout"), ("failed", "AuthorizationFailed", "denied")]
