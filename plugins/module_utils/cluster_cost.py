# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estimated cost of a cluster as built: each pool's instance type x node count x price, and the total.

Prices come from the provider's own price source (`gpu_prices`: pricing_aws.py, pricing_gcp.py,
pricing_azure.py), read once per (capacity type, instance types) of the cluster's region, exactly as the
capacity plan reads them. A pool whose price cannot be read is `unknown` with the reason, and then the
total is a lower bound and says so (`complete: false`): a price is never guessed. The local lab has no
price source; its pools cost nothing on any bill, and the result says that instead of printing 0 as if
it had been read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError

# The monthly figure clouds and their calculators use: 365 days x 24 h / 12.
HOURS_PER_MONTH = 730
LOCAL_NOTE = "the local lab runs on this machine's podman: no cloud bill, so no price source and no cost"


def check_budget(budget, field="budget_monthly"):
    """A monthly budget is a number above 0, or None for no budget."""
    if budget is None:
        return None
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise SpecError(field, "must be a number (a monthly amount in USD), got %r" % (budget,),
                        hint="e.g. %s: 5000, or leave it out for no budget" % field)
    if math.isnan(value) or value <= 0:
        raise SpecError(field, "must be above 0, got %s" % budget,
                        hint="give the most the cluster may cost per month in USD (e.g. 5000), or leave it out")
    return value


def _priceable(provider, instance_type):
    """Why the provider's price source cannot price `instance_type`, or None when it can be asked."""
    # pricing_gcp.py prices a machine as GPU + vCPU + RAM SKUs and needs the GPU from the catalog;
    # other clouds price any instance type by name.
    if provider.name == "gcp" and gpu_catalog.shape("gcp", instance_type)[0] is None:
        return "the gcp price source (Cloud Billing Catalog) is only read for GPU machine types here"
    return None


def _read_prices(provider, region, capacity_type, instance_types, events):
    """{instance type: Price or reason string} for one capacity type, never raising for a price source."""
    out, ask = {}, []
    for name in instance_types:
        reason = _priceable(provider, name)
        if reason:
            out[name] = reason
        else:
            ask.append(name)
    if not ask:
        return out
    words = capacity_type.replace("_", "-")
    try:
        prices = provider.gpu_prices(region, ask, capacity_type)
    except (ProviderError, NotImplementedError) as exc:
        prices = dict((name, "the %s price source could not be read (%s)" % (words, exc)) for name in ask)
    for name in ask:
        price = prices.get(name) or "the %s price source has no row for %s in %s" % (words, name, region)
        # An error body (an HTML error page, say) spans lines; one line keeps the printed report one line a pool.
        out[name] = " ".join(price.split()) if isinstance(price, str) else price
    for name, price in sorted(out.items()):
        if isinstance(price, str):
            events.append("%s %s %s (%s): price unknown: %s" % (provider.name, region, name, words, price))
    return out


def _unpriced(name, pool, reason=None):
    """A pool's entry before (or without) a price; every provider returns the same keys."""
    return dict(pool=name, instance_types=list(pool.instance_types), count=pool.count,
                capacity_type=pool.capacity_type or "on_demand", price_per_node_hour=None, cost_per_hour=None,
                cost_per_month=None, price_source=None, price_read_at=None, price_basis=None, price_unknown_reason=reason)


def _pool_cost(name, pool, prices):
    entry = _unpriced(name, pool)
    capacity_type = entry["capacity_type"]
    if pool.count == 0:
        entry.update(cost_per_hour=0.0, cost_per_month=0.0, price_basis="no nodes")
        return entry
    if not pool.instance_types:
        entry["price_unknown_reason"] = "the provider does not report the pool's instance type"
        return entry
    found = [(t, prices.get((capacity_type, t))) for t in pool.instance_types]
    missing = [(t, p) for t, p in found if p is None or isinstance(p, str)]
    if missing:
        entry["price_unknown_reason"] = "; ".join("%s: %s" % (t, p or "not read") for t, p in missing)
        return entry
    # A pool allowed several instance types may run any mix of them: the estimate takes the dearest,
    # so it is an upper bound and never below the bill; price_basis says so.
    instance_type, price = max(found, key=lambda item: item[1].per_hour)
    per_hour = round(price.per_hour * pool.count, 6)
    entry.update(price_per_node_hour=price.per_hour, cost_per_hour=per_hour,
                 cost_per_month=round(per_hour * HOURS_PER_MONTH, 2), price_source=price.source,
                 price_read_at=price.read_at,
                 price_basis=instance_type if len(found) == 1 else
                 "%s, the dearest of %s (upper bound)" % (instance_type, ", ".join(pool.instance_types)))
    return entry


def estimate_cost(provider, state, region=None, budget=None):
    """dict(priced, complete, pools, cost_per_hour, cost_per_month, currency, budget_monthly, over_budget, events)."""
    budget = check_budget(budget)
    result = dict(priced=False, complete=False, pools=[], cost_per_hour=None, cost_per_month=None, currency="USD",
                  hours_per_month=HOURS_PER_MONTH, budget_monthly=budget, over_budget=None, note=None, events=[])
    if state is None:
        result["note"] = "the cluster does not exist: nothing is running, nothing to price"
        return result
    pools = sorted(state.node_pools.items())
    if provider.name == "local":
        result.update(note=LOCAL_NOTE, pools=[_unpriced(name, p, LOCAL_NOTE) for name, p in pools])
        return result
    region = state.region or region or provider.options.get("region")
    wanted = {}
    for dummy, pool in pools:
        if pool.count:
            wanted.setdefault(pool.capacity_type or "on_demand", set()).update(pool.instance_types)
    prices = {}
    for capacity_type, types in sorted(wanted.items()):
        for name, price in _read_prices(provider, region, capacity_type, sorted(types), result["events"]).items():
            prices[(capacity_type, name)] = price
    entries = [_pool_cost(name, pool, prices) for name, pool in pools]
    known = [e for e in entries if e["cost_per_hour"] is not None]
    hourly = round(sum(e["cost_per_hour"] for e in known), 6)
    result.update(pools=entries, priced=True, complete=len(known) == len(entries), cost_per_hour=hourly,
                  cost_per_month=round(hourly * HOURS_PER_MONTH, 2), region=region)
    if not result["complete"]:
        result["note"] = "%d of %d pools have no price: the totals cover only the priced pools (a lower bound)" % (
            len(entries) - len(known), len(entries))
    if budget is not None:
        # Unpriced pools only add to the bill: over stays over; under is only known when every pool is priced.
        over = result["cost_per_month"] > budget
        result["over_budget"] = True if over else (False if result["complete"] else None)
    return result
