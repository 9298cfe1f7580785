# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure (part 4 of 4, the provider): an AKS managed cluster (Microsoft.ContainerService managedClusters) and its agent pools.

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

import re

try:
    import yaml
except ImportError:  # pragma: no cover - kubeconfig is reached only with the Azure SDK (and Ansible's PyYAML)
    yaml = None

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import shape
# FOUNDATION_FIELDS is read as azure_translate.FOUNDATION_FIELDS: one table, looked up where it lives, so the
# create body, the drift comparison and the in-place update can never use two different versions of it.
from ansible_collections.llmops.platform.plugins.module_utils.providers import azure_translate
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure_api import AksApiMixin
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure_capacity import AksCapacityMixin
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure_translate import (
    AKS_LABEL_PREFIX, READONLY_CLUSTER, READONLY_FOUNDATION, READONLY_POOL, AksTranslationMixin, _comparable,
    _format_taint, _get_path, _plain, _set_path, _zone)
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterProvider, ClusterState, Node
from ansible_collections.llmops.platform.plugins.module_utils.providers.pricing_azure import AzurePricingMixin
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

# AgentPools_CreateOrUpdate path parameter agentPoolName (REST reference, learn.microsoft.com/rest/api/aks/
# agent-pools/create-or-update): Linux pool names are 1-12 lower-case letters and digits, from a letter.
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class AzureProvider(AksApiMixin, AksCapacityMixin, AzurePricingMixin, AksTranslationMixin, ClusterProvider):
    name = "azure"
    updatable_pool_fields = frozenset(["count", "min_count", "max_count", "labels", "taints"])
    updatable_cluster_fields = frozenset(["kubernetes_version"]) | azure_translate.FOUNDATION_IN_PLACE
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
        self.check_reservations(spec)

    # -- reading state ----------------------------------------------------------------------------
    def _get_cluster_raw(self, name):
        return _plain(self._get_or_none("get AKS cluster %s" % name,
                                        lambda: self.cs.managed_clusters.get(self.resource_group, name)))

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

    def cluster_differences(self, spec, state):
        """Foundation fields of the existing cluster (as get_cluster read it) against provider_options. What AKS
        changes in place is returned for update_cluster; a pool's vnetSubnetID or the network profile cannot
        change, so any difference there raises ProviderError now, before anything is changed (check mode too)."""
        props = self._read_properties.get(spec.name)
        if props is None:
            return {}
        want = self._foundation_wanted()
        changes, fixed, fixes = {}, [], []
        for key, path, in_place in azure_translate.FOUNDATION_FIELDS:
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
        foundation = sorted(k for k in changes if k in azure_translate.FOUNDATION_IN_PLACE)
        if foundation:
            paths = dict((key, path) for key, path, _in_place in azure_translate.FOUNDATION_FIELDS)

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
        self.create_pool_with_fallback(spec, pool)

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
