# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure provider, part 1 of 4: clients, calls, errors and long-running operations (azure-mgmt SDKs).

- Credentials come from module_utils/azure_auth.py (shared with the Azure Blob store); the clients are
  ContainerServiceClient and ComputeManagementClient with azure-core's own retry policy disabled
  (retry_total=0), so that retries happen once, here, with retry.call_with_retry (429, 5xx, connection errors).
- Long-running operations go through the SDK pollers with a deadline (operation_timeout, which the module
  sets from wait_timeout) whose message names the operation; a poll that fails for a transient reason
  resumes from the continuation token.
- Every SDK exception becomes ProviderError with the Azure error codes (all of them, nested ones too: the
  capacity fallback in azure_capacity.py reads them) and a hint.

Split of the provider: azure_api.py (this), azure_capacity.py (SKUs, quota, fallback), azure_translate.py
(to and from the API's shapes), azure.py (AzureProvider).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from azure.core.exceptions import (
        ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError)
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.containerservice import ContainerServiceClient
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised where the SDK is absent
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = str(_exc)

from ansible_collections.llmops.platform.plugins.module_utils.azure_auth import (
    AZURE_IDENTITY_IMPORT_ERROR, HAS_AZURE_IDENTITY, SERVICE_PRINCIPAL_ENV, StaticTokenCredential, azure_credential,
    env_value, service_principal)
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

if HAS_AZURE and not HAS_AZURE_IDENTITY:
    # The credentials come from azure-identity (azure_auth.py): without it the provider cannot work either.
    HAS_AZURE, AZURE_IMPORT_ERROR = False, AZURE_IDENTITY_IMPORT_ERROR

INSTALL_HINT = ("install the Azure SDK on the controller: pip install azure-identity==1.27.0 "
                "azure-mgmt-containerservice==41.8.0 azure-mgmt-compute==39.0.0 (requirements/azure.txt)")

# Error codes that mean "no machines of this size here right now", not "your request is wrong".
CAPACITY_CODES = ("ZonalAllocationFailed", "AllocationFailed", "OverconstrainedAllocationRequest",
                  "OverconstrainedZonalAllocationRequest", "SkuNotAvailable", "QuotaExceeded",
                  "ErrCode_InsufficientVCPUQuota", "InsufficientVCPUQuota", "OperationNotAllowed_QuotaExceeded")
# Of those, the ones another zone of the same region may not have.
ZONAL_CODES = ("ZonalAllocationFailed", "AllocationFailed", "OverconstrainedAllocationRequest",
               "OverconstrainedZonalAllocationRequest", "SkuNotAvailable")
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)

HINTS = {
    "AuthorizationFailed": "give the identity the 'Azure Kubernetes Service Contributor Role' (or Contributor) on "
                           "resource group %(rg)s, plus Reader on the cluster's node resource group for list_nodes and "
                           "'Azure Kubernetes Service Cluster User Role' for kubeconfig",
    "LinkedAuthorizationFailed": "the identity also needs rights on linked resources (subnet, identity, DNS zone): "
                                 "Network Contributor on the VNet or Contributor on the resource group",
    "ResourceGroupNotFound": "create resource group %(rg)s first (azure.azcollection.azure_rm_resourcegroup, or "
                             "az group create -n %(rg)s -l <region>), or fix provider_options.resource_group",
    "SubscriptionNotFound": "check provider_options.subscription_id / AZURE_SUBSCRIPTION_ID",
    "InvalidSubscriptionId": "check provider_options.subscription_id / AZURE_SUBSCRIPTION_ID",
    "MissingSubscriptionRegistration": "register the resource provider once: az provider register -n "
                                       "Microsoft.ContainerService (and Microsoft.Compute)",
    "InvalidAuthenticationToken": "the token was refused; check tenant_id/client_id/client_secret or the "
                                  "managed identity, and that it belongs to the subscription's tenant",
    "ExpiredAuthenticationToken": "the token expired; rerun (a fresh one is fetched) or renew the client secret",
    "OperationNotAllowed": "AKS refused the change in the cluster's current state (often another operation "
                           "is still running); wait for it to finish and rerun",
    "Conflict": "another operation on this resource is running; wait for it and rerun",
    "QuotaExceeded": "request more vCPU quota for the VM family in this region (Portal: Subscriptions > Usage + "
                     "quotas), or choose another size/region; gpu_cluster_info reports limits and usage",
    "ZonalAllocationFailed": "Azure has no free capacity for this VM size in that zone now; list more zones or "
                             "instance_types (capacity fallback walks them), or use another region",
    "AllocationFailed": "Azure has no free capacity for this VM size in the region now; list more instance_types or "
                        "zones, or use another region",
    "SkuNotAvailable": "the VM size is restricted for this subscription/region/zone; gpu_capacity_info lists where it is "
                       "offered, or open a support request to lift the restriction",
    "ErrCode_InsufficientVCPUQuota": "request more vCPU quota for the VM family in this region (Portal: "
                                     "Subscriptions > Usage + quotas); gpu_cluster_info reports limits and usage",
}
DEFAULT_HINT = "see the Azure error code above (https://aka.ms/aks-error-codes) and the Activity log of resource group %(rg)s"


def _error_codes(exc):
    """Every Azure error code in an HttpResponseError: top level, nested details, and the codes AKS quotes
    inside messages of wrapper errors such as ReconcileVMSSAgentPoolFailed."""
    codes = []
    error = getattr(exc, "error", None)
    stack = [error] if error is not None else []
    while stack:
        item = stack.pop(0)
        code = getattr(item, "code", None)
        if code and code not in codes:
            codes.append(code)
        stack.extend(getattr(item, "details", None) or [])
    text = str(getattr(exc, "message", "") or exc)
    for code in CAPACITY_CODES:
        if re.search(r"\b%s\b" % re.escape(code), text) and code not in codes:
            codes.append(code)
    return codes


def _is_transient(exc):
    if not HAS_AZURE:
        return False
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(exc, HttpResponseError):
        status = getattr(exc, "status_code", None)
        if status is None and getattr(exc, "response", None) is not None:
            status = exc.response.status_code
        # A failed long-running operation surfaces with the status poll's 200: not transient.
        return status in TRANSIENT_STATUS
    return False


class AksApiMixin(object):
    """Settings, credentials, clients, calls and long-running operations of AzureProvider (which sets
    options, operation_timeout, _cs and _compute in its __init__)."""

    def _option(self, key, *env):
        value = self.options.get(key)
        return env_value(*env) if value in (None, "") else value

    @property
    def subscription_id(self):
        value = self._option("subscription_id", "AZURE_SUBSCRIPTION_ID")
        if not value:
            raise SpecError("provider_options.subscription_id", "is required by the azure provider",
                            hint="set provider_options.subscription_id or export AZURE_SUBSCRIPTION_ID (the AWX/AAP "
                                 "'Microsoft Azure Resource Manager' credential injects it)")
        return str(value)

    @property
    def resource_group(self):
        value = self.options.get("resource_group")
        if not value:
            raise SpecError("provider_options.resource_group", "is required by the azure provider",
                            hint="name the resource group that holds the AKS cluster (it must exist)")
        return str(value)

    def _credential(self):
        if self.options.get("access_token"):
            return StaticTokenCredential(str(self.options["access_token"]))

        def incomplete(missing):
            return SpecError("provider_options.%s" % missing[0],
                             "is required for service principal authentication (missing: %s)"
                             % ", ".join("provider_options.%s / %s" % (k, " or ".join(SERVICE_PRINCIPAL_ENV[k]))
                                         for k in missing),
                             hint="set client_id, client_secret and tenant_id (the AWX/AAP 'Microsoft Azure "
                                  "Resource Manager' credential injects AZURE_CLIENT_ID, AZURE_SECRET, "
                                  "AZURE_TENANT), or none of them to use DefaultAzureCredential (managed "
                                  "identity, az login)")

        return azure_credential(service_principal(self.options), incomplete)

    def check_settings(self):
        """Raise SpecError for missing provider_options before anything is called."""
        if not HAS_AZURE:
            raise ProviderError("the azure provider needs the Azure SDK (%s)" % AZURE_IMPORT_ERROR, hint=INSTALL_HINT)
        return self.subscription_id, self.resource_group, self._credential()

    def _clients(self):
        if self._cs is None:
            subscription, _rg, credential = self.check_settings()
            kwargs = {
                # One retry layer only: ours (call_with_retry), so attempts do not multiply.
                "retry_total": 0,
                "polling_interval": float(self.options.get("polling_interval", 15)),
            }
            if self.options.get("connection_verify") is not None:
                kwargs["connection_verify"] = self.options["connection_verify"]
            base_url = self.options.get("base_url") or None
            self._cs = ContainerServiceClient(credential, subscription, base_url=base_url, **kwargs)
            self._compute = ComputeManagementClient(credential, subscription, base_url=base_url, **kwargs)
        return self._cs, self._compute

    @property
    def cs(self):
        return self._clients()[0]

    @property
    def compute(self):
        return self._clients()[1]

    def _retry(self, func):
        base = float(self.options.get("retry_base_delay", 1.0))
        return call_with_retry(func, _is_transient, attempts=int(self.options.get("retry_attempts", 6)), base=base)

    def _error(self, exc, what):
        """Any SDK exception -> ProviderError with the Azure code, its message and a hint."""
        context = {"rg": self.options.get("resource_group")}
        if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
            # Raised by the credential itself (no HTTP answer from ARM): no way to get a token.
            return ProviderError(
                "%s: cannot get an Azure token: %s" % (what, str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
                code="ClientAuthenticationError",
                hint="set provider_options client_id/client_secret/tenant_id (or AZURE_CLIENT_ID, AZURE_SECRET, "
                     "AZURE_TENANT as the AWX/AAP 'Microsoft Azure Resource Manager' credential does), or run where "
                     "a managed identity or `az login` is available (DefaultAzureCredential)")
        if isinstance(exc, HttpResponseError):
            codes = _error_codes(exc)
            code = codes[0] if codes else (exc.status_code and "HTTP %s" % exc.status_code)
            message = getattr(getattr(exc, "error", None), "message", None) or exc.message or str(exc)
            hint = None
            for candidate in codes:
                if candidate in HINTS:
                    hint = HINTS[candidate]
                    break
            error = ProviderError("%s failed: %s" % (what, str(message).strip().splitlines()[0]),
                                  code=code, hint=(hint or DEFAULT_HINT) % context)
            error.codes = codes
            return error
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            return ProviderError("%s: cannot reach Azure Resource Manager: %s" % (what, exc), code="ConnectionError",
                                 hint="check network access to %s (proxy, firewall) and rerun"
                                      % (self.options.get("base_url") or "management.azure.com"))
        return ProviderError("%s failed: %s" % (what, exc), code=type(exc).__name__)

    def _call(self, what, func, not_found=False):
        """func() with retries; SDK errors become ProviderError. With not_found, "not found" returns None
        (but not a missing resource group: that is a mistake in the settings, not an absent resource)."""
        try:
            return self._retry(func)
        except (SpecError, ProviderError):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            if (not_found and HAS_AZURE and isinstance(exc, ResourceNotFoundError)
                    and "ResourceGroupNotFound" not in _error_codes(exc)):
                return None
            raise self._error(exc, what)

    def _get_or_none(self, what, func):
        """A GET that returns None for "not found" (but not for a missing resource group)."""
        return self._call(what, func, not_found=True)

    def _operation(self, what, start, resume):
        """Start a long-running operation and wait for its end (operation_timeout seconds).

        start() -> LROPoller; resume(token) -> LROPoller continuing from a continuation token. A poll
        that fails transiently (429/5xx/connection) resumes from the token instead of failing the run.
        """
        timeout = float(self.operation_timeout)
        interval = min(float(self.options.get("polling_interval", 15)), 5.0)
        poller = self._call(what, start)
        if poller is None:
            return None
        token = poller.continuation_token()
        state = {"poller": poller}

        def wait():
            current = state["poller"]
            wait_for(lambda: (current.done(), current.status()), "Azure operation '%s'" % what, timeout,
                     interval=interval)
            try:
                return current.result()
            except Exception as exc:  # pylint: disable=broad-except
                if _is_transient(exc):
                    state["poller"] = resume(token)
                raise

        try:
            return self._retry(wait)
        except WaitTimeout as exc:
            # Azure has not answered yet: say so, with no capacity code, so that capacity fallback does not
            # treat a slow create as a stockout (and the user does not go hunting for quota).
            raise WaitTimeout("%s; the operation is still running in Azure (still creating/updating, not a "
                              "capacity failure)" % exc.message, code="StillRunning",
                              hint="rerun later (gpu_cluster picks the operation up where it is) or raise "
                                   "wait_timeout; AKS reports capacity problems as errors, not as a slow operation")
        except (SpecError, ProviderError):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, what)
