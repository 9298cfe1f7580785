# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider registry. A new cloud is one new module in this package plus one line in PROVIDERS.

Imports are static because AnsiballZ only ships the module_utils it can see imported. Each provider
module therefore guards its own SDK import (HAS_<SDK> flag) and raises a clear ProviderError when
used without it, so one cloud's missing SDK never breaks another cloud or the local lab.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.aws import AwsProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp import GcpProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.local import LocalPodmanProvider

PROVIDERS = {
    AwsProvider.name: AwsProvider,
    AzureProvider.name: AzureProvider,
    GcpProvider.name: GcpProvider,
    LocalPodmanProvider.name: LocalPodmanProvider,
}


def provider_names():
    return sorted(PROVIDERS)


def get_provider(name, options=None, region=None):
    if name not in PROVIDERS:
        raise SpecError(
            "provider",
            "unknown provider %r" % (name,),
            hint="use one of: %s" % ", ".join(provider_names()),
        )
    return PROVIDERS[name](options, region)
