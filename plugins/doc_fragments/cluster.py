# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by every module that addresses a cluster through a provider.
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - Which implementation of the cluster provider interface to use.
      - C(local) runs the cluster on this host as a podman network with one systemd container per node.
    type: str
    required: true
    choices: [local]
  provider_options:
    description:
      - Provider-specific settings.
      - "For C(local): C(podman_executable) (default V(podman)), C(network) (default V(<name>-net)),
        C(subnet) (CIDR for the lab network), C(memory) (memory limit per node container, e.g. V(2g))."
    type: dict
    default: {}
  name:
    description:
      - Name of the cluster. 1-40 lower-case letters, digits and dashes, starting with a letter.
      - Node names are derived from it.
    type: str
    required: true
  region:
    description:
      - Cloud region the cluster lives in. Ignored by the C(local) provider.
    type: str
"""
