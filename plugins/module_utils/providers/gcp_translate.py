# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP provider, part 3 of 4: translation to and from the GKE and Compute APIs' shapes.

Request bodies (NodePool, the cluster's network fields, the Cloud NAT on the foundations' router) and the
parsing of what GKE reports back (NodePoolState, node_config in its own words, versions, statuses).
Boot-time node configuration (node_config): sysctls GKE allows go to nodeConfig.linuxNodeConfig.sysctls,
the kubelet settings its NodeKubeletConfig has to kubeletConfig, secure_boot to shieldedInstanceConfig;
every key GKE cannot set is reported (gke_node_config's `skipped`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import NodePoolState
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_api import SCOPES, _last

#: GCE resource labels put on every node VM of a pool (GKE adds goog-k8s-cluster-name and
#: goog-k8s-node-pool-name itself); the gcp_compute inventory composes llmops_node_gpu_type from it.
LABEL_GPU_TYPE = "llmops-gpu-type"

EFFECT_TO_GKE = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}

EFFECT_FROM_GKE = dict((v, k) for k, v in EFFECT_TO_GKE.items())

# Cluster.Status / NodePool.Status (v1) -> our words.
STATUS_FROM_GKE = {"PROVISIONING": "creating", "RUNNING": "running", "RECONCILING": "updating",
                   "STOPPING": "deleting", "ERROR": "error", "DEGRADED": "degraded",
                   "RUNNING_WITH_ERROR": "degraded", "STATUS_UNSPECIFIED": "unknown"}

# LinuxNodeConfig.sysctls: the kernel parameters GKE accepts (container v1 discovery document, field
# description; https://cloud.google.com/kubernetes-engine/docs/how-to/node-system-config). The unit tests
# compare this set with the discovery document that ships with google-api-python-client.
GKE_SYSCTLS = frozenset("""
net.core.busy_poll net.core.busy_read net.core.netdev_max_backlog net.core.rmem_max net.core.rmem_default
net.core.wmem_default net.core.wmem_max net.core.optmem_max net.core.somaxconn net.ipv4.neigh.default.gc_thresh1
net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 net.ipv4.tcp_rmem net.ipv4.tcp_wmem
net.ipv4.tcp_tw_reuse net.ipv4.tcp_mtu_probing net.ipv4.tcp_max_orphans net.ipv4.tcp_max_tw_buckets
net.ipv4.tcp_syn_retries net.ipv4.tcp_ecn net.ipv4.tcp_congestion_control net.netfilter.nf_conntrack_max
net.netfilter.nf_conntrack_buckets net.netfilter.nf_conntrack_tcp_timeout_close_wait
net.netfilter.nf_conntrack_tcp_timeout_time_wait net.netfilter.nf_conntrack_tcp_timeout_established
net.netfilter.nf_conntrack_acct kernel.keys.maxkeys kernel.keys.maxbytes kernel.shmmni kernel.shmmax kernel.shmall
kernel.core_pattern kernel.perf_event_paranoid kernel.sched_rt_runtime_us kernel.softlockup_panic
kernel.yama.ptrace_scope kernel.kptr_restrict kernel.dmesg_restrict kernel.sysrq fs.aio-max-nr fs.file-max
fs.inotify.max_user_instances fs.inotify.max_user_watches fs.nr_open vm.dirty_background_ratio
vm.dirty_background_bytes vm.dirty_expire_centisecs vm.dirty_ratio vm.dirty_bytes vm.dirty_writeback_centisecs
vm.max_map_count vm.overcommit_memory vm.overcommit_ratio vm.vfs_cache_pressure vm.swappiness
vm.watermark_scale_factor vm.min_free_kbytes
""".split())


def _flag(value):
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")


# Upstream KubeletConfiguration field -> (NodeKubeletConfig field, to GKE, back to upstream). Only fields
# NodeKubeletConfig (container v1) has; GKE takes int64 values as strings (podPidsLimit).
KUBELET_TO_GKE = {
    "readOnlyPort": ("insecureKubeletReadonlyPortEnabled", lambda v: int(v) != 0, lambda v: 10255 if v else 0),
    "podPidsLimit": ("podPidsLimit", lambda v: str(int(v)), int),
    "cpuManagerPolicy": ("cpuManagerPolicy", str, str),
    "cpuCFSQuota": ("cpuCfsQuota", _flag, _flag),
    "cpuCFSQuotaPeriod": ("cpuCfsQuotaPeriod", str, str),
    "containerLogMaxSize": ("containerLogMaxSize", str, str),
    "containerLogMaxFiles": ("containerLogMaxFiles", int, int),
    "containerLogMaxWorkers": ("containerLogMaxWorkers", int, int),
    "containerLogMonitorInterval": ("containerLogMonitorInterval", str, str),
    "imageGCHighThresholdPercent": ("imageGcHighThresholdPercent", int, int),
    "imageGCLowThresholdPercent": ("imageGcLowThresholdPercent", int, int),
    "imageMinimumGCAge": ("imageMinimumGcAge", str, str),
    "imageMaximumGCAge": ("imageMaximumGcAge", str, str),
    "allowedUnsafeSysctls": ("allowedUnsafeSysctls", list, list),
    "maxParallelImagePulls": ("maxParallelImagePulls", int, int),
    "evictionMaxPodGracePeriod": ("evictionMaxPodGracePeriodSeconds", int, int),
    "singleProcessOOMKill": ("singleProcessOomKill", _flag, _flag),
    "reservedSystemCPUs": ("reservedSystemCpus", str, str),
}

KUBELET_FROM_GKE = dict((gke, (ours, back)) for ours, (gke, dummy, back) in KUBELET_TO_GKE.items())


def gke_node_config(node_config):
    """Map the cloud-neutral node_config to GKE NodeConfig fields.

    Returns (fields, applied, skipped): `fields` go into NodeConfig (linuxNodeConfig.sysctls, kubeletConfig,
    shieldedInstanceConfig); `applied` is the part of node_config GKE carries, in node_config's own words
    (compared for drift); `skipped` names every key GKE cannot set, with the reason.
    """
    node_config = dict(node_config or {})
    fields, applied, skipped = {}, {}, []
    if node_config.get("user_data"):
        skipped.append("user_data (GKE node pools take no user data; sysctls, kubelet and secure_boot are "
                       "set through the node system configuration instead)")
    sysctls = dict(node_config.get("sysctls") or {})
    allowed = dict((k, str(v)) for k, v in sorted(sysctls.items()) if k in GKE_SYSCTLS)
    for key in sorted(set(sysctls) - set(allowed)):
        skipped.append("sysctls.%s (not among the kernel parameters GKE's linuxNodeConfig accepts)" % key)
    if allowed:
        fields["linuxNodeConfig"] = {"sysctls": allowed}
        applied["sysctls"] = allowed
    kubelet = dict(node_config.get("kubelet") or {})
    gke_kubelet, applied_kubelet = {}, {}
    for key, value in sorted(kubelet.items()):
        if key not in KUBELET_TO_GKE:
            skipped.append("kubelet.%s (GKE's NodeKubeletConfig has no such field)" % key)
            continue
        gke_name, to_gke, back = KUBELET_TO_GKE[key]
        gke_kubelet[gke_name] = to_gke(value)
        applied_kubelet[key] = back(gke_kubelet[gke_name])
    if gke_kubelet:
        fields["kubeletConfig"] = gke_kubelet
        applied["kubelet"] = applied_kubelet
    if node_config.get("secure_boot") is not None:
        on = bool(node_config["secure_boot"])
        fields["shieldedInstanceConfig"] = {"enableSecureBoot": on, "enableIntegrityMonitoring": True}
        applied["secure_boot"] = on
    return fields, applied, skipped


def reported_node_config(config, wanted=None):
    """What a GKE NodeConfig carries, in node_config's words; projected on the keys `wanted` names (GKE
    reports its own defaults too, which are not drift) and with the keys GKE cannot carry taken from
    `wanted` (they were reported as not applied when the pool was created)."""
    config = config or {}
    sysctls = dict((config.get("linuxNodeConfig") or {}).get("sysctls") or {})
    kubelet = {}
    for gke_name, value in (config.get("kubeletConfig") or {}).items():
        if gke_name in KUBELET_FROM_GKE:
            ours, back = KUBELET_FROM_GKE[gke_name]
            kubelet[ours] = back(value)
    shielded = config.get("shieldedInstanceConfig") or {}
    reported = {"sysctls": sysctls, "kubelet": kubelet, "secure_boot": bool(shielded.get("enableSecureBoot"))}
    if wanted is None:
        return dict((k, v) for k, v in reported.items() if v not in ({}, False))
    result = dict(wanted)
    if "sysctls" in wanted:
        result["sysctls"] = dict(wanted["sysctls"])
        for key in wanted["sysctls"]:
            if key in GKE_SYSCTLS:
                if key in sysctls:
                    result["sysctls"][key] = sysctls[key]
                else:
                    del result["sysctls"][key]
    if "kubelet" in wanted:
        result["kubelet"] = dict(wanted["kubelet"])
        gke_kubelet = config.get("kubeletConfig") or {}
        for key, value in wanted["kubelet"].items():
            if key not in KUBELET_TO_GKE:
                continue
            gke_name, to_gke, dummy = KUBELET_TO_GKE[key]
            if gke_name not in gke_kubelet:
                del result["kubelet"][key]
            elif to_gke(value) != gke_kubelet[gke_name]:
                result["kubelet"][key] = kubelet[key]  # compared in GKE's terms: readOnlyPort 10250 and 10255 are both "enabled"
    if "secure_boot" in wanted:
        result["secure_boot"] = reported["secure_boot"]
    return result


def _nat_sources(nat):
    """What a Cloud NAT translates: the mode and the subnetworks with their ranges, as projects/... paths
    (Compute answers full URLs, _nat_body writes paths), so the two compare. None for no NAT."""
    if nat is None:
        return None
    subnetworks = []
    for item in nat.get("subnetworks") or []:
        link = item.get("name") or ""
        link = link[link.find("projects/"):] if "projects/" in link else link
        subnetworks.append("%s (%s)" % (link, ", ".join(sorted(item.get("sourceIpRangesToNat") or []))))
    return {"sourceSubnetworkIpRangesToNat": nat.get("sourceSubnetworkIpRangesToNat"), "subnetworks": sorted(subnetworks)}


def _with_sources(nat, want):
    """`nat` translating what `want` does. Only that is put back: the NAT's other settings (static IPs,
    ports per VM, logging) may have been tuned on purpose and stay."""
    fixed = dict((k, v) for k, v in nat.items() if k != "subnetworks")
    fixed.update((k, want[k]) for k in ("sourceSubnetworkIpRangesToNat", "subnetworks") if k in want)
    return fixed


def _gpu_from_accelerator(accelerator_type, count):
    for gpu_type, shapes in gpu_catalog.CATALOG["gcp"].items():
        if shapes and shapes[0].accelerator == accelerator_type:
            return GpuSpec(type=gpu_type, count=count)
    return GpuSpec(type=accelerator_type, count=count)


def _version(full):
    """GKE reports 1.30.5-gke.1014001; inventories pin a minor release (1.30), as GKE's aliases do."""
    if not full:
        return None
    parts = full.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else full


# The label key a SPECIFIC_RESERVATION affinity names a reservation by (container.v1 ReservationAffinity.key).
RESERVATION_KEY = "compute.googleapis.com/reservation-name"


class GkeTranslationMixin(object):
    """Request bodies and state parsing of GcpProvider (they read its options and, for node counts, call
    the Compute API through GkeApiMixin.call)."""

    def _pool_body(self, spec, pool, machine_type, zone):
        config = {"machineType": machine_type, "oauthScopes": SCOPES, "labels": dict(pool.labels),
                  "taints": [{"key": t.key, "value": t.value, "effect": EFFECT_TO_GKE[t.effect]} for t in pool.taints],
                  "resourceLabels": dict(spec.tags)}
        if pool.gpu:
            shape, dummy = gpu_catalog.shape("gcp", machine_type)
            accelerator = shape.accelerator if shape else gpu_catalog.shapes_for("gcp", pool.gpu.type, pool.gpu.count)[0].accelerator
            config["accelerators"] = [{"acceleratorType": accelerator, "acceleratorCount": str(pool.gpu.count),
                                       "gpuDriverInstallationConfig": {
                                           "gpuDriverVersion": self.options.get("gpu_driver_version", "DEFAULT")}}]
            config["resourceLabels"][LABEL_GPU_TYPE] = pool.gpu.type
        if pool.capacity_type == "spot":
            config["spot"] = True
        if pool.disk_size_gb:
            config["diskSizeGb"] = pool.disk_size_gb
        if pool.image:
            config["imageType"] = pool.image
        if self.options.get("node_service_account"):
            config["serviceAccount"] = self.options["node_service_account"]
        if self._workload_identity():
            # Pods see the GKE metadata server, not the node's service account (Workload Identity).
            config["workloadMetadataConfig"] = {"mode": "GKE_METADATA"}
        fields, dummy, dummy2 = gke_node_config(getattr(pool, "node_config", None))
        config.update(fields)
        body = {"name": pool.name, "initialNodeCount": pool.count, "locations": [zone], "config": config,
                "management": {"autoUpgrade": True, "autoRepair": True}}
        if pool.min_count is not None or pool.max_count is not None:
            # GKE's cluster autoscaler owns the count inside these bounds (reconcile leaves it alone).
            body["autoscaling"] = self._autoscaling(pool)
        self._reservation_fields(pool, body)
        return body

    def _reservation_fields(self, pool, body):
        """node_pools[].reservation as GKE takes it (container.v1 NodeConfig.reservationAffinity / flexStart)."""
        reserved = self._reserved.get(pool.name)
        if reserved is None:
            return
        if reserved.get("flex_start"):
            # Flex-start (Dynamic Workload Scheduler) VMs: no reservation, nodes through the autoscaler, and no
            # auto-repair (GKE docs, "About GPU obtainability with flex-start").
            body["config"]["flexStart"] = True
            body["config"]["reservationAffinity"] = {"consumeReservationType": "NO_RESERVATION"}
            body["management"]["autoRepair"] = False
            body["autoscaling"]["locationPolicy"] = "ANY"
            return
        body["config"]["reservationAffinity"] = {"consumeReservationType": "SPECIFIC_RESERVATION",
                                                 "key": RESERVATION_KEY, "values": [reserved["name"]]}

    @staticmethod
    def _autoscaling(pool):
        """NodePoolAutoscaling for a bounded pool. Every pool runs in one zone, so the per-zone bounds
        (minNodeCount/maxNodeCount) are the pool's bounds."""
        return {"enabled": True, "minNodeCount": pool.min_count or 0,
                "maxNodeCount": pool.max_count or max(pool.count, 1)}

    def _workload_identity(self):
        value = self.options.get("workload_identity", True)
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")

    def _cluster_network(self):
        """Cluster fields for the foundations: network and subnet, VPC-native secondary ranges, private
        nodes (networkConfig.defaultEnablePrivateNodes, the v1 field that replaces the deprecated
        privateClusterConfig.enablePrivateNodes) and the control plane's authorized networks."""
        fields = {}
        for option in ("network", "subnetwork"):
            if self.options.get(option):
                fields[option] = self.options[option]
        policy = {"useIpAliases": True}
        if self.options.get("pods_range_name"):
            policy["clusterSecondaryRangeName"] = self.options["pods_range_name"]
            policy["servicesSecondaryRangeName"] = self.options["services_range_name"]
        fields["ipAllocationPolicy"] = policy
        if self.options.get("private_nodes"):
            fields["networkConfig"] = {"defaultEnablePrivateNodes": True}
        networks = self.options.get("master_authorized_networks")
        if networks:
            fields["controlPlaneEndpointsConfig"] = {"ipEndpointsConfig": {
                "enabled": True, "enablePublicEndpoint": True,
                "authorizedNetworksConfig": {"enabled": True, "cidrBlocks": [
                    {"cidrBlock": cidr, "displayName": "llmops-%d" % i} for i, cidr in enumerate(networks)]}}}
        return fields

    def _nat_body(self, cluster):
        nat = {"name": "%s-nat" % cluster, "natIpAllocateOption": "AUTO_ONLY",
               "logConfig": {"enable": True, "filter": "ERRORS_ONLY"}}
        subnetwork = self.options.get("subnetwork")
        if subnetwork:
            link = subnetwork if "/" in subnetwork else "projects/%s/regions/%s/subnetworks/%s" % (
                self.project, self.region, subnetwork)
            nat["sourceSubnetworkIpRangesToNat"] = "LIST_OF_SUBNETWORKS"
            nat["subnetworks"] = [{"name": link, "sourceIpRangesToNat": ["ALL_IP_RANGES"]}]
        else:
            nat["sourceSubnetworkIpRangesToNat"] = "ALL_SUBNETWORKS_ALL_IP_RANGES"
        return nat

    def _pool_state(self, np):
        config = np.get("config") or {}
        autoscaling = np.get("autoscaling") or {}
        accelerators = config.get("accelerators") or []
        gpu = None
        if accelerators:
            gpu = _gpu_from_accelerator(accelerators[0].get("acceleratorType"), int(accelerators[0].get("acceleratorCount", 1)))
        count = 0
        for url in np.get("instanceGroupUrls") or []:
            igm = self.call("GET", self._compute_self_link(url), "instanceGroupManagers.get %s" % _last(url), not_found=True)
            count += int((igm or {}).get("targetSize") or 0)
        return NodePoolState(
            name=np["name"],
            status=STATUS_FROM_GKE.get(np.get("status"), (np.get("status") or "unknown").lower()),
            count=count,
            min_count=autoscaling.get("totalMinNodeCount", autoscaling.get("minNodeCount", 0)) if autoscaling.get("enabled") else None,
            max_count=autoscaling.get("totalMaxNodeCount", autoscaling.get("maxNodeCount")) if autoscaling.get("enabled") else None,
            instance_types=[config["machineType"]] if config.get("machineType") else [],
            zones=list(np.get("locations") or []),
            gpu=gpu,
            labels=dict(config.get("labels") or {}),
            taints=[Taint(key=t["key"], value=t.get("value", ""), effect=EFFECT_FROM_GKE.get(t.get("effect"), t.get("effect")))
                    for t in config.get("taints") or []],
            capacity_type="spot" if config.get("spot") or config.get("preemptible") else "on_demand",
            disk_size_gb=config.get("diskSizeGb"),
            image=config.get("imageType"),
            node_config=reported_node_config(config, self._wanted_node_config.get(np["name"])),
        )
