# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP prices for the capacity plan, from the Cloud Billing Catalog API (never typed-in numbers).

Compute Engine bills a GPU machine for its attached GPUs, its vCPUs and its memory, each a SKU of the
Compute Engine service (services/6F81-5844-456A) in the Catalog (cloudbilling.googleapis.com/v1
services.skus.list, paged by nextPageToken). The machine's vCPUs and memory come from Compute's
machineTypes.list in a zone of the region that offers the GPU. A SKU counts when its serviceRegions name
the region, its category.usageType is OnDemand (Preemptible for spot), and its description is the series'
wording followed by " running in" (spot SKUs start with "Spot Preemptible "):

    GPU:  "Nvidia L4 GPU running in Americas"           per hour, per GPU
    vCPU: "G2 Instance Core running in Americas"        per hour, per vCPU  (N1: "N1 Predefined Instance Core")
    RAM:  "G2 Instance Ram running in Americas"         per GiB-hour        (N1: "N1 Predefined Instance Ram")

Those wordings are the catalog's as we know them; they were checked against fixtures only (no live
catalog was reachable). A part without exactly one matching SKU leaves the price unknown, with the part
named: a wrong or missing SKU can make a price unknown, never a guess.

Region names are checked against Compute's regions.list for the project.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import Price, read_time
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_api import _last

DEFAULT_BILLING = "https://cloudbilling.googleapis.com"
COMPUTE_SERVICE = "services/6F81-5844-456A"  # Compute Engine in the Cloud Billing Catalog
# acceleratorType -> the GPU SKU's description before " running in".
GPU_SKU = {"nvidia-tesla-t4": "Nvidia Tesla T4 GPU", "nvidia-l4": "Nvidia L4 GPU",
           "nvidia-tesla-a100": "Nvidia Tesla A100 GPU", "nvidia-a100-80gb": "Nvidia Tesla A100 80GB GPU",
           "nvidia-h100-80gb": "Nvidia H100 80GB GPU", "nvidia-h100-mega-80gb": "Nvidia H100 80GB Mega GPU",
           "nvidia-h200-141gb": "Nvidia H200 141GB GPU"}
# usage unit each part is priced in (the SKU's pricingExpression.usageUnit).
UNITS = {"gpu": "h", "core": "h", "ram": "GiBy.h"}


def _series_words(machine_type):
    series = machine_type.split("-")[0].upper()
    if series == "N1":
        return "N1 Predefined Instance Core", "N1 Predefined Instance Ram"
    return "%s Instance Core" % series, "%s Instance Ram" % series


def _unit_price(sku):
    """(usage unit, price of the first tier, currency, effectiveTime) of the SKU's newest pricing."""
    info = (sku.get("pricingInfo") or [{}])[-1]
    expression = info.get("pricingExpression") or {}
    tiers = sorted(expression.get("tieredRates") or [], key=lambda t: t.get("startUsageAmount") or 0)
    if not tiers:
        return None
    money = tiers[0].get("unitPrice") or {}
    return (expression.get("usageUnit"), int(money.get("units") or 0) + (money.get("nanos") or 0) / 1e9,
            money.get("currencyCode"), info.get("effectiveTime"))


class GcpPricingMixin(object):
    """gpu_prices and unknown_regions for GcpProvider (which has call(), _compute_url() and _gpu_zones())."""

    def unknown_regions(self, regions):
        if not regions:
            return [], []
        known, params = [], {}
        while True:
            page = self.call("GET", self._compute_url("regions"), "regions.list", params=params or None)
            known.extend(item.get("name") for item in page.get("items") or [])
            if not page.get("nextPageToken"):
                break
            params = {"pageToken": page["nextPageToken"]}
        return [r for r in regions if r not in known], sorted(known)

    def _billing_skus(self):
        if getattr(self, "_skus_cache", None) is None:
            url = "%s/v1/%s/skus" % ((self.options.get("billing_endpoint") or DEFAULT_BILLING).rstrip("/"), COMPUTE_SERVICE)
            skus, params = [], {"currencyCode": "USD"}
            while True:
                page = self.call("GET", url, "Cloud Billing Catalog services.skus.list", params=params)
                skus.extend(page.get("skus") or [])
                if not page.get("nextPageToken"):
                    break
                params = dict(params, pageToken=page["nextPageToken"])
            self._skus_cache = skus
        return self._skus_cache

    def _machine_shapes(self, zone):
        """machine type -> (vCPUs, memory GiB) in `zone` (compute machineTypes.list)."""
        if getattr(self, "_machine_cache", None) is None:
            self._machine_cache = {}
        cache = self._machine_cache
        if zone not in cache:
            shapes, params = {}, {}
            while True:
                page = self.call("GET", self._compute_url("zones/%s/machineTypes" % zone), "machineTypes.list %s" % zone,
                                 params=params or None)
                for item in page.get("items") or []:
                    shapes[item["name"]] = (item.get("guestCpus"), (item.get("memoryMb") or 0) / 1024.0)
                if not page.get("nextPageToken"):
                    break
                params = {"pageToken": page["nextPageToken"]}
            cache[zone] = shapes
        return cache[zone]

    def _sku_for(self, words, region, spot):
        usage = "Preemptible" if spot else "OnDemand"
        prefix = ("Spot Preemptible " if spot else "") + words + " running in"
        return [s for s in self._billing_skus() if (s.get("category") or {}).get("usageType") == usage
                and region in (s.get("serviceRegions") or []) and (s.get("description") or "").startswith(prefix)]

    def gpu_prices(self, region, instance_types, capacity_type="on_demand"):
        spot = capacity_type == "spot"
        prices = {}
        for machine_type in instance_types:
            found, dummy = gpu_catalog.shape("gcp", machine_type)
            zones = self._gpu_zones(found.accelerator).get(region) or []
            if not zones:
                continue
            cpus, ram = self._machine_shapes(zones[0]).get(machine_type, (None, None))
            if not cpus:
                prices[machine_type] = "machineTypes.list in %s does not list %s" % (zones[0], machine_type)
                continue
            core, memory = _series_words(machine_type)
            parts = (("gpu", GPU_SKU.get(found.accelerator, found.accelerator), found.gpus), ("core", core, cpus),
                     ("ram", memory, ram))
            total, used, problem = 0.0, [], None
            for part, words, amount in parts:
                skus = self._sku_for(words, region, spot)
                if len(skus) != 1:
                    problem = "the Cloud Billing Catalog has %d %s SKUs for '%s' in %s" % (
                        len(skus), "Preemptible" if spot else "OnDemand", words, region)
                    break
                rate = _unit_price(skus[0])
                if rate is None or rate[0] != UNITS[part] or rate[2] not in (None, "USD"):
                    problem = "the SKU %s for '%s' is not priced per %s in USD" % (skus[0].get("skuId"), words, UNITS[part])
                    break
                total += rate[1] * amount
                used.append("%s %s" % (_last(skus[0].get("name")) or skus[0].get("skuId"), rate[3]))
            if problem:
                prices[machine_type] = problem
                continue
            prices[machine_type] = Price(
                per_hour=round(total, 6), read_at=read_time(),
                source="Cloud Billing Catalog %s/skus (%s; %d vCPU, %g GiB, %d GPU; SKUs %s)" % (
                    COMPUTE_SERVICE, region, cpus, ram, found.gpus, ", ".join(used)))
        return prices
