# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure credentials, one copy for the azure provider and the Azure Blob object store.

Order: a bearer token obtained elsewhere (access_token: CI jobs that ran `az account get-access-token`, the
unit tests' recorded exchanges), a service principal (client id, secret and tenant, from options or from
the environment the AWX/AAP 'Microsoft Azure Resource Manager' credential injects), else azure-identity's
DefaultAzureCredential (managed identity, az login); a client id alone picks a user-assigned identity.
Each caller names its own fields in the errors (provider_options.* or store).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time
from collections import namedtuple

try:
    from azure.identity import ClientSecretCredential, DefaultAzureCredential
    HAS_AZURE_IDENTITY = True
    AZURE_IDENTITY_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised where azure-identity is absent
    HAS_AZURE_IDENTITY = False
    AZURE_IDENTITY_IMPORT_ERROR = str(_exc)

try:
    from azure.core.credentials import AccessToken
except ImportError:  # pragma: no cover - the blob store works over plain requests without azure-core
    AccessToken = namedtuple("AccessToken", ["token", "expires_on"])

#: Service principal setting -> environment variables that carry it, in the order they are read.
SERVICE_PRINCIPAL_ENV = {
    "client_id": ("AZURE_CLIENT_ID",),
    "client_secret": ("AZURE_SECRET", "AZURE_CLIENT_SECRET"),
    "tenant_id": ("AZURE_TENANT", "AZURE_TENANT_ID"),
}


class StaticTokenCredential(object):
    """A TokenCredential for a bearer token obtained elsewhere (access_token)."""

    def __init__(self, token, lifetime=3600):
        self._token = token
        self._lifetime = lifetime

    def get_token(self, *scopes, **kwargs):  # pylint: disable=unused-argument
        return AccessToken(self._token, int(time.time()) + self._lifetime)


def env_value(*names):
    """The first of the environment variables `names` that is set and not empty, else None."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def service_principal(options=None):
    """{client_id, client_secret, tenant_id}: each from `options` when set there, else from the environment."""
    options = options or {}
    return dict((key, options.get(key) if options.get(key) not in (None, "") else env_value(*names))
                for key, names in SERVICE_PRINCIPAL_ENV.items())


def azure_credential(settings, incomplete):
    """ClientSecretCredential when `settings` (service_principal()) has a secret or tenant, else
    DefaultAzureCredential. A secret or tenant without all three is a mistake: `incomplete(missing)` gets
    the missing keys, sorted, and returns the SpecError to raise (it names the caller's fields)."""
    if settings.get("client_secret") or settings.get("tenant_id"):
        missing = sorted(key for key in SERVICE_PRINCIPAL_ENV if not settings.get(key))
        if missing:
            raise incomplete(missing)
        return ClientSecretCredential(settings["tenant_id"], settings["client_id"], settings["client_secret"])
    kwargs = {}
    if settings.get("client_id"):
        kwargs["managed_identity_client_id"] = settings["client_id"]
    return DefaultAzureCredential(**kwargs)
