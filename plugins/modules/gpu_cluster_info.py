#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_cluster_info
short_description: Read a GPU cluster, its node pools and nodes from any supported provider
version_added: 0.1.0
description:
  - Reports the cluster as the provider sees it, in the same shape as M(llmops.platform.gpu_cluster) returns.
  - Changes nothing; use it in reports, in plays that run without provisioning, and in DR drills.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.provider
  - llmops.platform.provider.cluster_name
  - llmops.platform.read_only
"""

EXAMPLES = r"""
- name: Read the local lab
  llmops.platform.gpu_cluster_info:
    provider: local
    name: llmops-lab
  register: lab

- name: Fail when it is missing
  ansible.builtin.assert:
    that: lab.exists
"""

RETURN = r"""
exists:
  description: Whether the cluster exists.
  returned: always
  type: bool
cluster:
  description: The cluster as the provider reports it; empty when it does not exist.
  returned: always
  type: dict
nodes:
  description: Every node with the host variables Ansible needs to reach it (see M(llmops.platform.gpu_cluster)).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.provider_args import (
    provider_argument_spec, provider_from_params)

ARGUMENT_SPEC = provider_argument_spec(name=dict(type="str", required=True))


def run(module):
    params = module.params
    provider = provider_from_params(params)
    state = provider.get_cluster(params["name"])
    nodes = provider.list_nodes(params["name"]) if state else []
    return dict(changed=False, exists=state is not None,
                cluster=state.summary() if state else {}, nodes=[n.as_dict() for n in nodes])


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
