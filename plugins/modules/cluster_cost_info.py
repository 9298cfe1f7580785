#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_cost_info
short_description: Estimate what a GPU cluster as built costs per hour and per month
version_added: 0.1.0
description:
  - Reads the cluster and its node pools as the provider reports them, then prices each pool as instance
    type x node count x the price the cloud's own price source gives (AWS Price List Query API or spot price
    history, GCP Cloud Billing Catalog, Azure Retail Prices API), the same sources as
    M(llmops.platform.gpu_capacity_info).
  - A pool whose price cannot be read is reported with I(price_unknown_reason) and no cost; the totals then
    cover the priced pools only and I(complete) is false. No price is ever guessed.
  - A pool allowed several instance types is priced at the dearest of them (an upper bound, said in I(price_basis)).
  - The local lab has no price source and no bill; I(priced) is false and I(note) says so.
  - Monthly means 730 hours. Prices are list prices in USD, before discounts, savings plans, storage and traffic.
  - Exists because no cloud collection prices a running cluster; it changes nothing.
author:
  - llmops.platform maintainers (@llmops)
options:
  budget_monthly:
    description:
      - The most the cluster may cost per month, in USD. When set, I(over_budget) compares the estimate with it.
      - Must be a number above 0.
    type: raw
extends_documentation_fragment:
  - llmops.platform.provider
  - llmops.platform.provider.cluster_name
  - llmops.platform.read_only
"""

EXAMPLES = r"""
- name: What the cluster costs
  llmops.platform.cluster_cost_info:
    provider: aws
    name: llmops-prod
    region: us-east-1
    budget_monthly: 20000
  register: cost

- name: Print it
  ansible.builtin.debug:
    msg: "{{ cost.cost_per_hour }} USD/h, {{ cost.cost_per_month }} USD/month"
"""

RETURN = r"""
priced:
  description: Whether the provider has a price source (false on the local lab, or when the cluster does not exist).
  returned: always
  type: bool
complete:
  description: Whether every pool was priced; when false the totals are a lower bound.
  returned: always
  type: bool
pools:
  description: One entry per node pool.
  returned: always
  type: list
  elements: dict
  sample:
    - pool: gpu
      instance_types: [g6.xlarge]
      count: 2
      capacity_type: on_demand
      price_per_node_hour: 0.8048
      cost_per_hour: 1.6096
      cost_per_month: 1175.01
      price_basis: g6.xlarge
      price_source: AWS Price List Query API GetProducts (AmazonEC2 sku ..., us-east-1, Linux, Shared, capacitystatus Used, OnDemand)
      price_read_at: "2026-12-06T07:40:00+00:00"
      price_unknown_reason: null
cost_per_hour:
  description: Sum of the priced pools' hourly cost; null when not priced.
  returned: always
  type: float
cost_per_month:
  description: I(cost_per_hour) x I(hours_per_month); null when not priced.
  returned: always
  type: float
currency:
  description: Always USD.
  returned: always
  type: str
hours_per_month:
  description: The hours a month has in I(cost_per_month), always 730.
  returned: always
  type: int
budget_monthly:
  description: The budget given, as a number; null when none.
  returned: always
  type: float
over_budget:
  description: True when the estimate passes the budget; false when it does not and every pool is priced; null otherwise.
  returned: always
  type: bool
note:
  description: Why there is no cost (local lab, no cluster) or why the totals are a lower bound.
  returned: always
  type: str
events:
  description: Prices that could not be read, with the reason.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.llmops.platform.plugins.module_utils.cluster_cost import check_budget, estimate_cost
from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.provider_args import (
    provider_argument_spec, provider_from_params)

# raw, not float: AnsibleModule would turn "abc" into its own message without the hint; check_budget names it.
ARGUMENT_SPEC = provider_argument_spec(name=dict(type="str", required=True), budget_monthly=dict(type="raw"))


def run(module):
    params = module.params
    budget = check_budget(params["budget_monthly"])
    provider = provider_from_params(params)
    result = estimate_cost(provider, provider.get_cluster(params["name"]), params["region"], budget)
    result["events"] = list(provider.events) + result["events"]
    return dict(changed=False, **result)


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
