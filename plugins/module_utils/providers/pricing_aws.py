# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS prices for the capacity plan, from AWS's own sources (never typed-in numbers):

- on demand: the Price List Query API (`pricing` GetProducts, endpoint in us-east-1), service AmazonEC2,
  filtered to one instance type in one region, Linux, shared tenancy, no pre-installed software and
  capacitystatus Used (the row billed for a running instance); the OnDemand term's hourly USD rate.
- spot: EC2 DescribeSpotPriceHistory in the offer's region for Linux/UNIX with StartTime now, which
  returns the current price of each zone; the offer's price is its cheapest zone, all zones are reported.

Region names are checked against the regions botocore's endpoint data knows for EC2, in every partition.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json

try:
    import botocore.session
    HAS_BOTOCORE = True
except ImportError:  # pragma: no cover - aws.py reports the missing SDK
    HAS_BOTOCORE = False

from ansible_collections.llmops.platform.plugins.module_utils.providers.base import Price, read_time

# The Price List Query API answers in us-east-1 (also eu-central-1 and ap-south-1), whatever region is priced.
PRICING_REGION = "us-east-1"
ON_DEMAND_FILTERS = (("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"),
                     ("capacitystatus", "Used"))
# DescribeSpotPriceHistory names Linux both ways, depending on the account's platform (EC2-VPC or Classic).
SPOT_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


class AwsPricingMixin(object):
    """gpu_prices and unknown_regions for AwsProvider (which has call())."""

    def unknown_regions(self, regions):
        if not HAS_BOTOCORE:
            return [], []
        session = botocore.session.get_session()
        known = set()
        for partition in session.get_available_partitions():
            known.update(session.get_available_regions("ec2", partition_name=partition))
        return [r for r in regions if r not in known], sorted(known)

    def gpu_prices(self, region, instance_types, capacity_type="on_demand"):
        if capacity_type == "spot":
            return self._spot_prices(region, instance_types)
        prices = {}
        for instance_type in instance_types:
            price = self._on_demand_price(region, instance_type)
            if price is not None:
                prices[instance_type] = price
        return prices

    def _on_demand_price(self, region, instance_type):
        filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
                   {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
        filters += [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in ON_DEMAND_FILTERS]
        rates, token = {}, None
        while True:
            kwargs = dict(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1", _region=PRICING_REGION)
            if token:
                kwargs["NextToken"] = token
            page = self.call("pricing", "get_products", **kwargs)
            read_at = read_time()
            for item in page.get("PriceList") or []:
                product = json.loads(item) if isinstance(item, str) else item
                for term in ((product.get("terms") or {}).get("OnDemand") or {}).values():
                    for dimension in (term.get("priceDimensions") or {}).values():
                        usd = (dimension.get("pricePerUnit") or {}).get("USD")
                        if dimension.get("unit") == "Hrs" and usd is not None:
                            rates[float(usd)] = (product.get("product") or {}).get("sku")
            token = page.get("NextToken")
            if not token:
                break
        if len(rates) > 1:
            # The filters should leave one row; several rates mean we cannot tell which one bills.
            return "the Price List has %d different rates (%s)" % (len(rates), ", ".join(str(r) for r in sorted(rates)))
        for rate, sku in rates.items():
            return Price(per_hour=rate, read_at=read_at,
                         source="AWS Price List Query API GetProducts (AmazonEC2 sku %s: %s, Linux, Shared, "
                                "capacitystatus Used, OnDemand)" % (sku, region))
        return None

    def _spot_prices(self, region, instance_types):
        zones, token = {}, None
        start = datetime.datetime.now(datetime.timezone.utc)
        while True:
            kwargs = dict(InstanceTypes=list(instance_types), ProductDescriptions=["Linux/UNIX"], StartTime=start,
                          _region=region)
            if token:
                kwargs["NextToken"] = token
            page = self.call("ec2", "describe_spot_price_history", **kwargs)
            read_at = read_time()
            for row in page.get("SpotPriceHistory") or []:
                if row.get("ProductDescription") not in SPOT_PRODUCTS:
                    continue
                key = (row["InstanceType"], row["AvailabilityZone"])
                stamp = row.get("Timestamp")
                if key not in zones or (stamp and zones[key][1] and stamp > zones[key][1]):
                    zones[key] = (float(row["SpotPrice"]), stamp)  # the newest row of each zone is its price
            token = page.get("NextToken")
            if not token:
                break
        prices = {}
        for instance_type in instance_types:
            by_zone = dict((z, p) for (t, z), (p, dummy) in zones.items() if t == instance_type)
            if not by_zone:
                continue
            stamps = [s for (t, dummy), (dummy2, s) in zones.items() if t == instance_type and s]
            newest = max(stamps).isoformat() if stamps else "unknown"
            prices[instance_type] = Price(
                per_hour=min(by_zone.values()), read_at=read_at, by_zone=dict(sorted(by_zone.items())),
                source="EC2 DescribeSpotPriceHistory (%s, Linux/UNIX, newest row per zone, stamped %s)" % (region, newest))
        return prices
