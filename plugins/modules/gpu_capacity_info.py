#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_capacity_info
short_description: Where can I get N GPUs of type X? Offerings per region and zone, with the account's quota
version_added: 0.1.0
description:
  - Looks up, for a cloud-neutral GPU name and a count per node, which instance types carry it
    (from the collection's GPU catalog), in which regions and zones the cloud offers them, and the
    account quota that limits them there.
  - Use it before choosing a region for an inventory, and when a node pool reports a capacity fallback.
  - Why this module exists; each cloud answers this with different APIs (EC2 instance type offerings and
    Service Quotas; GCE accelerator types and region quotas; Azure resource SKUs and usages), and none
    of the cloud collections asks them in terms of a GPU.
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
        required: true
      count:
        description: GPUs per node.
        type: int
        default: 1
  regions:
    description: Regions to look in. Defaults to O(region).
    type: list
    elements: str
    default: []
  capacity_type:
    description: Which quota to report, on-demand or spot.
    type: str
    choices: [on_demand, spot]
    default: on_demand
notes:
  - The C(local) provider has no capacity to report and fails with a message saying so.
  - With C(aws), a region is required (O(region), O(regions) or C(provider_options.region)); without one the
    module fails with a message that names C(region) before any API call.
"""

EXAMPLES = r"""
- name: Where can we get single-L4 nodes on AWS?
  llmops.platform.gpu_capacity_info:
    provider: aws
    region: us-east-1
    regions: [us-east-1, us-west-2, eu-west-1]
    gpu: {type: nvidia-l4, count: 1}
  register: l4

- name: Show the zones that have them
  ansible.builtin.debug:
    msg: "{{ l4.offers | map(attribute='zone') | unique | list }}"
"""

RETURN = r"""
offers:
  description: One entry per region, zone and instance type that carries the GPUs.
  returned: always
  type: list
  elements: dict
  sample:
    - region: us-east-1
      zone: us-east-1a
      instance_type: g6.xlarge
      gpus_per_node: 1
      quota_name: Running On-Demand G and VT instances (L-DB2E81BA)
      quota_limit: 64.0
      quota_unit: vCPUs
regions_without_offers:
  description: Regions asked about where no zone offers a matching instance type.
  returned: always
  type: list
  elements: str
events:
  description: Things that could not be read (for example a quota the credentials may not see).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.provider_args import (
    provider_argument_spec, provider_from_params)

ARGUMENT_SPEC = provider_argument_spec(
    gpu=dict(type="dict", required=True, options=dict(type=dict(type="str", required=True),
                                                      count=dict(type="int", default=1))),
    regions=dict(type="list", elements="str", default=[]),
    capacity_type=dict(type="str", default="on_demand", choices=["on_demand", "spot"]),
)


def run(module):
    params = module.params
    regions = params["regions"] or ([params["region"]] if params["region"] else [])
    provider = provider_from_params(params)
    if params["provider"] == "aws" and not regions and not params["provider_options"].get("region"):
        # Checked before any call: boto3 without a region fails deep inside botocore otherwise.
        raise SpecError("region", "is required by the aws provider to look for GPU capacity (none was given)",
                        hint="set region (e.g. us-east-1) or regions: [us-east-1, us-west-2]")
    try:
        offers = provider.gpu_capacity(params["gpu"]["type"], params["gpu"]["count"], regions,
                                       capacity_type=params["capacity_type"])
    except NotImplementedError as exc:
        module.fail_json(msg=str(exc))
    found = set(o.region for o in offers)
    return dict(changed=False, offers=[o.as_dict() for o in offers],
                regions_without_offers=[r for r in regions if r not in found], events=provider.events)


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
