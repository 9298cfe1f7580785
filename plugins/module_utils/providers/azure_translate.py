# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure provider, part 3 of 4: translation to and from the AKS API's shapes.

Agent pool properties (VM size, zones, counts, labels, taints, spot, OS disk, the boot-time node
configuration as linuxOSConfig.sysctls and kubeletConfig), the foundations' managed-cluster fields
(FOUNDATION_FIELDS: one table for the create body, the drift comparison and the in-place update), and the
parsing of what AKS reports back into NodePoolState. Keys AKS cannot set are reported, never dropped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import shape
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import NodePoolState

# Written by AKS itself on spot pools (label and taint); not part of what the user asked for.
AKS_LABEL_PREFIX = "kubernetes.azure.com/"
# Properties that are read-only; stripped before a GET result is sent back in a PUT.
READONLY_CLUSTER = ("provisioningState", "powerState", "fqdn", "privateFQDN", "azurePortalFQDN",
                    "currentKubernetesVersion", "maxAgentPools", "resourceUID")
READONLY_POOL = ("provisioningState", "currentOrchestratorVersion", "nodeImageVersion", "eTag")
ZONE_RE = re.compile(r"^(?:[a-z0-9]+-)?([1-9])$")
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


def _plain(model):
    """SDK model -> dict with the REST API's property names (what the published API documents)."""
    if model is None:
        return None
    if hasattr(model, "as_dict"):
        return model.as_dict()
    return dict(model)


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


class AksTranslationMixin(object):
    """Request bodies and state parsing of AzureProvider (they read its options and spec)."""

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
        reserved = self._reserved.get(pool.name)
        if reserved is not None:
            # VMs come from the group's reserved capacity (AKS: the cluster identity needs access to the group).
            props["capacityReservationGroupID"] = reserved["id"]
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
