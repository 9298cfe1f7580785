# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP: a GKE Standard cluster with one GKE node pool per node pool, over the GKE v1 REST API.

Calls go through google-auth's AuthorizedSession (requests) to the documented REST endpoints:
container.googleapis.com/v1 projects.locations.clusters[.nodePools|.operations] and, for nodes, GPU
offerings and quotas, compute.googleapis.com/compute/v1 (instanceGroupManagers, aggregated instances,
aggregated acceleratorTypes, regions).

- The cluster is regional (locations/<region>); every node pool runs in exactly one zone (node pool
  `locations` = [zone]), so GKE's per-zone node counts equal the pool's `count`. The zone is the first of
  `zones` that has capacity; without `zones`, the zones of the region that offer the pool's GPU (or all
  zones of the region for CPU pools) in name order.
- GKE Standard cannot create a cluster without a node pool: pools without a GPU are created with the
  cluster; when every pool has a GPU, a one-node bootstrap pool is created with the cluster and removed
  before the first GPU pool is added (recorded as an event).
- GKE runs one operation per cluster at a time. Operations we start are waited on before the next
  mutating call; "operation in progress" answers (someone else's operation), 429, 5xx and dropped
  connections are retried with capped, jittered backoff; other 4xx are errors at once.
- Capacity fallback: a pool whose creation fails with ZONE_RESOURCE_POOL_EXHAUSTED, GCE_STOCKOUT or a
  quota error is deleted (if GKE created it) and the next zone, then the next machine type, is tried.
- The pool's node count is read from its managed instance groups' targetSize (GKE does not report a
  current count on the node pool), as Terraform's google provider does.
- Foundations (docs/clouds.md, roles/cloud_foundation/tasks/gcp.yml): the network, the subnet with its pod
  and service secondary ranges and the Cloud Router come from google.cloud modules; this provider puts the
  cluster on them (VPC-native ipAllocationPolicy, private nodes through networkConfig.defaultEnablePrivateNodes,
  Workload Identity) and adds a Cloud NAT named <cluster>-nat to the router (google.cloud.gcp_compute_router
  has no `nats` option), removed again with the cluster. The NAT is checked on every run, not only at
  creation: get_cluster reads it, cluster_differences reports it missing or translating other subnetworks
  than provider_options.subnetwork (update_cluster field `cloud_nat`), and update_cluster puts it back.
- Boot-time node configuration (node_config): sysctls GKE allows go to nodeConfig.linuxNodeConfig.sysctls,
  the kubelet settings its NodeKubeletConfig has to kubeletConfig, secure_boot to shieldedInstanceConfig;
  every key GKE cannot set is reported as an event naming it. Nodes are never reached by SSH.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import credentials as oauth2_credentials
    from google.oauth2 import service_account
    import requests
    HAS_GOOGLE_AUTH = True
except ImportError:  # pragma: no cover - exercised only where google-auth is missing
    HAS_GOOGLE_AUTH = False

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import (
    CapacityOffer, ClusterProvider, ClusterState, Node, NodePoolState)
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
DEFAULT_API = "https://container.googleapis.com"
DEFAULT_COMPUTE = "https://compute.googleapis.com"
BOOTSTRAP_POOL = "llmops-bootstrap"
#: GCE resource labels put on every node VM of a pool (GKE adds goog-k8s-cluster-name and
#: goog-k8s-node-pool-name itself); the gcp_compute inventory composes llmops_node_gpu_type from it.
LABEL_GPU_TYPE = "llmops-gpu-type"

EFFECT_TO_GKE = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
EFFECT_FROM_GKE = dict((v, k) for k, v in EFFECT_TO_GKE.items())

# Cluster.Status / NodePool.Status (v1) -> our words.
STATUS_FROM_GKE = {"PROVISIONING": "creating", "RUNNING": "running", "RECONCILING": "updating",
                   "STOPPING": "deleting", "ERROR": "error", "DEGRADED": "degraded",
                   "RUNNING_WITH_ERROR": "degraded", "STATUS_UNSPECIFIED": "unknown"}

# GPU quota metrics of compute.regions.get, per acceleratorType (on-demand; spot adds PREEMPTIBLE_).
QUOTA_METRICS = {"nvidia-tesla-t4": "NVIDIA_T4_GPUS", "nvidia-l4": "NVIDIA_L4_GPUS",
                 "nvidia-tesla-a100": "NVIDIA_A100_GPUS", "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
                 "nvidia-h100-80gb": "NVIDIA_H100_GPUS"}

# What GKE and GCE say when a zone cannot supply the machines, or the project's quota is used up.
CAPACITY_MARKERS = ("ZONE_RESOURCE_POOL_EXHAUSTED", "GCE_STOCKOUT", "QUOTA_EXCEEDED", "GCE_QUOTA_EXCEEDED",
                    "does not have enough resources available")
# GKE's synchronous quota answer to nodePools.create / clusters.create is HTTP 403 PERMISSION_DENIED with
# "Insufficient regional quota to satisfy request: resource \"NVIDIA_L4_GPUS\": request requires '1.0' and
# is short '1.0'. ..." (or "Insufficient quota ..."): a capacity answer, not an IAM one.
QUOTA_SHORT_RE = re.compile(r"insufficient (regional |zonal |global )?quota", re.IGNORECASE)

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

# google.rpc.Code numbers, as Operation.error.code carries them.
RPC_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
             6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
             10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
             16: "UNAUTHENTICATED"}

HINTS = {
    "PERMISSION_DENIED": "the service account needs roles/container.admin and roles/compute.viewer on the project "
                         "(and roles/iam.serviceAccountUser on the node service account); see docs/clouds.md",
    "UNAUTHENTICATED": "the Google credentials were rejected; check provider_options.service_account_file / access_token, "
                       "GOOGLE_APPLICATION_CREDENTIALS or the AWX 'Google Compute Engine' credential",
    "NOT_FOUND": "check provider_options.project and region; the project must exist and have the Kubernetes Engine "
                 "API enabled (gcloud services enable container.googleapis.com)",
    "INVALID_ARGUMENT": "check the cluster and node pool settings named in the message",
    "RESOURCE_EXHAUSTED": "a quota or rate limit was reached; check IAM & Admin > Quotas for the region, "
                          "or ask for an increase",
    "ALREADY_EXISTS": "a resource of that name exists already; use another name or import it",
    "FAILED_PRECONDITION": "another operation is running on the cluster; wait for it and run again",
    "QUOTA_EXCEEDED": "the project's quota in the region is too small for the pool; ask for an increase under "
                      "IAM & Admin > Quotas (gpu_capacity_info shows limit and usage), or use another region",
    "PROVISIONING": "GKE is still creating it: nothing failed yet; run the play again later (it waits on the same "
                    "operation) or raise wait_timeout",
    "SERVICE_DISABLED": "enable the API named in the message: gcloud services enable container.googleapis.com "
                        "compute.googleapis.com",
    "connection": "check provider_options.api_endpoint / compute_endpoint and the network path to Google APIs",
}

VERSION_RE = re.compile(r"^\d+\.\d+$")


class GcpApiError(Exception):
    """An HTTP error answer of a Google API, before it is turned into ProviderError."""

    def __init__(self, http_status, status, message, reason=None):
        super(GcpApiError, self).__init__("%s %s: %s" % (http_status, status, message))
        self.http_status, self.status, self.message, self.reason = http_status, status, message, reason


def _transient(exc):
    if HAS_GOOGLE_AUTH and isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if not isinstance(exc, GcpApiError):
        return False
    if exc.http_status == 429 or exc.http_status >= 500:
        return True
    # GKE runs one operation per cluster: "Cluster is running incompatible operation operation-...",
    # "Operation operation-... is currently ... Please wait and try again once it is done."
    return (exc.http_status in (400, 409) and exc.status in ("FAILED_PRECONDITION", "ABORTED")
            and "operation" in exc.message.lower())


def _capacity_code(text):
    """The capacity marker in an error text or code, or None when the error is about something else."""
    text = str(text or "")
    for marker in CAPACITY_MARKERS:
        if marker.lower() in text.lower():
            return marker if marker.isupper() else "ZONE_RESOURCE_POOL_EXHAUSTED"
    # GCE: "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region us-central1."
    # GKE: "Insufficient regional quota to satisfy request: resource \"NVIDIA_L4_GPUS\": ..."
    if re.search(r"quota .* exceeded", text, re.IGNORECASE) or QUOTA_SHORT_RE.search(text):
        return "QUOTA_EXCEEDED"
    return None


def _regional_quota(text):
    """True when the answer says the region's quota is short: every zone of the region shares it."""
    return bool(re.search(r"insufficient regional quota|in region [a-z]+-[a-z]+[0-9]+\.?$", str(text or ""), re.IGNORECASE))


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


def _last(url):
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


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


class GcpProvider(ClusterProvider):
    name = "gcp"
    # UpdateNodePoolRequest (v1) changes labels, taints, kubeletConfig and linuxNodeConfig in place (the
    # last two roll the nodes); setSize and setAutoscaling the counts. shieldedInstanceConfig cannot change.
    updatable_pool_fields = frozenset(["count", "min_count", "max_count", "labels", "taints", "node_config"])
    # cloud_nat: the Cloud NAT on provider_options.nat_router (cluster_differences), patched on the router.
    updatable_cluster_fields = frozenset(["kubernetes_version", "cloud_nat"])
    reported_pool_fields = ("count", "min_count", "max_count", "instance_types", "zones", "gpu", "labels",
                            "taints", "capacity_type", "disk_size_gb", "image", "node_config")
    # Per GKE operation (gpu_cluster's wait_timeout defaults to it). A regional Standard cluster took 9 and
    # 26 minutes to create in public CI logs (tranquilitybase-io/tb-gcp#589, NVIDIA/aicr#2764), and GKE
    # waits up to 35 minutes for a node pool's instance group before it reports GCE_STOCKOUT ("Not all
    # instances running in IGM after 35m": GoogleCloudPlatform/cluster-toolkit#6278, cilium/cilium#48184).
    # 45 minutes lets GKE answer first, so a stockout reaches the capacity fallback. docs/clouds.md repeats this.
    default_wait_timeout = 2700

    def __init__(self, options=None, region=None):
        super(GcpProvider, self).__init__(options)
        if region:
            self.options.setdefault("region", region)
        if not hasattr(self, "operation_timeout"):
            self.operation_timeout = 1800
        self.poll_interval = float(self.options.get("poll_interval", 10))
        self.api = (self.options.get("api_endpoint") or DEFAULT_API).rstrip("/")
        self.compute = (self.options.get("compute_endpoint") or DEFAULT_COMPUTE).rstrip("/")
        self._session = None
        self._pending = {}  # cluster name -> [operation names we started and have not seen DONE]
        self._zones_cache = {}
        # Pool name -> node_config the spec asks for (known once validate() has seen the spec).
        self._wanted_node_config = {}
        # Cluster name -> (router found, our Cloud NAT on it or None) as get_cluster last read them.
        self._read_nat = {}

    # -- session, calls and errors -------------------------------------------------------------------
    @property
    def project(self):
        project = self.options.get("project")
        if not project:
            raise SpecError("provider_options.project", "is required by the gcp provider",
                            hint="set it to the project id, e.g. from the GCP_PROJECT environment variable "
                                 "(the AWX 'Google Compute Engine' credential sets GCE_PROJECT)")
        return project

    @property
    def region(self):
        region = self.options.get("region")
        if not region:
            raise SpecError("region", "is required by the gcp provider", hint="e.g. region: us-central1")
        return region

    def _credentials(self):
        if self.options.get("access_token"):
            return oauth2_credentials.Credentials(token=self.options["access_token"])
        path = self.options.get("service_account_file")
        if path:
            try:
                return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
            except (OSError, ValueError) as exc:
                raise SpecError("provider_options.service_account_file", "cannot load %s: %s" % (path, exc),
                                hint="point it at a service account key (JSON) file")
        try:
            credentials, dummy = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError:
            raise SpecError("provider_options", "no Google credentials were found",
                            hint="set provider_options.service_account_file (a service account key file) or "
                                 "provider_options.access_token, or GOOGLE_APPLICATION_CREDENTIALS, or run "
                                 "'gcloud auth application-default login', or attach an AWX 'Google Compute "
                                 "Engine' credential (it sets GCE_CREDENTIALS_FILE_PATH, which the inventories "
                                 "pass as service_account_file)")
        return credentials

    def session(self):
        if not HAS_GOOGLE_AUTH:
            raise ProviderError("the gcp provider needs google-auth and requests",
                                hint="pip install google-auth requests (see requirements/controller.txt)")
        if self._session is None:
            self._session = AuthorizedSession(self._credentials())
        return self._session

    def call(self, method, url, what, body=None, params=None, not_found=False):
        """One REST call: retries what passes, returns the JSON answer; None for 404 when not_found."""
        session = self.session()
        timeout = float(self.options.get("request_timeout", 60))

        def once():
            try:
                resp = session.request(method, url, json=body, params=params, timeout=timeout)
            except google.auth.exceptions.RefreshError as exc:
                raise GcpApiError(401, "UNAUTHENTICATED", "cannot refresh the access token: %s" % exc)
            if resp.status_code >= 400:
                try:
                    error = resp.json().get("error") or {}
                except ValueError:
                    error = {}
                reason = None
                for detail in error.get("details") or []:
                    reason = reason or detail.get("reason")
                raise GcpApiError(resp.status_code, error.get("status") or str(resp.status_code),
                                  error.get("message") or resp.text[:300], reason)
            return resp.json() if resp.content else {}

        try:
            return call_with_retry(once, _transient, attempts=int(self.options.get("retry_attempts", 8)),
                                   base=float(self.options.get("retry_base_delay", 2)), cap=60)
        except GcpApiError as exc:
            if exc.http_status == 404 and not_found:
                return None
            code = exc.reason if exc.reason == "SERVICE_DISABLED" else exc.status
            if exc.http_status in (403, 429) and QUOTA_SHORT_RE.search(exc.message or ""):
                code = "QUOTA_EXCEEDED"  # GKE's quota answer comes as 403 PERMISSION_DENIED; it is not IAM
            raise ProviderError("GCP %s failed: %s" % (what, exc.message), code=code,
                                hint=HINTS.get(code) or HINTS.get(exc.status))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ProviderError("GCP %s failed: cannot reach %s: %s" % (what, url.split("/v1/")[0], exc),
                                code="connection", hint=HINTS["connection"])

    def _loc(self):
        return "%s/v1/projects/%s/locations/%s" % (self.api, self.project, self.region)

    def _cluster_url(self, name):
        return "%s/clusters/%s" % (self._loc(), name)

    def _pool_url(self, cluster, pool):
        return "%s/nodePools/%s" % (self._cluster_url(cluster), pool)

    def _compute_url(self, path):
        return "%s/compute/v1/projects/%s/%s" % (self.compute, self.project, path)

    def _compute_self_link(self, link):
        """A selfLink GKE reports (https://www.googleapis.com/compute/v1/...) on the configured endpoint."""
        return "%s/compute/v1/%s" % (self.compute, link.split("/compute/v1/", 1)[1])

    # -- operations ----------------------------------------------------------------------------------
    def _start(self, cluster, operation):
        self._pending.setdefault(cluster, []).append(operation["name"])
        return operation["name"]

    def _operation_error(self, op):
        """(code, message) of a failed operation; the code is a capacity marker when it says so."""
        error = op.get("error") or {}
        message = error.get("message") or op.get("statusMessage") or "no error message"
        code = RPC_CODES.get(error.get("code"), error.get("code"))
        capacity = _capacity_code(message)
        for condition in op.get("nodepoolConditions") or op.get("clusterConditions") or []:
            capacity = capacity or _capacity_code(condition.get("code")) or _capacity_code(condition.get("message"))
        return capacity or code, message

    def wait_operation(self, name, timeout=None):
        """Wait until the operation is DONE; return it. A failed operation raises ProviderError."""
        url = "%s/operations/%s" % (self._loc(), name)
        seen = {}

        def probe():
            op = self.call("GET", url, "operations.get %s" % name)
            seen["op"] = op
            return op.get("status") == "DONE", "%s %s" % (op.get("operationType", "operation"), op.get("status"))

        wait_for(probe, "GKE operation %s" % name, self.operation_timeout if timeout is None else timeout,
                 interval=self.poll_interval)
        op = seen["op"]
        for pending in self._pending.values():
            if name in pending:
                pending.remove(name)
        # statusMessage is the deprecated error field: "If an error has occurred, a textual description".
        if op.get("error") or op.get("statusMessage"):
            code, message = self._operation_error(op)
            raise ProviderError("GKE operation %s (%s of %s) failed: %s" % (
                name, op.get("operationType"), _last(op.get("targetLink")), message),
                code=code, hint=HINTS.get(code))
        return op

    def _settle(self, cluster, timeout=None):
        """Wait for the operations we started on `cluster`: GKE runs one at a time."""
        for name in list(self._pending.get(cluster, [])):
            self.wait_operation(name, timeout)

    # -- checks --------------------------------------------------------------------------------------
    def validate(self, spec):
        if not spec.region:
            raise SpecError("region", "is required by the gcp provider", hint="e.g. region: us-central1")
        self.options["region"] = spec.region
        if not self.options.get("project"):
            raise SpecError("provider_options.project", "is required by the gcp provider",
                            hint="set it to the project id, e.g. from the GCP_PROJECT environment variable")
        if spec.kubernetes_version and not VERSION_RE.match(spec.kubernetes_version):
            raise SpecError("kubernetes_version", "GKE takes a minor release such as 1.30, got %r" % spec.kubernetes_version,
                            hint="GKE picks the patch release itself (the version alias 1.X)")
        ranges = [self.options.get("pods_range_name"), self.options.get("services_range_name")]
        if any(ranges) and not all(ranges):
            raise SpecError("provider_options.%s" % ("services_range_name" if ranges[0] else "pods_range_name"),
                            "is required with %s" % ("pods_range_name" if ranges[0] else "services_range_name"),
                            hint="name both secondary ranges of the subnet (pods and services), or neither")
        if self.options.get("private_nodes") and not self.options.get("nat_router"):
            self.record("cluster/%s: private nodes without provider_options.nat_router have no egress beyond "
                        "Google APIs (Private Google Access); image pulls from other registries will fail" % spec.name)
        for i, pool in enumerate(spec.node_pools):
            wanted = dict(getattr(pool, "node_config", None) or {})
            self._wanted_node_config[pool.name] = wanted
            dummy, dummy2, skipped = gke_node_config(wanted)
            for what in skipped:
                self.record("node_pool/%s: node_config.%s: not applied on GKE" % (pool.name, what))
        for i, pool in enumerate(spec.node_pools):
            types = gpu_catalog.instance_types_for("gcp", pool, i)
            for j, zone in enumerate(pool.zones):
                if not zone.startswith(spec.region + "-"):
                    raise SpecError("node_pools[%d].zones[%d]" % (i, j), "%s is not a zone of %s" % (zone, spec.region))
            if pool.gpu:
                shape, dummy = gpu_catalog.shape("gcp", types[0])
                accelerator = shape.accelerator if shape else gpu_catalog.shapes_for("gcp", pool.gpu.type, pool.gpu.count)[0].accelerator
                offered = self._gpu_zones(accelerator).get(spec.region, [])
                if not offered:
                    elsewhere = sorted(r for r in self._gpu_zones(accelerator))
                    raise SpecError("node_pools[%d].gpu.type" % i, "%s (%s) is not offered in %s"
                                    % (pool.gpu.type, accelerator, spec.region),
                                    hint="regions that offer it: %s" % (", ".join(elsewhere[:12]) or "none"))
                for j, zone in enumerate(pool.zones):
                    if zone not in offered:
                        raise SpecError("node_pools[%d].zones[%d]" % (i, j), "%s is not offered in %s"
                                        % (pool.gpu.type, zone), hint="zones of %s that offer it: %s"
                                        % (spec.region, ", ".join(offered)))

    def _gpu_zones(self, accelerator):
        """region -> sorted zones that offer `accelerator` (compute.acceleratorTypes.aggregatedList)."""
        if accelerator not in self._zones_cache:
            by_region = {}
            params = {"filter": 'name = "%s"' % accelerator}
            while True:
                page = self.call("GET", self._compute_url("aggregated/acceleratorTypes"),
                                 "acceleratorTypes.aggregatedList", params=params)
                for scope in (page.get("items") or {}).values():
                    for item in scope.get("acceleratorTypes") or []:
                        if item.get("name") == accelerator and not (item.get("deprecated") or {}).get("state"):
                            zone = _last(item.get("zone"))
                            by_region.setdefault(zone.rsplit("-", 1)[0], set()).add(zone)
                if not page.get("nextPageToken"):
                    break
                params = dict(params, pageToken=page["nextPageToken"])
            self._zones_cache[accelerator] = dict((r, sorted(z)) for r, z in by_region.items())
        return self._zones_cache[accelerator]

    def _region_zones(self):
        key = ("region", self.region)
        if key not in self._zones_cache:
            region = self.call("GET", self._compute_url("regions/%s" % self.region), "regions.get %s" % self.region)
            self._zones_cache[key] = sorted(_last(z) for z in region.get("zones") or [])
        return self._zones_cache[key]

    # -- reading state -------------------------------------------------------------------------------
    def _raw_cluster(self, name):
        return self.call("GET", self._cluster_url(name), "clusters.get %s" % name, not_found=True)

    def get_cluster(self, name):
        raw = self._raw_cluster(name)
        if raw is None:
            return None
        state = ClusterState(name=name, status=STATUS_FROM_GKE.get(raw.get("status"), (raw.get("status") or "unknown").lower()),
                             region=raw.get("location"), kubernetes_version=_version(raw.get("currentMasterVersion")),
                             endpoint=("https://%s" % raw["endpoint"]) if raw.get("endpoint") else None,
                             ca_data=(raw.get("masterAuth") or {}).get("clusterCaCertificate"))
        for np in raw.get("nodePools") or []:
            state.node_pools[np["name"]] = self._pool_state(np)
        if self.options.get("nat_router"):
            router = self.call("GET", self._router_url(), "routers.get %s" % self.options["nat_router"], not_found=True)
            nats = [nat for nat in (router or {}).get("nats") or [] if nat.get("name") == "%s-nat" % name]
            self._read_nat[name] = (router is not None, nats[0] if nats else None)
        return state

    def cluster_differences(self, spec, state):
        """The cluster's Cloud NAT (as get_cluster read it) against the one _nat_body asks for: missing, or
        translating other subnetworks or ranges, is a `cloud_nat` change that update_cluster applies. Only
        what the NAT translates is compared; IP allocation, ports and logging someone tuned are kept."""
        if not self.options.get("nat_router") or spec.name not in self._read_nat:
            return {}
        found, nat = self._read_nat[spec.name]
        if not found:
            raise SpecError("provider_options.nat_router", "Cloud Router %s does not exist in %s/%s, so cluster %s "
                            "has no Cloud NAT" % (self.options["nat_router"], self.project, self.region, spec.name),
                            hint="run playbooks/foundations.yml (it creates the router), or name an existing "
                                 "router, or leave nat_router unset when the nodes have another way out")
        have, want = _nat_sources(nat), _nat_sources(self._nat_body(spec.name))
        return {} if have == want else {"cloud_nat": (have, want)}

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

    def list_nodes(self, name):
        """Node VMs of the cluster, found as the gcp_compute inventory finds them: by GKE's VM labels."""
        params = {"filter": 'labels.goog-k8s-cluster-name = "%s" AND labels.goog-k8s-cluster-location = "%s"'
                            % (name, self.region)}
        nodes = []
        while True:
            page = self.call("GET", self._compute_url("aggregated/instances"), "instances.aggregatedList", params=params)
            for scope in (page.get("items") or {}).values():
                for vm in scope.get("instances") or []:
                    labels = vm.get("labels") or {}
                    nic = (vm.get("networkInterfaces") or [{}])[0]
                    nat = [a.get("natIP") for a in nic.get("accessConfigs") or [] if a.get("natIP")]
                    address = nat[0] if nat else nic.get("networkIP")
                    connection = {"ansible_connection": "ssh", "ansible_host": address or vm["name"]}
                    nodes.append(Node(name=vm["name"], pool=labels.get("goog-k8s-node-pool-name", ""),
                                      status=(vm.get("status") or "unknown").lower(), address=address,
                                      connection=connection))
            if not page.get("nextPageToken"):
                break
            params = dict(params, pageToken=page["nextPageToken"])
        return sorted(nodes, key=lambda n: n.name)

    def kubeconfig(self, name):
        raw = self._raw_cluster(name)
        if raw is None or not raw.get("endpoint"):
            return None
        context = "gke_%s_%s_%s" % (self.project, self.region, name)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {
                "server": "https://%s" % raw["endpoint"],
                "certificate-authority-data": (raw.get("masterAuth") or {}).get("clusterCaCertificate")}}],
            "users": [{"name": context, "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "gke-gcloud-auth-plugin",
                "installHint": "Install gke-gcloud-auth-plugin for use with kubectl: https://cloud.google.com/"
                               "kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin",
                "provideClusterInfo": True,
                "interactiveMode": "IfAvailable"}}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }

    def gpu_capacity(self, gpu_type, count, regions, capacity_type="on_demand"):
        shapes = gpu_catalog.shapes_for("gcp", gpu_type, count)
        accelerator = shapes[0].accelerator
        offered = self._gpu_zones(accelerator)
        regions = list(regions or ([self.options["region"]] if self.options.get("region") else sorted(offered)))
        metric = QUOTA_METRICS.get(accelerator)
        if metric and capacity_type == "spot":
            metric = "PREEMPTIBLE_" + metric  # spot VMs draw on the preemptible GPU quota
        offers = []
        for region in regions:
            zones = offered.get(region) or []
            if not zones:
                continue
            quota = {}
            if metric:
                info = self.call("GET", self._compute_url("regions/%s" % region), "regions.get %s" % region)
                for q in info.get("quotas") or []:
                    if q.get("metric") == metric:
                        quota = q
            for zone in zones:
                for s in shapes:
                    offers.append(CapacityOffer(region=region, zone=zone, instance_type=s.instance_type, gpus_per_node=s.gpus,
                                                quota_name=metric if quota else None, quota_limit=quota.get("limit"),
                                                quota_used=quota.get("usage"), quota_unit="GPUs" if quota else None))
        return offers

    # -- changing state ------------------------------------------------------------------------------
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
        return body

    @staticmethod
    def _autoscaling(pool):
        """NodePoolAutoscaling for a bounded pool. Every pool runs in one zone, so the per-zone bounds
        (minNodeCount/maxNodeCount) are the pool's bounds."""
        return {"enabled": True, "minNodeCount": pool.min_count or 0,
                "maxNodeCount": pool.max_count or max(pool.count, 1)}

    def _workload_identity(self):
        value = self.options.get("workload_identity", True)
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")

    def _machine_types(self, spec, pool):
        index = spec.node_pools.index(pool) if pool in spec.node_pools else 0
        types = gpu_catalog.instance_types_for("gcp", pool, index)
        return types or [self.options.get("default_machine_type", "e2-standard-4")]

    def _zones_for(self, spec, pool):
        if pool.zones:
            return list(pool.zones)
        if pool.gpu:
            shape, dummy = gpu_catalog.shape("gcp", self._machine_types(spec, pool)[0])
            accelerator = shape.accelerator if shape else None
            zones = self._gpu_zones(accelerator).get(self.region) if accelerator else None
            if not zones:
                raise ProviderError("%s is not offered in any zone of %s" % (pool.gpu.type, self.region),
                                    code="GPU_NOT_OFFERED", hint="choose another region (gpu_capacity_info lists offers)")
            return zones
        return self._region_zones()[:1]

    def create_cluster(self, spec):
        cpu_pools = [p for p in spec.node_pools if not p.gpu]
        if cpu_pools:
            pools = [self._pool_body(spec, p, self._machine_types(spec, p)[0], self._zones_for(spec, p)[0]) for p in cpu_pools]
        else:
            # GKE Standard needs a node pool at creation; this one goes once the first real pool is added.
            zone = self._zones_for(spec, spec.node_pools[0])[0] if spec.node_pools else self._region_zones()[0]
            config = {"machineType": self.options.get("bootstrap_machine_type", "e2-small"), "oauthScopes": SCOPES}
            if self._workload_identity():
                config["workloadMetadataConfig"] = {"mode": "GKE_METADATA"}
            pools = [{"name": BOOTSTRAP_POOL, "initialNodeCount": 1, "locations": [zone], "config": config}]
        cluster = {"name": spec.name, "nodePools": pools, "resourceLabels": dict(spec.tags),
                   "description": "managed by llmops.platform"}
        if spec.kubernetes_version:
            cluster["initialClusterVersion"] = spec.kubernetes_version
        cluster.update(self._cluster_network())
        if self._workload_identity():
            cluster["workloadIdentityConfig"] = {"workloadPool": "%s.svc.id.goog" % self.project}
        if self.options.get("nat_router"):
            self._ensure_nat(spec.name)
        op = self.call("POST", "%s/clusters" % self._loc(), "clusters.create %s" % spec.name, body={"cluster": cluster})
        self._start(spec.name, op)

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

    # -- Cloud NAT on the foundations' router ---------------------------------------------------------
    def _router_url(self):
        return self._compute_url("regions/%s/routers/%s" % (self.region, self.options["nat_router"]))

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

    def _patch_router_nats(self, router, nats, what):
        op = self.call("PATCH", self._router_url(), "routers.patch %s" % router["name"], body={"nats": nats})
        url = self._compute_url("regions/%s/operations/%s" % (self.region, op["name"]))
        seen = {}

        def probe():
            seen["op"] = self.call("GET", url, "regionOperations.get %s" % op["name"])
            return seen["op"].get("status") == "DONE", "%s %s" % (what, seen["op"].get("status"))

        wait_for(probe, "Compute operation %s (%s)" % (op["name"], what), self.operation_timeout,
                 interval=self.poll_interval)
        errors = (seen["op"].get("error") or {}).get("errors") or []
        if errors:
            raise ProviderError("GCP routers.patch %s failed: %s" % (router["name"], errors[0].get("message")),
                                code=errors[0].get("code"), hint=HINTS.get(errors[0].get("code")))

    def _ensure_nat(self, cluster):
        """Cloud NAT <cluster>-nat on the router (egress for private nodes): added when missing, its source
        subnetworks set back when they drifted; a no-op when it is as _nat_body says."""
        router = self.call("GET", self._router_url(), "routers.get %s" % self.options["nat_router"])
        nats = list(router.get("nats") or [])
        want = self._nat_body(cluster)
        name = want["name"]
        mine = [i for i, nat in enumerate(nats) if nat.get("name") == name]
        if not mine:
            self._patch_router_nats(router, nats + [want], "add Cloud NAT %s" % name)
            self.record("cluster/%s: added Cloud NAT %s to router %s (egress for private nodes)"
                        % (cluster, name, router["name"]))
            return
        have = nats[mine[0]]
        if _nat_sources(have) == _nat_sources(want):
            return
        nats[mine[0]] = _with_sources(have, want)
        self._patch_router_nats(router, nats, "fix Cloud NAT %s" % name)
        self.record("cluster/%s: Cloud NAT %s on router %s translated %s; set back to %s"
                    % (cluster, name, router["name"], _nat_sources(have), _nat_sources(want)))

    def _remove_nat(self, cluster):
        """Remove the Cloud NAT this provider added for `cluster`; other NATs on the router stay."""
        router = self.call("GET", self._router_url(), "routers.get %s" % self.options["nat_router"], not_found=True)
        name = "%s-nat" % cluster
        nats = list((router or {}).get("nats") or [])
        if not any(nat.get("name") == name for nat in nats):
            return
        self._patch_router_nats(router, [nat for nat in nats if nat.get("name") != name], "remove Cloud NAT %s" % name)
        self.record("cluster/%s: removed Cloud NAT %s from router %s" % (cluster, name, router["name"]))

    def update_cluster(self, spec, changes):
        unsupported = set(changes) - self.updatable_cluster_fields
        if unsupported:
            raise ProviderError("gcp provider cannot change %s in place" % ", ".join(sorted(unsupported)))
        if "cloud_nat" in changes:
            self._ensure_nat(spec.name)  # the router's, not the cluster's: no GKE operation to wait for
        if "kubernetes_version" in changes:
            self._settle(spec.name)
            op = self.call("PUT", self._cluster_url(spec.name), "clusters.update %s" % spec.name,
                           body={"update": {"desiredMasterVersion": changes["kubernetes_version"][1]}})
            self._start(spec.name, op)

    def delete_cluster(self, name):
        self._settle(name)
        op = self.call("DELETE", self._cluster_url(name), "clusters.delete %s" % name, not_found=True)
        if op is not None:
            self._start(name, op)
        if self.options.get("nat_router"):
            self._remove_nat(name)

    def create_node_pool(self, spec, pool):
        self._settle(spec.name)
        existing = self._raw_cluster(spec.name) or {}
        names = [np["name"] for np in existing.get("nodePools") or []]
        if pool.name in names:
            return  # created with the cluster (GKE needs a pool at creation)
        if BOOTSTRAP_POOL in names and not spec.pool(BOOTSTRAP_POOL):
            self.wait_operation(self._start(spec.name, self.call(
                "DELETE", self._pool_url(spec.name, BOOTSTRAP_POOL), "nodePools.delete %s" % BOOTSTRAP_POOL)))
            self.record("cluster/%s: removed the temporary node pool %s that GKE needs at cluster creation"
                        % (spec.name, BOOTSTRAP_POOL))
        target = "node_pool/%s" % pool.name
        candidates = [(t, z) for t in self._machine_types(spec, pool) for z in self._zones_for(spec, pool)]
        failures = []
        short_types = set()  # machine types the region's quota cannot hold: other zones share that quota
        for i, (machine_type, zone) in enumerate(candidates):
            if machine_type in short_types:
                continue
            op = None
            try:
                op = self.call("POST", "%s/nodePools" % self._cluster_url(spec.name), "nodePools.create %s" % pool.name,
                               body={"nodePool": self._pool_body(spec, pool, machine_type, zone)})
                self.wait_operation(self._start(spec.name, op))
            except WaitTimeout as exc:
                # GKE has not answered yet: the pool is still being created. Not a capacity failure.
                raise WaitTimeout("%s is still creating (PROVISIONING, %s in %s): %s" % (
                    target, machine_type, zone, exc.message), code="PROVISIONING", hint=HINTS["PROVISIONING"])
            except ProviderError as exc:
                capacity = _capacity_code(exc.code) or _capacity_code(exc.message)
                if not capacity:
                    raise
                failures.append("%s in %s: %s" % (machine_type, zone, capacity))
                if op is not None:
                    # A pool whose operation failed may exist in ERROR state; it must go before a retry.
                    gone = self.call("DELETE", self._pool_url(spec.name, pool.name), "nodePools.delete %s" % pool.name,
                                     not_found=True)
                    if gone is not None:
                        self.wait_operation(self._start(spec.name, gone))
                reason = capacity
                if capacity == "QUOTA_EXCEEDED" and _regional_quota(exc.message):
                    short_types.add(machine_type)
                    reason = "%s for the region; the other zones of %s share that quota" % (capacity, self.region)
                following = next((c for c in candidates[i + 1:] if c[0] not in short_types), None)
                self.record("%s: %s had no capacity in %s (%s); %s" % (
                    target, machine_type, zone, reason,
                    "trying %s in %s" % following if following else "no candidates left"))
                continue
            if failures:
                self.record("%s: using %s in %s" % (target, machine_type, zone))
            return
        raise ProviderError("no capacity for %s: %s" % (target, "; ".join(failures)),
                            code=failures[-1].rsplit(": ", 1)[1] if failures else None,
                            hint="add zones or instance_types to the pool, use capacity_type spot/on_demand, "
                                 "or another region (gpu_capacity_info lists GPU offers and quotas)")

    def update_node_pool(self, spec, pool, changes):
        unsupported = set(changes) - self.updatable_pool_fields
        if unsupported:
            raise ProviderError("gcp provider cannot change %s in place" % ", ".join(sorted(unsupported)),
                                hint="replace the node pool to apply it")
        if "node_config" in changes:
            have, want = changes["node_config"]
            if bool((have or {}).get("secure_boot")) != bool((want or {}).get("secure_boot")):
                raise ProviderError("node_pool/%s: node_config.secure_boot cannot be changed on an existing GKE "
                                    "node pool (UpdateNodePoolRequest has no shieldedInstanceConfig)" % pool.name,
                                    code="NOT_UPDATABLE", hint="replace the node pool (new name, then remove the old one)")
        self._settle(spec.name)
        url = self._pool_url(spec.name, pool.name)
        raw = None
        if "count" in changes:
            raw = self.call("GET", url, "nodePools.get %s" % pool.name)
            zones = max(1, len(raw.get("locations") or []))
            if pool.count % zones:
                raise ProviderError("node_pool/%s spans %d zones; GKE sizes pools per zone, so count must be a "
                                    "multiple of %d" % (pool.name, zones, zones))
            self.wait_operation(self._start(spec.name, self.call(
                "POST", url + ":setSize", "nodePools.setSize %s" % pool.name, body={"nodeCount": pool.count // zones})))
        if "min_count" in changes or "max_count" in changes:
            self.wait_operation(self._start(spec.name, self.call(
                "POST", url + ":setAutoscaling", "nodePools.setAutoscaling %s" % pool.name,
                body={"autoscaling": {"enabled": True, "minNodeCount": pool.min_count or 0,
                                      "maxNodeCount": pool.max_count or max(pool.count, 1)}})))
        fields, dummy, dummy2 = gke_node_config(getattr(pool, "node_config", None))
        # kubeletConfig and linuxNodeConfig are replaced as a whole; GKE rolls the nodes to apply them.
        node_system = dict((k, fields.get(k, {})) for k in ("kubeletConfig", "linuxNodeConfig"))
        if node_system["linuxNodeConfig"] == {}:
            node_system["linuxNodeConfig"] = {"sysctls": {}}
        for field, body in (("labels", {"labels": {"labels": dict(pool.labels)}}),
                            ("taints", {"taints": {"taints": [{"key": t.key, "value": t.value,
                                                               "effect": EFFECT_TO_GKE[t.effect]} for t in pool.taints]}}),
                            ("node_config", node_system)):
            if field not in changes:
                continue
            # UpdateNodePoolRequest requires nodeVersion and imageType; the current ones change nothing.
            raw = self.call("GET", url, "nodePools.get %s" % pool.name)
            body.update(nodeVersion=raw.get("version"), imageType=(raw.get("config") or {}).get("imageType"))
            self.wait_operation(self._start(spec.name, self.call("PUT", url, "nodePools.update %s" % pool.name, body=body)))

    def delete_node_pool(self, cluster_name, pool_name):
        self._settle(cluster_name)
        op = self.call("DELETE", self._pool_url(cluster_name, pool_name), "nodePools.delete %s" % pool_name,
                       not_found=True)
        if op is not None:
            self._start(cluster_name, op)

    # -- waiting -------------------------------------------------------------------------------------
    def wait_for_cluster(self, name, state, timeout):
        self._settle(name, timeout)
        if state == "absent":
            wait_for(lambda: (self._raw_cluster(name) is None, "cluster still exists"),
                     "GKE cluster %s to be deleted" % name, timeout, interval=self.poll_interval)
            return

        def probe():
            raw = self._raw_cluster(name)
            if raw is None:
                return False, "cluster not found"
            busy = [("node pool %s still creating (PROVISIONING)" if np.get("status") == "PROVISIONING"
                     else "node pool %%s %s" % np.get("status")) % np["name"]
                    for np in raw.get("nodePools") or [] if np.get("status") != "RUNNING"]
            if raw.get("status") != "RUNNING":
                busy.insert(0, "cluster %s" % raw.get("status"))
            return not busy, ", ".join(busy) or "RUNNING"

        wait_for(probe, "GKE cluster %s and its node pools to be RUNNING" % name, timeout, interval=self.poll_interval)
