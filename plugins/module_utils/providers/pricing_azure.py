# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure prices for the capacity plan, from the Azure Retail Prices API (never typed-in numbers).

https://prices.azure.com/api/retail/prices (documented in "Azure Retail Prices overview", Cost Management
REST reference) is public and needs no credentials; no Azure SDK wraps it, so it is read with Ansible's
open_url. One query per VM size and region, with the OData $filter
`serviceName eq 'Virtual Machines' and armRegionName eq '<region>' and armSkuName eq '<size>' and
priceType eq 'Consumption'`, following NextPageLink until it is null. Of the rows, the Linux ones count
(productName not ending in "Windows"); on demand, not those whose skuName says Spot or Low Priority; for
spot, those that say Spot. Several different prices left over mean we cannot tell which one bills: the
price is then unknown, with the rates in the event.

Region names are checked by the resource SKU list: a region that lists no VM size at all is not one Azure has.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import Price, read_time

RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
RETAIL_API_VERSION = "2023-01-01-preview"
# A guard against a NextPageLink that never ends; one VM size in one region is a handful of rows.
MAX_PAGES = 20


def retail_filter(region, size):
    return ("serviceName eq 'Virtual Machines' and armRegionName eq '%s' and armSkuName eq '%s' "
            "and priceType eq 'Consumption'" % (region, size))


def _linux_rows(items, capacity_type):
    rows = []
    for item in items:
        sku_name = "%s %s" % (item.get("skuName") or "", item.get("meterName") or "")
        spot, low = "Spot" in sku_name, "Low Priority" in sku_name
        if (item.get("productName") or "").endswith("Windows") or item.get("unitOfMeasure") != "1 Hour" or low:
            continue
        if spot == (capacity_type == "spot"):
            rows.append(item)
    return rows


class AzurePricingMixin(object):
    """gpu_prices and unknown_regions for AzureProvider (which has _skus())."""

    def unknown_regions(self, regions):
        return [r for r in regions if not self._skus(r)], []

    def _retail_rows(self, region, size):
        url = "%s?%s" % (self.options.get("retail_prices_url") or RETAIL_PRICES_URL,
                         urlencode({"api-version": RETAIL_API_VERSION, "$filter": retail_filter(region, size)}))
        items = []
        for dummy in range(MAX_PAGES):
            try:
                page = json.loads(open_url(url, method="GET", timeout=float(self.options.get("request_timeout", 60))).read())
            # open_url raises several unrelated types (HTTPError, URLError, socket errors).
            except Exception as exc:  # pylint: disable=broad-except
                raise ProviderError("Azure Retail Prices %s failed: %s" % (url, exc), code=getattr(exc, "code", None),
                                    hint="check the network path to prices.azure.com (or provider_options.retail_prices_url)")
            items.extend(page.get("Items") or [])
            url = page.get("NextPageLink")
            if not url:
                return items
        raise ProviderError("Azure Retail Prices kept paging past %d pages for %s in %s" % (MAX_PAGES, size, region))

    def gpu_prices(self, region, instance_types, capacity_type="on_demand"):
        prices = {}
        for size in instance_types:
            rows = _linux_rows(self._retail_rows(region, size), capacity_type)
            read_at = read_time()
            rates = dict((float(r["retailPrice"]), r) for r in rows if r.get("currencyCode", "USD") == "USD")
            if len(rates) > 1:
                prices[size] = "the Retail Prices API has %d different Linux rates (%s)" % (
                    len(rates), ", ".join(str(r) for r in sorted(rates)))
                continue
            for rate, row in rates.items():
                prices[size] = Price(per_hour=rate, read_at=read_at, source=(
                    "Azure Retail Prices API (meter %s '%s', %s, effective %s)" % (
                        row.get("meterId"), row.get("meterName"), row.get("productName"), row.get("effectiveStartDate"))))
        return prices
