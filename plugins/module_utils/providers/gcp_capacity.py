# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP provider, part 2 of 4: capacity. Where a GPU can be had (compute acceleratorTypes), the project's
GPU quota per region (compute regions.get), and the capacity fallback's inputs: the candidate
(machine type, zone) placements of a pool and the one-attempt create whose stockout or quota answer makes
ClusterProvider.create_pool_with_fallback try the next one.

A pool whose creation fails with ZONE_RESOURCE_POOL_EXHAUSTED, GCE_STOCKOUT or a quota error is deleted (if
GKE created it) and the next zone, then the next machine type, is tried; a regional quota answer skips the
other zones of that machine type (they share the quota).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import CapacityMiss, CapacityOffer
from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp_api import HINTS, _capacity_code, _last, _regional_quota

# GPU quota metrics of compute.regions.get, per acceleratorType (on-demand; spot adds PREEMPTIBLE_).
QUOTA_METRICS = {"nvidia-tesla-t4": "NVIDIA_T4_GPUS", "nvidia-l4": "NVIDIA_L4_GPUS",
                 "nvidia-tesla-a100": "NVIDIA_A100_GPUS", "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
                 "nvidia-h100-80gb": "NVIDIA_H100_GPUS"}


class GkeCapacityMixin(object):
    """GPU offers, quotas and the capacity fallback's cloud-specific parts for GcpProvider."""

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

    def pool_placements(self, spec, pool):
        """(machine type, zone): every zone of the first type, then the next type; a reserved pool's one."""
        reserved = self._reserved.get(pool.name)
        if reserved is not None and reserved.get("zone"):
            # A specific reservation is zonal and holds one machine type: the only placement that draws on it.
            return [(reserved["machine_type"], reserved["zone"])]
        return [(t, z) for t in self._machine_types(spec, pool) for z in self._zones_for(spec, pool)]

    # -- reservations and flex-start (node_pools[].reservation) ------------------------------------------
    @property
    def _reserved(self):
        """Pool name -> its checked reservation ({name, zone, machine_type}, or {flex_start: True})."""
        return self.__dict__.setdefault("_reserved_pools", {})

    def check_reservations(self, spec):
        """Refuse, before any request that changes something, a reservation that cannot hold its pool."""
        for index, pool in enumerate(spec.node_pools):
            wanted = getattr(pool, "reservation", None)
            if wanted is None:
                continue
            where = "node_pools[%d].reservation" % index
            if wanted.type == "capacity_block":
                raise SpecError(where + ".type", "capacity_block is AWS's (Capacity Blocks for ML)",
                                hint="on GKE use type: reservation with a reservation name, or type: flex_start")
            if wanted.type == "flex_start":
                if pool.max_count is None:
                    # Flex-start nodes come only through the cluster autoscaler (GKE flex-start docs).
                    raise SpecError("node_pools[%d].max_count" % index, "is required for a flex_start pool",
                                    hint="set min_count: 0 and max_count to the most nodes the pool may get")
                self._reserved[pool.name] = {"flex_start": True}
                continue
            self._reserved[pool.name] = self._check_reservation(spec, pool, index, where)

    def _check_reservation(self, spec, pool, index, where):
        name = pool.reservation.name
        if "/" in name:
            raise SpecError(where + ".name", "takes the reservation's name in this project, got %r" % name,
                            hint="a reservation shared from another project is not supported yet; name one of %s"
                                 % self.project)
        zones = self._zones_for(spec, pool)
        held = zone = None
        for zone in zones:
            held = self.call("GET", self._compute_url("zones/%s/reservations/%s" % (zone, name)),
                             "reservations.get %s" % name, not_found=True)
            if held is not None:
                break
        if held is None:
            raise SpecError(where + ".name", "reservation %s does not exist in %s" % (name, ", ".join(zones)),
                            hint="check the name (gcloud compute reservations list) and the pool's zones")
        sku = held.get("specificReservation") or {}
        props = sku.get("instanceProperties") or {}
        problems = []
        if held.get("status") != "READY":
            problems.append("its status is %s, not READY" % held.get("status"))
        machine_types = self._machine_types(spec, pool)
        if props.get("machineType") not in machine_types:
            problems.append("it holds %s, the pool runs %s" % (props.get("machineType"), ", ".join(machine_types)))
        if pool.gpu:
            shape, dummy = gpu_catalog.shape("gcp", machine_types[0])
            accelerator = shape.accelerator if shape else None
            have = [(a.get("acceleratorType"), int(a.get("acceleratorCount") or 0)) for a in props.get("guestAccelerators") or []]
            # G2/A3 machine types carry their GPUs built in; a reservation may list them or not.
            if have and have != [(accelerator, pool.gpu.count)]:
                problems.append("its GPUs are %s, the pool needs %d x %s" % (
                    ", ".join("%d x %s" % (n, t) for t, n in have), pool.gpu.count, accelerator))
        free = int(sku.get("count") or 0) - int(sku.get("inUseCount") or 0)
        need = max(pool.count, pool.min_count or 0)
        if free < need and pool.name not in [np.get("name") for np in (self._raw_cluster(spec.name) or {}).get("nodePools") or []]:
            # A pool already running on it has used it up: only a new pool needs free VMs.
            problems.append("%d of its %s VMs are free, the pool needs %d" % (free, sku.get("count"), need))
        if problems:
            raise SpecError(where + ".name", "reservation %s (%s) cannot hold node pool %s: %s"
                            % (name, zone, pool.name, "; ".join(problems)),
                            hint="name a reservation that matches the pool, or change the pool to match it")
        return {"name": name, "zone": zone, "machine_type": props["machineType"]}

    def try_pool_placement(self, spec, pool, placement):
        machine_type, zone = placement
        op = None
        try:
            op = self.call("POST", "%s/nodePools" % self._cluster_url(spec.name), "nodePools.create %s" % pool.name,
                           body={"nodePool": self._pool_body(spec, pool, machine_type, zone)})
            self.wait_operation(self._start(spec.name, op))
        except WaitTimeout as exc:
            # GKE has not answered yet: the pool is still being created. Not a capacity failure.
            raise WaitTimeout("node_pool/%s is still creating (PROVISIONING, %s in %s): %s" % (
                pool.name, machine_type, zone, exc.message), code="PROVISIONING", hint=HINTS["PROVISIONING"])
        except ProviderError as exc:
            capacity = _capacity_code(exc.code) or _capacity_code(exc.message)
            if not capacity:
                raise
            if op is not None:
                # A pool whose operation failed may exist in ERROR state; it must go before a retry.
                self.abandon_pool_placement(spec, pool, placement)
            miss = CapacityMiss(code=capacity, reason="%s in %s: %s" % (machine_type, zone, capacity), detail=capacity)
            if capacity == "QUOTA_EXCEEDED" and _regional_quota(exc.message):
                # The region's quota cannot hold this machine type: its other zones share that quota.
                miss.detail = "%s for the region; the other zones of %s share that quota" % (capacity, self.region)
                miss.rules_out = lambda candidate: candidate[0] == machine_type
            return miss
        return None

    def abandon_pool_placement(self, spec, pool, placement):
        """Delete the attempt's pool and wait for the deletion: the next attempt reuses its name."""
        gone = self.call("DELETE", self._pool_url(spec.name, pool.name), "nodePools.delete %s" % pool.name,
                         not_found=True)
        if gone is not None:
            self.wait_operation(self._start(spec.name, gone))

    def placement_fields(self, placement):
        return {"instance_type": placement[0], "zones": [placement[1]]}

    def pool_missed(self, spec, pool, placement, miss, following):
        self.record("node_pool/%s: %s had no capacity in %s (%s); %s" % (
            pool.name, placement[0], placement[1], miss.detail,
            "trying %s in %s" % following if following else "no candidates left"))

    def pool_placed(self, spec, pool, placement, misses):
        if misses:
            self.record("node_pool/%s: using %s in %s" % (pool.name, placement[0], placement[1]))

    def no_capacity_error(self, spec, pool, candidates, misses):
        return ProviderError("no capacity for node_pool/%s: %s" % (pool.name, "; ".join(m.reason for m in misses)),
                             code=misses[-1].code if misses else None,
                             hint="add zones or instance_types to the pool, use capacity_type spot/on_demand, "
                                  "or another region (gpu_capacity_info lists GPU offers and quotas)")
