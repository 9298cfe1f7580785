# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure: an AKS managed cluster (Microsoft.ContainerService managedClusters) and its agent pools.

Translation only; the plan comes from module_utils/reconcile.py.

- Cluster = managedCluster in provider_options.resource_group, created with exactly one System-mode
  agent pool (AKS requires one): the first spec pool without a GPU that is on-demand, else a minimal
  pool from provider_options.system_pool (default name "system", Standard_D2s_v5 x 1). That
  provider-made pool is infrastructure: it is not reported in ClusterState.node_pools and its nodes are
  not listed, so reconcile never plans to change or purge it; it goes away with the cluster.
- Node pool = agentPool (mode User; System for the spec pool chosen above). GPU pools get their VM size
  from instance_types or the GPU catalog; capacity errors (AllocationFailed, ZonalAllocationFailed,
  SkuNotAvailable, OverconstrainedAllocationRequest, quota) make it try the next zone set, then the next
  VM size, deleting the failed pool in between, and record an event for each fallback.
- In place: count, autoscaler bounds, nodeLabels, nodeTaints; cluster kubernetesVersion. VM size,
  zones, priority (spot) and OS disk force a new pool (reconcile reports them as not updatable).
- Foundations on an existing cluster (FOUNDATION_FIELDS, cluster_differences): OIDC issuer, workload
  identity, Entra ID admin groups / Azure RBAC and local accounts are updated with a PUT of the managed
  cluster; a pool's vnetSubnetID or the network profile cannot change, and a difference there fails the
  plan (ProviderError naming the option, both values and the fix) before anything is changed.
- Long-running operations go through the SDK pollers with a deadline (self.operation_timeout, which the
  module sets from wait_timeout) whose message names the operation. azure-core's own retry policy is
  disabled (retry_total=0) so that retries happen once, here, with retry.call_with_retry (429, 5xx,
  connection errors), and a poll that fails for a transient reason resumes from the continuation token.
- Nodes are VMSS instances in the cluster's node resource group (VMSS tagged aks-managed-poolName).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import (
    instance_types_for, shape, shapes_for)
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import (
    CapacityOffer, ClusterProvider, ClusterState, Node, NodePoolState)
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

try:
    import yaml
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import (
        ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError)
    from azure.identity import ClientSecretCredential, DefaultAzureCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.containerservice import ContainerServiceClient
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised where the SDK is absent
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = str(_exc)

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

# Written by AKS itself on spot pools (label and taint); not part of what the user asked for.
AKS_LABEL_PREFIX = "kubernetes.azure.com/"
# Properties that are read-only; stripped before a GET result is sent back in a PUT.
READONLY_CLUSTER = ("provisioningState", "powerState", "fqdn", "privateFQDN", "azurePortalFQDN",
                    "currentKubernetesVersion", "maxAgentPools", "resourceUID")
READONLY_POOL = ("provisioningState", "currentOrchestratorVersion", "nodeImageVersion", "eTag")
ZONE_RE = re.compile(r"^(?:[a-z0-9]+-)?([1-9])$")
# AgentPools_CreateOrUpdate path parameter agentPoolName (REST reference, learn.microsoft.com/rest/api/aks/
# agent-pools/create-or-update): Linux pool names are 1-12 lower-case letters and digits, from a letter.
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The managed-cluster fields the foundations set (docs/clouds.md, Azure): change key (the provider option
# where there is one) -> (path under properties, whether AKS changes it on an existing cluster). One table
# serves the create body, the drift comparison and the in-place update, so the three cannot disagree.
# In place: what `az aks update` changes with a PUT of the managed cluster (--enable-oidc-issuer,
# --enable/--disable-workload-identity, --enable-aad, --aad-admin-group-object-ids, --enable-azure-rbac,
# --aad-tenant-id, --disable-local-accounts). The network profile is fixed when the cluster is created.
FOUNDATION_FIELDS = (
    ("network_plugin", ("networkProfile", "networkPlugin"), False),
    ("network_plugin_mode", ("networkProfile", "networkPluginMode"), False),
    ("pod_cidr", ("networkProfile", "podCidr"), False),
    ("service_cidr", ("networkProfile", "serviceCidr"), False),
    ("dns_service_ip", ("networkProfile", "dnsServiceIP"), False),
    ("oidc_issuer", ("oidcIssuerProfile", "enabled"), True),
    ("workload_identity", ("securityProfile", "workloadIdentity", "enabled"), True),
    ("aad_managed", ("aadProfile", "managed"), True),
    ("admin_group_object_ids", ("aadProfile", "adminGroupObjectIDs"), True),
    ("azure_rbac", ("aadProfile", "enableAzureRBAC"), True),
    ("tenant_id", ("aadProfile", "tenantID"), True),
    ("disable_local_accounts", ("disableLocalAccounts",), True),
)
FOUNDATION_IN_PLACE = frozenset(key for key, _path, in_place in FOUNDATION_FIELDS if in_place)
# Read-only inside the foundation profiles: dropped before a read-back cluster is PUT again.
READONLY_FOUNDATION = (("oidcIssuerProfile", "issuerURL"),)

# node_config.sysctls key -> (SysctlConfig REST field, value type). The AKS "custom node configuration"
# list; tests/unit/plugins/module_utils/providers/test_azure_node_config.py checks every name against
# the SDK's SysctlConfig model, both ways. Keys not here have no AKS field: reported, never dropped.
AKS_SYSCTLS = {
    "net.core.somaxconn": ("netCoreSomaxconn", int),
    "net.core.netdev_max_backlog": ("netCoreNetdevMaxBacklog", int),
    "net.core.rmem_default": ("netCoreRmemDefault", int),
    "net.core.rmem_max": ("netCoreRmemMax", int),
    "net.core.wmem_default": ("netCoreWmemDefault", int),
    "net.core.wmem_max": ("netCoreWmemMax", int),
    "net.core.optmem_max": ("netCoreOptmemMax", int),
    "net.ipv4.tcp_max_syn_backlog": ("netIpv4TcpMaxSynBacklog", int),
    "net.ipv4.tcp_max_tw_buckets": ("netIpv4TcpMaxTwBuckets", int),
    "net.ipv4.tcp_fin_timeout": ("netIpv4TcpFinTimeout", int),
    "net.ipv4.tcp_keepalive_time": ("netIpv4TcpKeepaliveTime", int),
    "net.ipv4.tcp_keepalive_probes": ("netIpv4TcpKeepaliveProbes", int),
    "net.ipv4.tcp_keepalive_intvl": ("netIpv4TcpkeepaliveIntvl", int),  # sic: lower-case k in the API
    "net.ipv4.tcp_tw_reuse": ("netIpv4TcpTwReuse", bool),
    "net.ipv4.ip_local_port_range": ("netIpv4IpLocalPortRange", str),
    "net.ipv4.neigh.default.gc_thresh1": ("netIpv4NeighDefaultGcThresh1", int),
    "net.ipv4.neigh.default.gc_thresh2": ("netIpv4NeighDefaultGcThresh2", int),
    "net.ipv4.neigh.default.gc_thresh3": ("netIpv4NeighDefaultGcThresh3", int),
    "net.netfilter.nf_conntrack_max": ("netNetfilterNfConntrackMax", int),
    "net.netfilter.nf_conntrack_buckets": ("netNetfilterNfConntrackBuckets", int),
    "fs.inotify.max_user_watches": ("fsInotifyMaxUserWatches", int),
    "fs.file-max": ("fsFileMax", int),
    "fs.aio-max-nr": ("fsAioMaxNr", int),
    "fs.nr_open": ("fsNrOpen", int),
    "kernel.threads-max": ("kernelThreadsMax", int),
    "vm.max_map_count": ("vmMaxMapCount", int),
    "vm.swappiness": ("vmSwappiness", int),
    "vm.vfs_cache_pressure": ("vmVfsCachePressure", int),
}
# node_config.kubelet (upstream KubeletConfiguration name) -> (AKS KubeletConfig REST field, type).
# "mebibytes": an upstream quantity ("10Mi") that AKS takes as a whole number of MB.
AKS_KUBELET = {
    "cpuManagerPolicy": ("cpuManagerPolicy", str),
    "cpuCFSQuota": ("cpuCfsQuota", bool),
    "cpuCFSQuotaPeriod": ("cpuCfsQuotaPeriod", str),
    "imageGCHighThresholdPercent": ("imageGcHighThreshold", int),
    "imageGCLowThresholdPercent": ("imageGcLowThreshold", int),
    "topologyManagerPolicy": ("topologyManagerPolicy", str),
    "allowedUnsafeSysctls": ("allowedUnsafeSysctls", list),
    "failSwapOn": ("failSwapOn", bool),
    "containerLogMaxSize": ("containerLogMaxSizeMB", "mebibytes"),
    "containerLogMaxFiles": ("containerLogMaxFiles", int),
    "podPidsLimit": ("podMaxPids", int),
}


class StaticTokenCredential(object):
    """A TokenCredential for a bearer token obtained elsewhere (provider_options.access_token): CI jobs
    that already ran `az account get-access-token`, and the unit tests' recorded exchanges."""

    def __init__(self, token, lifetime=3600):
        self._token = token
        self._lifetime = lifetime

    def get_token(self, *scopes, **kwargs):  # pylint: disable=unused-argument
        return AccessToken(self._token, int(time.time()) + self._lifetime)


def _plain(model):
    """SDK model -> dict with the REST API's property names (what the published API documents)."""
    if model is None:
        return None
    if hasattr(model, "as_dict"):
        return model.as_dict()
    return dict(model)


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


def _parse_taint(text):
    """AKS nodeTaints entry "key=value:Effect" (or "key:Effect") -> Taint."""
    if "=" not in text:
        key, effect = (text.split(":", 1) + ["NoSchedule"])[:2]
        return Taint(key=key, value="", effect=effect)
    key, rest = text.split("=", 1)
    value, effect = rest.rsplit(":", 1) if ":" in rest else (rest, "NoSchedule")
    return Taint(key=key, value=value, effect=effect)


def _format_taint(taint):
    return "%s=%s:%s" % (taint.key, taint.value, taint.effect)


def _zone(text):
    match = ZONE_RE.match(str(text))
    return match.group(1) if match else None


def _get_path(data, path):
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _set_path(data, path, value):
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def _comparable(key, value):
    """A foundation value in the form two of them are compared in: resource IDs, GUIDs and plugin names are
    case-insensitive in ARM (it often answers `resourcegroups` for `resourceGroups`); flags absent = off."""
    if key in ("oidc_issuer", "workload_identity", "aad_managed", "azure_rbac", "disable_local_accounts"):
        return bool(value)
    if key == "admin_group_object_ids":
        return sorted(str(g).lower() for g in value or [])
    return None if value in (None, "") else str(value).lower()


def _convert(value, kind, where):
    """A node_config value -> the JSON type AKS wants (SpecError naming `where` when it cannot be)."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true"):
                return True
            if str(value).strip().lower() in ("0", "false"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(str(value).strip())
        if kind is list:
            if not isinstance(value, list):
                raise ValueError(value)
            return [str(v) for v in value]
        if kind == "mebibytes":
            match = re.match(r"^\s*(\d+)\s*(Mi|Gi)?\s*$", str(value))
            if not match:
                raise ValueError(value)
            return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)
        return str(value)
    except (TypeError, ValueError):
        raise SpecError(where, "%r cannot be expressed as AKS wants it (%s)"
                        % (value, "whole MiB, e.g. 10Mi" if kind == "mebibytes" else getattr(kind, "__name__", kind)))


def _unconvert(value, kind):
    """An AKS value -> the cloud-neutral node_config form (sysctl values are strings)."""
    if kind == "mebibytes":
        return "%dMi" % value
    return value


class AzureProvider(ClusterProvider):
    name = "azure"
    updatable_pool_fields = frozenset(["count", "min_count", "max_count", "labels", "taints"])
    updatable_cluster_fields = frozenset(["kubernetes_version"]) | FOUNDATION_IN_PLACE
    reported_pool_fields = ("count", "min_count", "max_count", "instance_types", "zones", "gpu", "labels", "taints",
                            "capacity_type", "disk_size_gb", "node_config")
    # Seconds gpu_cluster waits when wait_timeout is unset. Above what AKS takes (docs/clouds.md, "Waits"):
    # a cluster with its System pool is usually ready in 5-10 minutes and a GPU pool in 5-15; a VM that
    # does not come up is reported by Azure as OSProvisioningTimedOut only after its 20-minute OS
    # provisioning window, and a zonal GPU stockout (ZonalAllocationFailed/AllocationFailed) can take as
    # long to surface on a scale set. One hour lets each of those answers arrive (then the capacity
    # fallback takes over) while still ending a run that is really stuck.
    default_wait_timeout = 3600

    def __init__(self, options=None, region=None):
        super(AzureProvider, self).__init__(options, region)
        self._cs = None
        self._compute = None
        self._created_with_cluster = set()
        self._offered = {}  # region -> {vm size: sku dict} from resource_skus, once per region
        # pool name -> node_config keys the spec sets (what get_cluster reports back for comparison).
        self._wanted_node_config = {}
        # cluster name -> its properties as get_cluster last read them (cluster_differences compares them).
        self._read_properties = {}

    # -- settings and clients ---------------------------------------------------------------------
    def _option(self, key, *env):
        value = self.options.get(key)
        if value in (None, ""):
            for name in env:
                if os.environ.get(name):
                    return os.environ[name]
            return None
        return value

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
        sp = {
            "client_id": (self._option("client_id", "AZURE_CLIENT_ID"), "AZURE_CLIENT_ID"),
            "client_secret": (self._option("client_secret", "AZURE_SECRET", "AZURE_CLIENT_SECRET"),
                              "AZURE_SECRET or AZURE_CLIENT_SECRET"),
            "tenant_id": (self._option("tenant_id", "AZURE_TENANT", "AZURE_TENANT_ID"), "AZURE_TENANT or AZURE_TENANT_ID"),
        }
        # A client id alone is how a user-assigned managed identity is chosen; a secret or tenant means a
        # service principal, which needs all three.
        if sp["client_secret"][0] or sp["tenant_id"][0]:
            missing = [k for k, (v, _env) in sorted(sp.items()) if not v]
            if missing:
                raise SpecError("provider_options.%s" % missing[0],
                                "is required for service principal authentication (missing: %s)"
                                % ", ".join("provider_options.%s / %s" % (k, sp[k][1]) for k in missing),
                                hint="set client_id, client_secret and tenant_id (the AWX/AAP 'Microsoft Azure "
                                     "Resource Manager' credential injects AZURE_CLIENT_ID, AZURE_SECRET, "
                                     "AZURE_TENANT), or none of them to use DefaultAzureCredential (managed "
                                     "identity, az login)")
            return ClientSecretCredential(sp["tenant_id"][0], sp["client_id"][0], sp["client_secret"][0])
        kwargs = {}
        if sp["client_id"][0]:
            kwargs["managed_identity_client_id"] = sp["client_id"][0]
        return DefaultAzureCredential(**kwargs)

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

    # -- calls, errors, long-running operations ---------------------------------------------------
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

    def _call(self, what, func):
        try:
            return self._retry(func)
        except (SpecError, ProviderError):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, what)

    def _get_or_none(self, what, func):
        """A GET that returns None for "not found" (but not for a missing resource group)."""
        try:
            return self._retry(func)
        except (SpecError, ProviderError):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            if HAS_AZURE and isinstance(exc, ResourceNotFoundError) and "ResourceGroupNotFound" not in _error_codes(exc):
                return None
            raise self._error(exc, what)

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

    # -- checks -----------------------------------------------------------------------------------
    def system_pool_for(self, spec):
        """The spec pool AKS gets as the System pool at cluster creation, or None (a provider-made one)."""
        for pool in spec.node_pools:
            if pool.gpu is None and pool.capacity_type == "on_demand":
                return pool
        return None

    def _system_pool_options(self):
        raw = dict(self.options.get("system_pool") or {})
        return {"name": raw.get("name") or "system", "vm_size": raw.get("vm_size") or "Standard_D2s_v5",
                "count": int(raw.get("count") or 1), "zones": [str(z) for z in raw.get("zones") or []]}

    def _vm_sizes(self, pool, index):
        sizes = instance_types_for("azure", pool, index)
        return sizes or [self.options.get("default_vm_size") or "Standard_D4s_v5"]

    def check_pool_names(self, spec):
        """AKS pool names are stricter than Kubernetes names: refuse them before any call."""
        for i, pool in enumerate(spec.node_pools):
            if not POOL_NAME_RE.match(pool.name or ""):
                raise SpecError("node_pools[%d].name" % i,
                                "%r is not a valid AKS agent pool name: it must match ^[a-z][a-z0-9]{0,11}$" % (pool.name,),
                                hint="use 1-12 lower-case letters and digits, starting with a letter (no '-'), "
                                     "e.g. %r" % re.sub(r"[^a-z0-9]", "", pool.name.lower())[:12])

    def check_admin_groups(self):
        """admin_group_object_ids must be Entra ID object IDs: an empty entry (an unset environment variable)
        or a display name would otherwise reach AKS, or leave a cluster without the admins it was meant to get."""
        groups = self.options.get("admin_group_object_ids") or []
        if not isinstance(groups, list):
            raise SpecError("provider_options.admin_group_object_ids", "must be a list of Entra ID group object IDs",
                            hint="e.g. admin_group_object_ids: [0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0]")
        for i, group in enumerate(groups):
            if not GUID_RE.match(str(group)):
                raise SpecError("provider_options.admin_group_object_ids[%d]" % i,
                                "%r is not an Entra ID group object ID (a GUID)" % (group,),
                                hint="give the group's object ID (az ad group show -g <name> --query id -o tsv); an "
                                     "empty one usually means its environment variable (AZURE_AKS_ADMIN_GROUP_ID) "
                                     "is not set. A group made by the foundations step is added by itself")

    def node_config_for_aks(self, pool, index, record=True):
        """Split node_pools[i].node_config into what AKS can hold, in the cloud-neutral form, and record an
        event for every key that has no AKS field (never dropped silently). Raises SpecError for values
        AKS cannot take."""
        where = "node_pools[%d].node_config" % index
        config = getattr(pool, "node_config", None) or {}
        kept = {}
        notes = []
        if config.get("user_data"):
            notes.append("user_data: AKS agent pools run no user boot document; the hardening reaches AKS "
                         "nodes through sysctls/kubelet (linuxOSConfig/kubeletConfig) only")
        sysctls = {}
        for key, value in sorted((config.get("sysctls") or {}).items()):
            if key in AKS_SYSCTLS:
                field, kind = AKS_SYSCTLS[key]
                _convert(value, kind, "%s.sysctls.%s" % (where, key))
                sysctls[key] = str(value)
            else:
                notes.append("sysctls.%s: AKS linuxOSConfig.sysctls has no field for it" % key)
        if sysctls:
            kept["sysctls"] = sysctls
        kubelet = {}
        for key, value in sorted((config.get("kubelet") or {}).items()):
            if key in AKS_KUBELET:
                field, kind = AKS_KUBELET[key]
                kubelet[key] = _unconvert(_convert(value, kind, "%s.kubelet.%s" % (where, key)), kind)
            else:
                notes.append("kubelet.%s: AKS kubeletConfig has no field for it" % key)
        if kubelet:
            kept["kubelet"] = kubelet
        if "secure_boot" in config:
            kept["secure_boot"] = bool(config["secure_boot"])
        if record:
            for note in notes:
                self.record("node_pool/%s: node_config.%s; not applied on AKS (docs/hardening.md lists what "
                            "the AKS node image provides)" % (pool.name, note))
        return kept

    def _node_config_properties(self, pool, index):
        """linuxOSConfig, kubeletConfig and securityProfile of an agent pool from its node_config."""
        config = self.node_config_for_aks(pool, index, record=False)
        where = "node_pools[%d].node_config" % index
        props = {}
        if config.get("sysctls"):
            props["linuxOSConfig"] = {"sysctls": dict(
                (AKS_SYSCTLS[k][0], _convert(v, AKS_SYSCTLS[k][1], "%s.sysctls.%s" % (where, k)))
                for k, v in config["sysctls"].items())}
        if config.get("kubelet"):
            props["kubeletConfig"] = dict(
                (AKS_KUBELET[k][0], _convert(v, AKS_KUBELET[k][1], "%s.kubelet.%s" % (where, k)))
                for k, v in config["kubelet"].items())
        if "secure_boot" in config:
            # Trusted launch: secure boot with a virtual TPM (integrity monitoring needs the vTPM).
            props["securityProfile"] = {"enableSecureBoot": config["secure_boot"], "enableVTPM": config["secure_boot"]}
        return props

    def validate(self, spec):
        self.check_pool_names(spec)
        self.check_settings()
        self.check_admin_groups()
        for i, pool in enumerate(spec.node_pools):
            kept = self.node_config_for_aks(pool, i)
            self._wanted_node_config[pool.name] = kept
            # What is compared with the pool AKS reports: the part AKS can hold (the rest is in events).
            pool.node_config = kept
        if not spec.region:
            raise SpecError("region", "is required by the azure provider", hint="set it to an Azure region, e.g. eastus")
        for i, pool in enumerate(spec.node_pools):
            where = "node_pools[%d]" % i
            sizes = self._vm_sizes(pool, i)
            if pool.gpu:
                for size in sizes:
                    found, _gpu = shape("azure", size)
                    if found is not None and pool.gpu.count > found.gpus:
                        raise SpecError(where + ".gpu.count", "%s carries %d GPU(s), not %d"
                                        % (size, found.gpus, pool.gpu.count))
            for j, zone in enumerate(pool.zones):
                if _zone(zone) is None:
                    raise SpecError("%s.zones[%d]" % (where, j), "%r is not an Azure availability zone" % (zone,),
                                    hint="use zone numbers: '1', '2', '3'")
            if (pool.min_count is None) != (pool.max_count is None):
                missing = "max_count" if pool.max_count is None else "min_count"
                raise SpecError("%s.%s" % (where, missing), "is required too: AKS autoscaling needs min_count and max_count",
                                hint="set both to enable the cluster autoscaler, or neither")
            if pool.gpu and self.options.get("check_sku_availability", True):
                offered = self._offered_sizes(spec.region)
                usable = [s for s in sizes if s in offered]
                if not usable:
                    reasons = sorted(set(self._restriction(spec.region, s) for s in sizes))
                    raise SpecError("region", "%s (%s x %s) is not offered to this subscription in %s: none of %s (%s)"
                                    % (where, pool.gpu.count, pool.gpu.type, spec.region, ", ".join(sizes),
                                       "; ".join(reasons)),
                                    hint="choose another region (gpu_capacity_info reports where %s is offered) or "
                                         "another GPU type" % pool.gpu.type)

    # -- SKU availability and quota ----------------------------------------------------------------
    def _skus(self, region):
        if region not in self._offered:
            flt = "location eq '%s'" % region
            skus = self._call("list VM sizes (resource SKUs) in %s" % region,
                              lambda: [_plain(s) for s in self.compute.resource_skus.list(filter=flt)])
            self._offered[region] = dict((s.get("name"), s) for s in skus if s.get("resourceType") == "virtualMachines")
        return self._offered[region]

    def _sku_zones(self, region, sku):
        """(offered, zones): whether the size can be had in `region` at all, and its unrestricted zones."""
        zones = set()
        for info in sku.get("locationInfo") or []:
            if (info.get("location") or "").lower() == region.lower():
                zones.update(info.get("zones") or [])
        for restriction in sku.get("restrictions") or []:
            if restriction.get("type") == "Location":
                return False, []
            if restriction.get("type") == "Zone":
                for info in (restriction.get("restrictionInfo") or {}).get("zones") or []:
                    zones.discard(info)
        return True, sorted(zones)

    def _offered_sizes(self, region):
        return set(name for name, sku in self._skus(region).items() if self._sku_zones(region, sku)[0])

    def _restriction(self, region, size):
        sku = self._skus(region).get(size)
        if sku is None:
            return "%s: not listed in %s" % (size, region)
        for restriction in sku.get("restrictions") or []:
            if restriction.get("type") == "Location":
                return "%s: %s" % (size, restriction.get("reasonCode") or "restricted")
        return "%s: offered" % size

    def gpu_capacity(self, gpu_type, count, regions, capacity_type="on_demand"):
        """Unrestricted VM sizes and zones from resource SKUs, with the vCPU quota that applies: the VM
        family's (e.g. standardNCASv3_T4Family) on demand, the regional lowPriorityCores for spot."""
        shapes = shapes_for("azure", gpu_type, count)
        regions = list(regions or [])
        if not regions and self.options.get("region"):
            regions = [self.options["region"]]
        if not regions:
            raise SpecError("regions", "name at least one Azure region", hint="e.g. regions: [eastus, westeurope]")
        offers = []
        for region in regions:
            skus = self._skus(region)
            usages = self._call("list vCPU quotas in %s" % region,
                                lambda region=region: [_plain(u) for u in self.compute.usage.list(region)])
            quota = dict(((u.get("name") or {}).get("value"), u) for u in usages)
            for candidate in shapes:
                sku = skus.get(candidate.instance_type)
                if sku is None:
                    continue
                offered, zones = self._sku_zones(region, sku)
                if not offered:
                    continue
                quota_name = "lowPriorityCores" if capacity_type == "spot" else sku.get("family")
                usage = quota.get(quota_name) or {}
                for zone in zones or [None]:
                    offers.append(CapacityOffer(
                        region=region, instance_type=candidate.instance_type, gpus_per_node=candidate.gpus, zone=zone,
                        quota_name=quota_name, quota_limit=usage.get("limit"),
                        quota_used=usage.get("currentValue"), quota_unit="vCPUs" if usage else None))
        return offers

    # -- reading state ----------------------------------------------------------------------------
    def _get_cluster_raw(self, name):
        return _plain(self._get_or_none("get AKS cluster %s" % name,
                                        lambda: self.cs.managed_clusters.get(self.resource_group, name)))

    def _hidden_pool(self, profile):
        """The provider-made System pool (see module doc): not reported, not listed."""
        return (profile.get("name") == self._system_pool_options()["name"]
                and (profile.get("tags") or {}).get("llmops-pool-role") == "system")

    def _pool_state(self, profile):
        size = profile.get("vmSize")
        found, gpu_type = shape("azure", size) if size else (None, None)
        autoscaling = bool(profile.get("enableAutoScaling"))
        provisioning = profile.get("provisioningState") or "Unknown"
        power = ((profile.get("powerState") or {}).get("code") or "Running").lower()
        status = "running" if provisioning == "Succeeded" and power == "running" else \
            (power if provisioning == "Succeeded" else provisioning.lower())
        state = NodePoolState(
            name=profile["name"],
            status=status,
            count=int(profile.get("count") or 0),
            min_count=profile.get("minCount") if autoscaling else None,
            max_count=profile.get("maxCount") if autoscaling else None,
            instance_types=[size] if size else [],
            zones=sorted(profile.get("availabilityZones") or []),
            gpu=GpuSpec(type=gpu_type, count=found.gpus) if found else None,
            labels=dict((k, v) for k, v in (profile.get("nodeLabels") or {}).items() if not k.startswith(AKS_LABEL_PREFIX)),
            taints=[_parse_taint(t) for t in profile.get("nodeTaints") or [] if not t.startswith(AKS_LABEL_PREFIX)],
            capacity_type="spot" if profile.get("scaleSetPriority") == "Spot" else "on_demand",
            disk_size_gb=profile.get("osDiskSizeGB"),
        )
        state.node_config = self._reported_node_config(profile)
        return state

    def _reported_node_config(self, profile):
        """The pool's linuxOSConfig/kubeletConfig/securityProfile in node_config form, limited to the keys the
        spec sets when it is known (a setting the spec leaves to AKS is not drift)."""
        sysctls = (profile.get("linuxOSConfig") or {}).get("sysctls") or {}
        kubelet = profile.get("kubeletConfig") or {}
        security = profile.get("securityProfile") or {}
        config = {}
        found = dict((key, str(int(sysctls[field]) if isinstance(sysctls[field], bool) else sysctls[field]))
                     for key, (field, _kind) in AKS_SYSCTLS.items() if sysctls.get(field) is not None)
        if found:
            config["sysctls"] = found
        found = dict((key, _unconvert(kubelet[field], kind)) for key, (field, kind) in AKS_KUBELET.items()
                     if kubelet.get(field) is not None)
        if found:
            config["kubelet"] = found
        if security.get("enableSecureBoot") is not None:
            config["secure_boot"] = bool(security["enableSecureBoot"])
        wanted = self._wanted_node_config.get(profile.get("name"))
        if wanted is None:
            return config
        limited = {}
        for section in ("sysctls", "kubelet"):
            if section in wanted:
                limited[section] = dict((k, v) for k, v in (config.get(section) or {}).items() if k in wanted[section])
        if "secure_boot" in wanted:
            limited["secure_boot"] = config.get("secure_boot", False)
        return limited

    def get_cluster(self, name):
        raw = self._get_cluster_raw(name)
        if raw is None:
            return None
        props = raw.get("properties") or {}
        self._read_properties[name] = props
        provisioning = props.get("provisioningState") or "Unknown"
        power = ((props.get("powerState") or {}).get("code") or "Running").lower()
        fqdn = props.get("fqdn") or props.get("privateFQDN")
        state = ClusterState(
            name=raw.get("name") or name,
            status="running" if provisioning == "Succeeded" and power == "running" else
            (power if provisioning == "Succeeded" else provisioning.lower()),
            region=raw.get("location"),
            kubernetes_version=props.get("kubernetesVersion"),
            endpoint="https://%s:443" % fqdn if fqdn else None,
        )
        for profile in props.get("agentPoolProfiles") or []:
            if not self._hidden_pool(profile):
                state.node_pools[profile["name"]] = self._pool_state(profile)
        return state

    def list_nodes(self, name):
        raw = self._get_cluster_raw(name)
        if raw is None:
            return []
        props = raw.get("properties") or {}
        node_rg = props.get("nodeResourceGroup")
        pools = set(p["name"] for p in props.get("agentPoolProfiles") or [] if not self._hidden_pool(p))
        if not node_rg or not pools:
            return []
        scale_sets = self._call("list scale sets in node resource group %s" % node_rg,
                                lambda: [_plain(s) for s in self.compute.virtual_machine_scale_sets.list(node_rg)])
        nodes = []
        for vmss in scale_sets:
            pool = (vmss.get("tags") or {}).get("aks-managed-poolName")
            if pool not in pools:
                continue
            vms = self._call("list instances of scale set %s" % vmss["name"],
                             lambda vmss=vmss: [_plain(v) for v in self.compute.virtual_machine_scale_set_vms.list(
                                 node_rg, vmss["name"], expand="instanceView")])
            for vm in vms:
                vprops = vm.get("properties") or {}
                computer = (vprops.get("osProfile") or {}).get("computerName") or vm.get("name")
                status = "unknown"
                for item in (vprops.get("instanceView") or {}).get("statuses") or []:
                    if (item.get("code") or "").startswith("PowerState/"):
                        status = item["code"].split("/", 1)[1]
                nodes.append(Node(
                    name=computer, pool=pool, status=status,
                    connection={
                        # AKS nodes have no public address; reach them over the VNet (bastion / jump host)
                        # through the azure_rm inventory (inventories/azure/<env>/azure_rm.yml).
                        "ansible_connection": "ssh",
                        "ansible_host": computer,
                        "azure_resource_group": node_rg,
                        "azure_vmss": vmss["name"],
                        "azure_instance_id": str(vm.get("instanceId") or ""),
                    }))
        return sorted(nodes, key=lambda n: n.name)

    def kubeconfig(self, name):
        result = self._get_or_none("get user credentials of AKS cluster %s" % name,
                                   lambda: self.cs.managed_clusters.list_cluster_user_credentials(self.resource_group, name))
        if result is None or not result.kubeconfigs:
            return None
        value = result.kubeconfigs[0].value
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return yaml.safe_load(value)

    # -- bodies -----------------------------------------------------------------------------------
    def _tags(self, spec, pool_name=None, gpu_type=None, role=None):
        tags = dict(spec.tags)
        tags.update({"llmops-cluster": spec.name, "llmops-provider": "azure"})
        if pool_name:
            tags["llmops-pool"] = pool_name
        if gpu_type:
            tags["llmops-gpu-type"] = gpu_type
        if role:
            tags["llmops-pool-role"] = role
        return tags

    def _pool_properties(self, spec, pool, vm_size, zones, mode):
        props = {
            "count": pool.count,
            "vmSize": vm_size,
            "mode": mode,
            "osType": "Linux",
            "type": "VirtualMachineScaleSets",
            "nodeLabels": dict(pool.labels),
            "nodeTaints": [_format_taint(t) for t in pool.taints],
            "tags": self._tags(spec, pool.name, pool.gpu.type if pool.gpu else None),
        }
        if pool.min_count is not None and pool.max_count is not None:
            props.update({"enableAutoScaling": True, "minCount": pool.min_count, "maxCount": pool.max_count})
        if zones:
            props["availabilityZones"] = list(zones)
        if pool.disk_size_gb:
            props["osDiskSizeGB"] = pool.disk_size_gb
        if spec.kubernetes_version:
            props["orchestratorVersion"] = spec.kubernetes_version
        if pool.capacity_type == "spot":
            props.update({"scaleSetPriority": "Spot",
                          "scaleSetEvictionPolicy": self.options.get("spot_eviction_policy") or "Delete",
                          "spotMaxPrice": float(self.options.get("spot_max_price", -1))})
        if self.options.get("vnet_subnet_id"):
            props["vnetSubnetID"] = str(self.options["vnet_subnet_id"])
        props.update(self._node_config_properties(pool, spec.node_pools.index(pool)))
        return props

    def _foundation_wanted(self):
        """What provider_options ask of the managed cluster's foundation fields (docs/clouds.md, Azure), by
        FOUNDATION_FIELDS key: the node subnet with Azure CNI overlay, the OIDC issuer and workload identity,
        Entra ID (AAD) with admin groups and Azure RBAC, and local accounts disabled (so every kubeconfig goes
        through Entra ID). A key left out is AKS's choice: not sent at create, not compared afterwards."""
        opts = self.options
        want = {}
        if opts.get("network_plugin"):
            want["network_plugin"] = opts["network_plugin"]
        if opts.get("vnet_subnet_id"):
            # Nodes in our subnet; pods get addresses from an overlay range, not from the subnet.
            want.setdefault("network_plugin", "azure")
            want["network_plugin_mode"] = opts.get("network_plugin_mode") or "overlay"
            for key in ("pod_cidr", "service_cidr", "dns_service_ip"):
                if opts.get(key):
                    want[key] = opts[key]
        want["workload_identity"] = bool(opts.get("workload_identity", True))
        if opts.get("oidc_issuer", True) or want["workload_identity"]:
            # Workload identity needs the OIDC issuer.
            want["oidc_issuer"] = True
        groups = [str(g) for g in opts.get("admin_group_object_ids") or []]
        if groups:
            want.update({"aad_managed": True, "admin_group_object_ids": groups,
                         "azure_rbac": bool(opts.get("azure_rbac", True)),
                         "disable_local_accounts": bool(opts.get("disable_local_accounts", True))})
            if opts.get("tenant_id"):
                want["tenant_id"] = str(opts["tenant_id"])
        return want

    def _cluster_foundation_properties(self):
        """The create body's part of _foundation_wanted()."""
        props = {}
        want = self._foundation_wanted()
        for key, path, _in_place in FOUNDATION_FIELDS:
            if key in want:
                _set_path(props, path, want[key])
        return props

    def cluster_differences(self, spec, state):
        """Foundation fields of the existing cluster (as get_cluster read it) against provider_options. What AKS
        changes in place is returned for update_cluster; a pool's vnetSubnetID or the network profile cannot
        change, so any difference there raises ProviderError now, before anything is changed (check mode too)."""
        props = self._read_properties.get(spec.name)
        if props is None:
            return {}
        want = self._foundation_wanted()
        changes, fixed, fixes = {}, [], []
        for key, path, in_place in FOUNDATION_FIELDS:
            have = _get_path(props, path)
            if key not in want or _comparable(key, have) == _comparable(key, want[key]):
                continue
            if in_place:
                changes[key] = (have, want[key])
            else:
                fixed.append("provider_options.%s (%s) is %r, the inventory wants %r" % (key, ".".join(path), have, want[key]))
                fixes.append("recreate the cluster (playbooks/teardown.yml, then provision)")
        if "oidc_issuer" not in want and _get_path(props, ("oidcIssuerProfile", "enabled")):
            self.record("cluster/%s: provider_options.oidc_issuer is false, but AKS cannot turn the OIDC issuer off "
                        "once it is on; it stays on" % spec.name)
        subnet = self.options.get("vnet_subnet_id")
        wanted_pools = set(p.name for p in spec.node_pools)
        for profile in (props.get("agentPoolProfiles") or []) if subnet else []:
            hidden = self._hidden_pool(profile)
            # Pools the inventory no longer names may sit in another subnet of the vnet (AKS allows that).
            if not (hidden or profile.get("name") in wanted_pools):
                continue
            have = profile.get("vnetSubnetID")
            if _comparable("vnet_subnet_id", have) != _comparable("vnet_subnet_id", subnet):
                fixed.append("provider_options.vnet_subnet_id (agent pool %s vnetSubnetID) is %r, the inventory wants %r"
                             % (profile.get("name"), have, subnet))
                fixes.append("recreate the cluster (its System pool %s is made by the provider)" % profile.get("name")
                             if hidden else "recreate agent pool %s in the wanted subnet (create a pool under another "
                                            "name, move the workloads, delete the old one)" % profile.get("name"))
        if fixed:
            raise ProviderError(
                "AKS cluster %s: %s; AKS cannot change %s on an existing cluster or agent pool, so nothing was changed"
                % (spec.name, "; ".join(fixed), "this" if len(fixed) == 1 else "these"),
                hint="%s, or set the option back to what the cluster has" % "; ".join(sorted(set(fixes))))
        return changes

    # -- changing state ---------------------------------------------------------------------------
    def create_cluster(self, spec):
        system = self.system_pool_for(spec)
        if system is not None:
            index = spec.node_pools.index(system)
            profile = self._pool_properties(spec, system, self._vm_sizes(system, index)[0],
                                            [_zone(z) for z in system.zones], "System")
            profile["name"] = system.name
        else:
            opts = self._system_pool_options()
            profile = {"name": opts["name"], "count": opts["count"], "vmSize": opts["vm_size"], "mode": "System",
                       "osType": "Linux", "type": "VirtualMachineScaleSets",
                       "tags": self._tags(spec, opts["name"], role="system")}
            if opts["zones"]:
                profile["availabilityZones"] = opts["zones"]
            if self.options.get("vnet_subnet_id"):
                profile["vnetSubnetID"] = str(self.options["vnet_subnet_id"])
        props = {"dnsPrefix": self.options.get("dns_prefix") or spec.name, "agentPoolProfiles": [profile]}
        if spec.kubernetes_version:
            props["kubernetesVersion"] = spec.kubernetes_version
        if self.options.get("node_resource_group"):
            props["nodeResourceGroup"] = self.options["node_resource_group"]
        props.update(self._cluster_foundation_properties())
        body = {"location": spec.region, "tags": self._tags(spec), "identity": {"type": "SystemAssigned"},
                "sku": {"name": "Base", "tier": self.options.get("sku_tier") or "Free"}, "properties": props}
        rg = self.resource_group
        self._operation("create AKS cluster %s" % spec.name,
                        lambda: self.cs.managed_clusters.begin_create_or_update(rg, spec.name, body),
                        lambda token: self.cs.managed_clusters.begin_create_or_update(
                            rg, spec.name, body, continuation_token=token))
        if system is not None:
            self._created_with_cluster.add(system.name)

    def update_cluster(self, spec, changes):
        unsupported = set(changes) - self.updatable_cluster_fields
        if unsupported:
            raise ProviderError("azure cannot change %s of an AKS cluster in place" % ", ".join(sorted(unsupported)))
        foundation = sorted(k for k in changes if k in FOUNDATION_IN_PLACE)
        if foundation:
            paths = dict((key, path) for key, path, _in_place in FOUNDATION_FIELDS)

            def apply(props):
                for key in foundation:
                    _set_path(props, paths[key], changes[key][1])

            self._put_cluster(spec.name, "update AKS cluster %s (%s)" % (spec.name, ", ".join(foundation)), apply)
        if "kubernetes_version" in changes:
            # Its own operation: AKS runs an upgrade node by node, and a foundation change it refuses must not
            # be mixed up with (or hold back) the upgrade.
            version = changes["kubernetes_version"][1]
            self._put_cluster(spec.name, "upgrade AKS cluster %s to Kubernetes %s" % (spec.name, version),
                              lambda props: props.__setitem__("kubernetesVersion", version))

    def _put_cluster(self, name, what, change):
        """Read the managed cluster, drop what is read-only, let change(properties) edit it and PUT it back (what
        `az aks update` does), waiting for the operation."""
        raw = self._get_cluster_raw(name)
        if raw is None:
            raise ProviderError("AKS cluster %s does not exist" % name, code="ResourceNotFound")
        for key in ("id", "type", "systemData"):
            raw.pop(key, None)
        props = raw.setdefault("properties", {})
        for key in READONLY_CLUSTER:
            props.pop(key, None)
        for path in READONLY_FOUNDATION:
            parent = _get_path(props, path[:-1])
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        for profile in props.get("agentPoolProfiles") or []:
            for key in READONLY_POOL:
                profile.pop(key, None)
        change(props)
        rg = self.resource_group
        self._operation(what, lambda: self.cs.managed_clusters.begin_create_or_update(rg, name, raw),
                        lambda token: self.cs.managed_clusters.begin_create_or_update(
                            rg, name, raw, continuation_token=token))

    def create_node_pool(self, spec, pool):
        if pool.name in self._created_with_cluster:
            return  # made as the cluster's System pool by create_cluster
        index = spec.node_pools.index(pool)
        mode = "System" if self.system_pool_for(spec) is pool else "User"
        sizes = self._vm_sizes(pool, index)
        if pool.gpu and spec.region in self._offered:
            # validate() listed what the region offers; skip sizes that cannot succeed.
            offered = self._offered_sizes(spec.region)
            sizes = [s for s in sizes if s in offered] or sizes
        zones = [_zone(z) for z in pool.zones]
        zone_sets = [zones] + ([[z] for z in zones] if len(zones) > 1 else [])
        failures = []
        last = None
        for size in sizes:
            for zone_set in zone_sets:
                try:
                    self._put_pool(spec, pool, size, zone_set, mode)
                except ProviderError as exc:
                    codes = getattr(exc, "codes", [])
                    capacity = [c for c in codes if c in CAPACITY_CODES]
                    if not capacity:
                        raise
                    last = capacity[0]
                    where = "%s zone%s %s" % (spec.region, "s" if len(zone_set) > 1 else "", ",".join(zone_set)) \
                        if zone_set else spec.region
                    failures.append("node_pool/%s: %s had no capacity in %s (%s)" % (pool.name, size, where, capacity[0]))
                    self._delete_pool_if_present(spec.name, pool.name)
                    if capacity[0] not in ZONAL_CODES:
                        break  # quota is per region and VM family: another zone will not help
                    continue
                used = "%s%s" % (size, " in zone%s %s" % ("s" if len(zone_set) > 1 else "", ",".join(zone_set))
                                 if zone_set else "")
                for failure in failures:
                    self.record("%s; using %s" % (failure, used))
                return
        raise ProviderError("node_pool/%s: no capacity for any of %s in %s%s: %s"
                            % (pool.name, ", ".join(sizes), spec.region,
                               " zones %s" % ",".join(zones) if zones else "", "; ".join(failures)),
                            code=last,
                            hint="add instance_types or zones, use capacity_type spot/on_demand, request quota, or "
                                 "pick a region where gpu_capacity_info reports capacity")

    def _put_pool(self, spec, pool, size, zones, mode):
        body = {"properties": self._pool_properties(spec, pool, size, zones, mode)}
        rg = self.resource_group
        self._operation("create agent pool %s (%s) in AKS cluster %s" % (pool.name, size, spec.name),
                        lambda: self.cs.agent_pools.begin_create_or_update(rg, spec.name, pool.name, body),
                        lambda token: self.cs.agent_pools.begin_create_or_update(
                            rg, spec.name, pool.name, body, continuation_token=token))

    def _delete_pool_if_present(self, cluster, pool):
        rg = self.resource_group
        found = self._get_or_none("get agent pool %s" % pool, lambda: self.cs.agent_pools.get(rg, cluster, pool))
        if found is not None:
            self._operation("delete failed agent pool %s of AKS cluster %s" % (pool, cluster),
                            lambda: self.cs.agent_pools.begin_delete(rg, cluster, pool),
                            lambda token: self.cs.agent_pools.begin_delete(rg, cluster, pool, continuation_token=token))

    def update_node_pool(self, spec, pool, changes):
        unsupported = set(changes) - self.updatable_pool_fields
        if unsupported:
            raise ProviderError("azure cannot change %s of agent pool %s in place" % (", ".join(sorted(unsupported)), pool.name),
                                hint="create a new node pool with the new settings and delete this one")
        rg = self.resource_group
        current = _plain(self._get_or_none("get agent pool %s" % pool.name,
                                           lambda: self.cs.agent_pools.get(rg, spec.name, pool.name)))
        if current is None:
            raise ProviderError("agent pool %s of AKS cluster %s does not exist" % (pool.name, spec.name),
                                code="ResourceNotFound")
        props = dict(current.get("properties") or {})
        for key in READONLY_POOL:
            props.pop(key, None)
        if "count" in changes:
            props["count"] = pool.count
        if "min_count" in changes or "max_count" in changes:
            props.update({"enableAutoScaling": True, "minCount": pool.min_count, "maxCount": pool.max_count})
        if "labels" in changes:
            kept = dict((k, v) for k, v in (props.get("nodeLabels") or {}).items() if k.startswith(AKS_LABEL_PREFIX))
            kept.update(pool.labels)
            props["nodeLabels"] = kept
        if "taints" in changes:
            kept = [t for t in props.get("nodeTaints") or [] if t.startswith(AKS_LABEL_PREFIX)]
            props["nodeTaints"] = kept + [_format_taint(t) for t in pool.taints]
        body = {"properties": props}
        self._operation("update agent pool %s of AKS cluster %s (%s)" % (pool.name, spec.name, ", ".join(sorted(changes))),
                        lambda: self.cs.agent_pools.begin_create_or_update(rg, spec.name, pool.name, body),
                        lambda token: self.cs.agent_pools.begin_create_or_update(
                            rg, spec.name, pool.name, body, continuation_token=token))

    def delete_node_pool(self, cluster_name, pool_name):
        raw = self._get_cluster_raw(cluster_name)
        if raw is None:
            return
        profiles = (raw.get("properties") or {}).get("agentPoolProfiles") or []
        target = [p for p in profiles if p.get("name") == pool_name]
        if not target:
            return
        systems = [p for p in profiles if p.get("mode") == "System"]
        if target[0].get("mode") == "System" and len(systems) == 1:
            self.record("node_pool/%s is the last System pool of AKS cluster %s; AKS keeps it until the cluster "
                        "is deleted" % (pool_name, cluster_name))
            return
        rg = self.resource_group
        try:
            self._operation("delete agent pool %s of AKS cluster %s" % (pool_name, cluster_name),
                            lambda: self.cs.agent_pools.begin_delete(rg, cluster_name, pool_name),
                            lambda token: self.cs.agent_pools.begin_delete(rg, cluster_name, pool_name,
                                                                           continuation_token=token))
        except ProviderError as exc:
            if exc.code not in ("ResourceNotFound", "NotFound"):
                raise

    def delete_cluster(self, name):
        rg = self.resource_group
        try:
            self._operation("delete AKS cluster %s" % name,
                            lambda: self.cs.managed_clusters.begin_delete(rg, name),
                            lambda token: self.cs.managed_clusters.begin_delete(rg, name, continuation_token=token))
        except ProviderError as exc:
            if exc.code not in ("ResourceNotFound", "NotFound"):
                raise

    # -- waiting ----------------------------------------------------------------------------------
    def wait_for_cluster(self, name, state, timeout):
        interval = min(float(self.options.get("polling_interval", 15)), 15.0)
        if state == "absent":
            wait_for(lambda: (self._get_cluster_raw(name) is None, "cluster still exists"),
                     "AKS cluster %s to be deleted" % name, timeout, interval=interval)
            return

        seen = {}

        def probe():
            raw = self._get_cluster_raw(name)
            seen["raw"] = raw
            if raw is None:
                return False, "cluster not found"
            props = raw.get("properties") or {}
            states = [("cluster", props.get("provisioningState"))] + [
                ("pool %s" % p.get("name"), p.get("provisioningState")) for p in props.get("agentPoolProfiles") or []]
            failed = [w for w, s in states if s == "Failed"]
            if failed:
                raise ProviderError("AKS cluster %s: %s in provisioningState Failed" % (name, ", ".join(failed)),
                                    code="Failed", hint="see the cluster's Activity log; fix the cause and rerun "
                                                        "(AKS retries a PUT of the same spec)")
            pending = ["%s: %s" % (w, s) for w, s in states if s != "Succeeded"]
            return not pending, ", ".join(pending) or "all Succeeded"

        try:
            wait_for(probe, "AKS cluster %s and its agent pools to reach provisioningState Succeeded" % name, timeout,
                     interval=interval)
        except WaitTimeout as exc:
            profiles = ((seen.get("raw") or {}).get("properties") or {}).get("agentPoolProfiles") or []
            busy = ("Creating", "Scaling", "Updating")
            creating = sorted(p.get("name") for p in profiles if p.get("provisioningState") in busy)
            if not creating:
                raise
            raise WaitTimeout("%s; agent pool%s %s %s still creating (not a capacity failure: Azure reports "
                              "stockouts and quota as errors on the pool)"
                              % (exc.message, "s" if len(creating) > 1 else "", ", ".join(creating),
                                 "are" if len(creating) > 1 else "is"),
                              code="StillCreating",
                              hint="rerun later (the pools keep being created) or raise wait_timeout")
