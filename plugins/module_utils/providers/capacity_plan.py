# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capacity plan: one cloud-neutral GPU request, asked of every cloud named, as ranked and priced offers.

Each provider answers two questions in its own APIs: where the shapes are offered, with the quota there
(`gpu_capacity`, one CapacityOffer per zone), and what they cost (`gpu_prices`, from the cloud's own price
source). This module asks them, groups the zones of one (region, shape, capacity type) into one offer,
works out quota headroom, price per GPU-hour and the budget, and ranks: priced offers by price per GPU-hour,
then the offers whose price is unknown, in the order they were found. A price source that fails or has
no row leaves the price null and says why in `events`: a plan never shows a price it did not read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import GPU_TYPES
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError

CAPACITY_TYPES = {"on_demand": ("on_demand",), "spot": ("spot",), "both": ("on_demand", "spot")}

# One cloud to look in: `field` prefixes the option paths its errors name ("" or "clouds[0].").
PlanEntry = namedtuple("PlanEntry", ["field", "provider", "regions"])


def check_request(gpu_types, gpu_field, count, nodes, max_price):
    """Bad input, named by field, before any cloud is asked."""
    for i, gpu_type in enumerate(gpu_types):
        if gpu_type not in GPU_TYPES:
            field = gpu_field if gpu_field == "gpu.type" else "%s[%d]" % (gpu_field, i)
            raise SpecError(field, "unknown GPU type %r" % (gpu_type,), hint="use one of %s" % ", ".join(GPU_TYPES))
    if count <= 0:
        raise SpecError("gpu.count", "must be 1 or more GPUs per node, got %d" % count, hint="e.g. gpu.count: 1")
    if nodes <= 0:
        raise SpecError("nodes", "must be 1 or more, got %d" % nodes, hint="the number of nodes the plan must fit in quota")
    if max_price is not None and max_price <= 0:
        raise SpecError("max_price_per_gpu_hour", "must be above 0, got %s" % max_price,
                        hint="give the most you will pay per GPU-hour (e.g. 2.5), or leave it out for no budget")


def check_regions(entry):
    unknown, known = entry.provider.unknown_regions(entry.regions)
    if unknown:
        index = entry.regions.index(unknown[0])
        raise SpecError("%sregions[%d]" % (entry.field, index), "%s is not a region %s has" % (unknown[0], entry.provider.name),
                        hint="use one of %s" % ", ".join(known[:40]) if known else None)


def plan_capacity(entries, gpu_types, count, capacity_type="on_demand", nodes=1, max_price=None):
    """Ranked offers for `count` GPUs per node of any of `gpu_types`, in every PlanEntry.

    Returns dict(offers, cheapest, regions_without_offers, events)."""
    for entry in entries:
        check_regions(entry)
    offers, events, without, catalog_errors = [], [], [], []
    usable = False
    for entry in entries:
        provider = entry.provider
        found_regions = set()
        for gpu_type in gpu_types:
            for kind in CAPACITY_TYPES[capacity_type]:
                try:
                    zonal = provider.gpu_capacity(gpu_type, count, entry.regions, capacity_type=kind)
                except SpecError as exc:
                    if not exc.field.startswith("gpu."):
                        raise
                    # This GPU (or count) is not in this cloud's catalog; another type or cloud may have it.
                    catalog_errors.append(exc)
                    events.append("%s: %s" % (provider.name, exc))
                    break
                usable = True
                grouped = _group(provider.name, gpu_type, kind, zonal)
                found_regions.update(o["region"] for o in grouped)
                _price(provider, grouped, kind, events)
                offers.extend(grouped)
        without.extend(r for r in entry.regions if r not in found_regions)
    if not usable and catalog_errors:
        raise catalog_errors[0]
    for offer in offers:
        _judge(offer, nodes, max_price)
    ranked = rank(offers)
    cheapest = next((o for o in ranked if _meets(o)), None)
    if ranked and cheapest is None:
        events.append("no offer meets the request (priced, within quota%s)" % (" and budget" if max_price else ""))
    return dict(offers=ranked, cheapest=cheapest, regions_without_offers=without, events=events)


def rank(offers):
    """Priced offers by price per GPU-hour (then per hour), then unknown-price offers in the order found."""
    indexed = list(enumerate(offers))

    def key(item):
        index, offer = item
        if offer["price_per_gpu_hour"] is None:
            return (1, 0, 0, index)
        return (0, offer["price_per_gpu_hour"], offer["price_per_hour"], index)
    return [offer for dummy, offer in sorted(indexed, key=key)]


def _group(cloud, gpu_type, kind, zonal):
    """CapacityOffers per zone -> one offer per (region, instance type), zones in order."""
    grouped = {}
    for o in zonal:
        key = (o.region, o.instance_type)
        if key not in grouped:
            grouped[key] = dict(
                cloud=cloud, region=o.region, zones=[], instance_type=o.instance_type, gpu_type=gpu_type,
                gpus_per_node=o.gpus_per_node, capacity_type=kind, quota_name=o.quota_name, quota_limit=o.quota_limit,
                quota_used=o.quota_used, quota_unit=o.quota_unit,
                quota_per_node=o.quota_per_node if o.quota_per_node is not None else (
                    float(o.gpus_per_node) if o.quota_unit == "GPUs" else None),
                price_per_hour=None, price_per_gpu_hour=None, price_currency=None, price_source=None,
                price_read_at=None, price_by_zone=None, price_unknown_reason=None)
        if o.zone and o.zone not in grouped[key]["zones"]:
            grouped[key]["zones"].append(o.zone)
    return list(grouped.values())


def _price(provider, offers, kind, events):
    """Fill the offers' prices from the provider's price source, once per region; say why where none."""
    by_region = {}
    for offer in offers:
        by_region.setdefault(offer["region"], []).append(offer)
    words = kind.replace("_", "-")
    for region, group in by_region.items():
        types = [o["instance_type"] for o in group]
        try:
            prices = provider.gpu_prices(region, types, kind)
            reason = None
        except (ProviderError, NotImplementedError) as exc:
            prices, reason = {}, "the %s price source could not be read (%s)" % (words, exc)
        for offer in group:
            price = prices.get(offer["instance_type"])
            if price is None or isinstance(price, str):
                offer["price_unknown_reason"] = reason or price or "the %s price source has no row for it" % words
                events.append("%s %s %s (%s): price unknown: %s" % (
                    provider.name, region, offer["instance_type"], words, offer["price_unknown_reason"]))
                continue
            offer.update(price_per_hour=price.per_hour, price_currency=price.currency, price_source=price.source,
                         price_read_at=price.read_at, price_by_zone=price.by_zone,
                         price_per_gpu_hour=round(price.per_hour / offer["gpus_per_node"], 6))


def _judge(offer, nodes, max_price):
    """Quota headroom (limit less usage, where the cloud reports usage), whether `nodes` nodes fit, the budget."""
    limit, used = offer["quota_limit"], offer["quota_used"]
    offer["quota_headroom"] = limit - used if limit is not None and used is not None else None
    available = offer["quota_headroom"] if offer["quota_headroom"] is not None else limit
    need = offer["quota_per_node"] * nodes if offer["quota_per_node"] is not None else None
    offer["fits_quota"] = available >= need if available is not None and need is not None else None
    price = offer["price_per_gpu_hour"]
    offer["within_budget"] = price <= max_price if max_price is not None and price is not None else None


def _meets(offer):
    return (offer["price_per_gpu_hour"] is not None and offer["fits_quota"] is not False
            and offer["within_budget"] is not False)
