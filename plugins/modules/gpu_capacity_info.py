#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_capacity_info
short_description: A priced GPU capacity plan - where N GPUs of type X can be had, and what they cost
version_added: 0.1.0
description:
  - Takes a cloud-neutral request (a GPU type or a list of acceptable types, GPUs per node, capacity type,
    regions, and one or more clouds) and returns ranked offers, one per cloud, region, instance type and
    capacity type, with the zones that offer it, the account quota that limits it, and its price per hour
    and per GPU-hour read from the cloud's own price source, with that source and the time it was read.
  - Offers come from the clouds' APIs (EC2 instance type offerings and Service Quotas; GCE accelerator types
    and region quotas; Azure resource SKUs and usages) and prices from their documented price sources
    (AWS Price List Query API and EC2 spot price history; GCP Cloud Billing Catalog; Azure Retail Prices).
    Where a price source cannot be read or has no row, the price is null and RV(events) says why; no price
    is ever typed into the collection.
  - Ranking is by price per GPU-hour, cheapest first; offers whose price is unknown come after every priced
    offer. RV(cheapest) is the first offer that is priced, fits the quota (as far as the cloud reports it)
    and is within O(max_price_per_gpu_hour).
  - Read-only; runs the same in check mode.
  - Why this module exists; each cloud answers this with different APIs, and none of the cloud collections
    asks them in terms of a GPU, or prices them.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.provider
  - llmops.platform.read_only
options:
  gpu:
    description: The GPUs wanted on each node.
    type: dict
    required: true
    suboptions:
      type:
        description: GPU name from the catalog, for example V(nvidia-l4) or V(nvidia-h100-80gb).
        type: str
      types:
        description: Acceptable GPU names (instead of O(gpu.type)); offers for each are ranked together.
        type: list
        elements: str
      count:
        description: GPUs per node.
        type: int
        default: 1
  regions:
    description: Regions to look in with O(provider). Defaults to O(region) (all offering regions on C(gcp)).
    type: list
    elements: str
    default: []
  capacity_type:
    description: On-demand, spot, or both (each offer says which it is).
    type: str
    choices: [on_demand, spot, both]
    default: on_demand
  nodes:
    description: How many nodes the plan must fit in the quota.
    type: int
    default: 1
  max_price_per_gpu_hour:
    description: Budget; an offer above it is marked C(within_budget=false) and is never RV(cheapest).
    type: float
  clouds:
    description:
      - More clouds to look in besides O(provider), each with its own settings. Their offers are ranked
        together with those of O(provider).
    type: list
    elements: dict
    default: []
    suboptions:
      provider:
        description: The cloud.
        type: str
        required: true
        choices: [aws, azure, gcp]
      provider_options:
        description: As O(provider_options), for this cloud (credentials here are masked the same way).
        type: dict
        default: {}
      region:
        description: As O(region), for this cloud.
        type: str
      regions:
        description: As O(regions), for this cloud.
        type: list
        elements: str
        default: []
notes:
  - The C(local) provider has no capacity to report and fails with a message saying so.
  - With C(aws), a region is required (O(region), O(regions) or C(provider_options.region)); without one the
    module fails with a message that names C(region) before any API call.
  - "Price sources need read access: C(pricing:GetProducts) and C(ec2:DescribeSpotPriceHistory) on AWS;
    the Cloud Billing Catalog is readable with any Google credentials; Azure Retail Prices needs none."
"""

EXAMPLES = r"""
- name: The cheapest place for two nodes with one L4 (or L40S) each, AWS and GCP, on-demand or spot
  llmops.platform.gpu_capacity_info:
    provider: aws
    regions: [us-east-1, us-west-2]
    gpu: {types: [nvidia-l4, nvidia-l40s], count: 1}
    capacity_type: both
    nodes: 2
    max_price_per_gpu_hour: 1.5
    clouds:
      - provider: gcp
        provider_options: {project: my-project}
        regions: [us-central1]
  register: plan

- name: Say where it goes
  ansible.builtin.debug:
    msg: "{{ plan.cheapest.cloud }} {{ plan.cheapest.region }} {{ plan.cheapest.instance_type }} at
      {{ plan.cheapest.price_per_gpu_hour }} {{ plan.cheapest.price_currency }}/GPU-hour ({{ plan.cheapest.price_source }})"
  when: plan.cheapest
"""

RETURN = r"""
offers:
  description: Ranked offers, one per cloud, region, instance type and capacity type.
  returned: always
  type: list
  elements: dict
  sample:
    - cloud: aws
      region: us-east-1
      zones: [us-east-1a, us-east-1b]
      instance_type: g6.xlarge
      gpu_type: nvidia-l4
      gpus_per_node: 1
      capacity_type: on_demand
      quota_name: Running On-Demand G and VT instances (L-DB2E81BA)
      quota_limit: 64.0
      quota_used: null
      quota_headroom: null
      quota_unit: vCPUs
      quota_per_node: 4.0
      fits_quota: true
      price_per_hour: 0.8048
      price_per_gpu_hour: 0.8048
      price_currency: USD
      price_source: "AWS Price List Query API GetProducts (AmazonEC2 sku ..., Linux, Shared, capacitystatus Used, OnDemand)"
      price_read_at: "2026-12-06T07:00:00+00:00"
      price_by_zone: null
      price_unknown_reason: null
      within_budget: true
cheapest:
  description: The first offer that is priced, fits the quota (where the cloud reports it) and the budget; null when none does.
  returned: always
  type: dict
regions_without_offers:
  description: Regions asked about where no zone offers a matching instance type.
  returned: always
  type: list
  elements: str
events:
  description: Things that could not be read (a quota, a price source, a GPU a cloud does not have).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.provider_args import (
    provider_argument_spec, provider_from_params)
from ansible_collections.llmops.platform.plugins.module_utils.providers import get_provider
from ansible_collections.llmops.platform.plugins.module_utils.providers.capacity_plan import (
    PlanEntry, check_request, plan_capacity)

ARGUMENT_SPEC = provider_argument_spec(
    gpu=dict(type="dict", required=True, options=dict(type=dict(type="str"), types=dict(type="list", elements="str"),
                                                      count=dict(type="int", default=1)),
             mutually_exclusive=[["type", "types"]], required_one_of=[["type", "types"]]),
    regions=dict(type="list", elements="str", default=[]),
    capacity_type=dict(type="str", default="on_demand", choices=["on_demand", "spot", "both"]),
    nodes=dict(type="int", default=1),
    max_price_per_gpu_hour=dict(type="float"),
    clouds=dict(type="list", elements="dict", default=[], options=dict(
        provider=dict(type="str", required=True, choices=["aws", "azure", "gcp"]),
        provider_options=dict(type="dict", default={}),
        region=dict(type="str"),
        regions=dict(type="list", elements="str", default=[]))),
)


def _entry(field, provider, params):
    regions = list(params["regions"] or ([params["region"]] if params["region"] else []))
    if params["provider"] == "aws" and not regions and not params["provider_options"].get("region"):
        # Checked before any call: boto3 without a region fails deep inside botocore otherwise.
        raise SpecError(field + "region", "is required by the aws provider to look for GPU capacity (none was given)",
                        hint="set region (e.g. us-east-1) or regions: [us-east-1, us-west-2]")
    return PlanEntry(field, provider, regions)


def run(module):
    params = module.params
    gpu = params["gpu"]
    gpu_types, gpu_field = ([gpu["type"]], "gpu.type") if gpu["type"] else (list(gpu["types"]), "gpu.types")
    if not gpu_types:
        raise SpecError("gpu.types", "is empty", hint="name at least one GPU type, e.g. [nvidia-l4]")
    check_request(gpu_types, gpu_field, gpu["count"], params["nodes"], params["max_price_per_gpu_hour"])
    entries = [_entry("", provider_from_params(params), params)]
    for i, cloud in enumerate(params["clouds"]):
        entries.append(_entry("clouds[%d]." % i, get_provider(cloud["provider"], cloud["provider_options"], cloud["region"]),
                              cloud))
    try:
        plan = plan_capacity(entries, gpu_types, gpu["count"], params["capacity_type"], params["nodes"],
                             params["max_price_per_gpu_hour"])
    except NotImplementedError as exc:
        module.fail_json(msg=str(exc))
    events = []
    for entry in entries:
        events.extend(entry.provider.events)
    return dict(changed=False, events=events + plan.pop("events"), **plan)


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
