# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure provider, part 2 of 4: capacity. Which VM sizes a region offers and where (resource SKUs, with
their restrictions), the subscription's vCPU quota per family (usage), and the capacity fallback's inputs:
the candidate (VM size, zones) placements of a pool and the one-attempt create.

Capacity errors (AllocationFailed, ZonalAllocationFailed, SkuNotAvailable, OverconstrainedAllocationRequest,
quota) make ClusterProvider.create_pool_with_fallback try the next zone set, then the next VM size; the
failed pool is deleted in between, and a quota answer (per region and VM family) skips the other zone sets
of that size. One event is recorded for each fallback once a placement worked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import instance_types_for, shapes_for
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure_api import CAPACITY_CODES, ZONAL_CODES
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure_translate import _plain, _zone
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import CapacityMiss, CapacityOffer


# node_pools[].reservation.name on Azure: a capacity reservation group's resource ID.
GROUP_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
                      r"capacityReservationGroups/([^/]+)$", re.IGNORECASE)


class AksCapacityMixin(object):
    """VM size offers, quotas and the capacity fallback's cloud-specific parts for AzureProvider."""

    def _vm_sizes(self, pool, index):
        sizes = instance_types_for("azure", pool, index)
        return sizes or [self.options.get("default_vm_size") or "Standard_D4s_v5"]

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
                vcpus = dict((c.get("name"), c.get("value")) for c in sku.get("capabilities") or []).get("vCPUs")
                for zone in zones or [None]:
                    offers.append(CapacityOffer(
                        region=region, instance_type=candidate.instance_type, gpus_per_node=candidate.gpus, zone=zone,
                        quota_name=quota_name, quota_limit=usage.get("limit"),
                        quota_used=usage.get("currentValue"), quota_unit="vCPUs" if usage else None,
                        quota_per_node=float(vcpus) if vcpus else None))
        return offers

    def pool_placements(self, spec, pool):
        """(VM size, zones, mode): all the pool's zones first, then each zone alone, for each size."""
        index = spec.node_pools.index(pool)
        mode = "System" if self.system_pool_for(spec) is pool else "User"
        reserved = self._reserved.get(pool.name)
        if reserved is not None:
            # The group holds this size: another size would not draw on it, and AKS would refuse the pair.
            return [(reserved["vm_size"], [_zone(z) for z in pool.zones], mode)]
        sizes = self._vm_sizes(pool, index)
        if pool.gpu and spec.region in self._offered:
            # validate() listed what the region offers; skip sizes that cannot succeed.
            offered = self._offered_sizes(spec.region)
            sizes = [s for s in sizes if s in offered] or sizes
        zones = [_zone(z) for z in pool.zones]
        zone_sets = [zones] + ([[z] for z in zones] if len(zones) > 1 else [])
        return [(size, zone_set, mode) for size in sizes for zone_set in zone_sets]

    def try_pool_placement(self, spec, pool, placement):
        size, zone_set, mode = placement
        try:
            self._put_pool(spec, pool, size, zone_set, mode)
        except ProviderError as exc:
            codes = getattr(exc, "codes", [])
            capacity = [c for c in codes if c in CAPACITY_CODES]
            if not capacity:
                raise
            where = "%s zone%s %s" % (spec.region, "s" if len(zone_set) > 1 else "", ",".join(zone_set)) \
                if zone_set else spec.region
            self.abandon_pool_placement(spec, pool, placement)
            miss = CapacityMiss(code=capacity[0], reason="node_pool/%s: %s had no capacity in %s (%s)"
                                % (pool.name, size, where, capacity[0]))
            if capacity[0] not in ZONAL_CODES:
                # Quota is per region and VM family: another zone will not help this size.
                miss.rules_out = lambda candidate: candidate[0] == size
            return miss
        return None

    def abandon_pool_placement(self, spec, pool, placement):
        """Delete the attempt's agent pool, if ARM made one, and wait for the deletion."""
        self._delete_pool_if_present(spec.name, pool.name)

    def placement_fields(self, placement):
        return {"instance_type": placement[0], "zones": list(placement[1])}

    def pool_placed(self, spec, pool, placement, misses):
        size, zone_set = placement[:2]
        used = "%s%s" % (size, " in zone%s %s" % ("s" if len(zone_set) > 1 else "", ",".join(zone_set))
                         if zone_set else "")
        for miss in misses:
            self.record("%s; using %s" % (miss.reason, used))

    def no_capacity_error(self, spec, pool, candidates, misses):
        sizes = []
        for candidate in candidates:
            if candidate[0] not in sizes:
                sizes.append(candidate[0])
        zones = [_zone(z) for z in pool.zones]
        return ProviderError("node_pool/%s: no capacity for any of %s in %s%s: %s"
                             % (pool.name, ", ".join(sizes), spec.region,
                                " zones %s" % ",".join(zones) if zones else "", "; ".join(m.reason for m in misses)),
                             code=misses[-1].code if misses else None,
                             hint="add instance_types or zones, use capacity_type spot/on_demand, request quota, or "
                                  "pick a region where gpu_capacity_info reports capacity")

    # -- capacity reservation groups (node_pools[].reservation) -------------------------------------------
    @property
    def _reserved(self):
        """Pool name -> its checked capacity reservation group ({id, vm_size})."""
        return self.__dict__.setdefault("_reserved_pools", {})

    def check_reservations(self, spec):
        """Refuse, before anything is created, a capacity reservation group that cannot hold its pool."""
        for index, pool in enumerate(spec.node_pools):
            if getattr(pool, "reservation", None) is not None:
                self._reserved[pool.name] = self._check_reservation(spec, pool, index)

    def _check_reservation(self, spec, pool, index):
        where = "node_pools[%d].reservation" % index
        wanted = pool.reservation
        if wanted.type != "reservation":
            raise SpecError(where + ".type", "%s is not an Azure reservation type" % wanted.type,
                            hint="on AKS use type: reservation with a capacity reservation group's resource ID")
        found = GROUP_ID.match(wanted.name)
        if not found:
            raise SpecError(where + ".name", "must be a capacity reservation group's resource ID, got %r" % wanted.name,
                            hint="/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/"
                                 "capacityReservationGroups/<name>")
        subscription, rg, name = found.groups()
        if subscription.lower() != str(self.subscription_id).lower():
            raise SpecError(where + ".name", "the group is in subscription %s, the cluster in %s" % (
                subscription, self.subscription_id), hint="a group shared from another subscription is not supported yet")
        group = _plain(self._get_or_none("get capacity reservation group %s" % name, lambda: (
            self.compute.capacity_reservation_groups.get(rg, name, expand="instanceView"))))
        if group is None:
            raise SpecError(where + ".name", "capacity reservation group %s does not exist in resource group %s" % (name, rg),
                            hint="check the ID (az capacity reservation group list)")
        members = self._call("list the capacity reservations of %s" % name, lambda: [
            _plain(r) for r in self.compute.capacity_reservations.list_by_capacity_reservation_group(rg, name)])
        used = dict((view.get("name"), len((view.get("utilizationInfo") or {}).get("virtualMachinesAllocated") or []))
                    for view in ((group.get("properties") or {}).get("instanceView") or {}).get("capacityReservations") or [])
        sizes = self._vm_sizes(pool, index)
        zones = [_zone(z) for z in pool.zones]
        problems, free, size = [], 0, None
        group_zones = group.get("zones") or []
        if group_zones and not zones:
            problems.append("the group is zonal (zones %s), the pool names no zones" % ", ".join(group_zones))
        elif group_zones and not set(zones) <= set(group_zones):
            problems.append("the group is in zones %s, the pool in %s" % (", ".join(group_zones), ", ".join(zones)))
        fitting = [r for r in members if (r.get("sku") or {}).get("name") in sizes
                   and (r.get("properties") or {}).get("provisioningState") == "Succeeded"]
        if not fitting:
            problems.append("it holds %s, the pool runs %s" % (
                ", ".join("%s (%s)" % ((r.get("sku") or {}).get("name"), (r.get("properties") or {}).get("provisioningState"))
                          for r in members) or "no reservations", ", ".join(sizes)))
        else:
            size = fitting[0]["sku"]["name"]
            free = sum(int(r["sku"].get("capacity") or 0) - used.get(r.get("name"), 0)
                       for r in fitting if r["sku"]["name"] == size and (not zones or set(r.get("zones") or zones) & set(zones)))
            need = max(pool.count, pool.min_count or 0)
            if not problems and free < need and self._get_or_none("get agent pool %s" % pool.name, lambda: self.cs.agent_pools.get(
                    self.resource_group, spec.name, pool.name)) is None:
                # A pool already running on the group has used it up: only a new pool needs free VMs.
                problems.append("%d %s VMs of it are free, the pool needs %d" % (free, size, need))
        if problems:
            raise SpecError(where + ".name", "capacity reservation group %s cannot hold node pool %s: %s"
                            % (name, pool.name, "; ".join(problems)),
                            hint="name a group that matches the pool, or change the pool to match it")
        return {"id": wanted.name, "vm_size": size}

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
