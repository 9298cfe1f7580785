# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP (part 4 of 4, the provider): a GKE Standard cluster with one GKE node pool per node pool, over the GKE v1 REST API.

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

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterProvider, ClusterState, Node
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_api import DEFAULT_API, DEFAULT_COMPUTE, HINTS, SCOPES, GkeApiMixin
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_capacity import GkeCapacityMixin
from ansible_collections.llmops.platform.plugins.module_utils.providers.pricing_gcp import GcpPricingMixin
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_translate import (
    STATUS_FROM_GKE, EFFECT_TO_GKE, GkeTranslationMixin, _nat_sources, _version, _with_sources, gke_node_config)
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

BOOTSTRAP_POOL = "llmops-bootstrap"

VERSION_RE = re.compile(r"^\d+\.\d+$")


class GcpProvider(GkeApiMixin, GkeCapacityMixin, GcpPricingMixin, GkeTranslationMixin, ClusterProvider):
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
        self.check_reservations(spec)

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

    # -- Cloud NAT on the foundations' router ---------------------------------------------------------
    def _router_url(self):
        return self._compute_url("regions/%s/routers/%s" % (self.region, self.options["nat_router"]))

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
        self.create_pool_with_fallback(spec, pool)

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
