# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every module that works through a cluster provider takes (documented once, in the
llmops.platform.provider doc fragment), and the provider they select."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils.providers import get_provider, provider_names

PROVIDER_OPTIONS = dict(
    provider=dict(type="str", required=True, choices=provider_names()),
    provider_options=dict(type="dict", default={}),
    region=dict(type="str"),
)


def provider_argument_spec(**options):
    """The provider options plus the module's own `options`."""
    spec = dict(PROVIDER_OPTIONS)
    spec.update(options)
    return spec


def provider_from_params(params):
    """The provider that a module's validated params select, set up with its options and region."""
    return get_provider(params["provider"], params["provider_options"], params["region"])
