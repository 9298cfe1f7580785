# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cloud-neutral description of a GPU cluster, parsed and checked once, before any provider call.

Every check raises SpecError naming the option path the user wrote (node_pools[1].count), so a bad
inventory fails before anything is created and the message says which line to fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import CATALOG, GPU_TYPES, shape

# Kubernetes-compatible names: DNS-1123 labels, short enough to prefix node names on every cloud.
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CAPACITY_TYPES = ("on_demand", "spot")
# node_config keys and the type each must have (the interface every provider maps from).
NODE_CONFIG_KEYS = ("user_data", "sysctls", "kubelet", "secure_boot")


@dataclass(frozen=True)
class GpuSpec:
    type: str
    count: int = 1


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class FallbackSpec:
    """What a pool may fall back to when its first choice has no capacity (docs/clouds.md, capacity fallback).

    capacity_types: the order to try (e.g. spot, then on_demand); empty means the pool's capacity_type only.
    gpu_types: other acceptable GPU types (same count per node), tried after the pool's gpu.type.
    attempt_timeout: seconds one placement may stay pending before it is abandoned (its pool deleted)
    and the next is tried; None leaves each attempt bounded by wait_timeout only."""

    capacity_types: tuple = ()
    gpu_types: tuple = ()
    attempt_timeout: Optional[int] = None


@dataclass(frozen=True)
class ReservationSpec:
    """Capacity held for the pool (docs/clouds.md, reservations and capacity blocks), checked against the pool by
    the provider before any request is sent.

    type: `reservation` (AWS On-Demand Capacity Reservation, GCP specific reservation, Azure capacity reservation
    group), `capacity_block` (AWS Capacity Blocks for ML) or `flex_start` (GCP flex-start / DWS, no name).
    name: what the cloud calls it: an AWS cr-... id (or, for `reservation`, a resource group ARN), a GCP
    reservation name, an Azure capacity reservation group resource ID."""

    type: str = "reservation"
    name: Optional[str] = None


@dataclass
class NodePoolSpec:
    name: str
    count: int = 1
    min_count: Optional[int] = None
    max_count: Optional[int] = None
    instance_types: List[str] = field(default_factory=list)
    zones: List[str] = field(default_factory=list)
    gpu: Optional[GpuSpec] = None
    labels: Dict[str, str] = field(default_factory=dict)
    taints: List[Taint] = field(default_factory=list)
    capacity_type: str = "on_demand"
    disk_size_gb: Optional[int] = None
    image: Optional[str] = None
    # Desired run state. Only providers that list "status" in updatable_pool_fields act on it.
    status: str = "running"
    # Boot-time node configuration (user_data, sysctls, kubelet, secure_boot), rendered by the
    # node_boot_config role; each provider maps what its cloud has (docs/hardening.md).
    node_config: Dict[str, object] = field(default_factory=dict)
    fallback: Optional[FallbackSpec] = None
    reservation: Optional[ReservationSpec] = None

    def summary(self):
        """Plain dict for results and diffs (stable key order, no None noise)."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}

    def accepts(self, name, have):
        """Whether a pool reporting `have` for field `name` is what this spec asked for through its fallback
        (e.g. created on_demand after spot had no capacity): then it is not drift."""
        if name == "capacity_type" and have == "capacity_block" and self.reservation is not None:
            # EKS reports a Capacity Block's node group as its own capacity type: what the reservation asked for.
            return self.reservation.type == "capacity_block"
        if self.fallback is None or have is None:
            return False
        if name == "capacity_type":
            return have in self.fallback.capacity_types
        if name == "gpu" and self.gpu is not None:
            return have.count == self.gpu.count and have.type in self.fallback.gpu_types
        if name == "instance_types" and self.gpu is not None:
            # instance_types named the first GPU's shapes; another accepted GPU runs the catalog's.
            return all(any(_carries(cloud, t, self.gpu.count, self.fallback.gpu_types) for cloud in CATALOG) for t in have)
        return False


@dataclass
class ClusterSpec:
    name: str
    region: Optional[str] = None
    kubernetes_version: Optional[str] = None
    node_pools: List[NodePoolSpec] = field(default_factory=list)
    tags: Dict[str, str] = field(default_factory=dict)

    def pool(self, name):
        for pool in self.node_pools:
            if pool.name == name:
                return pool
        return None


def _check_name(value, where):
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise SpecError(
            where,
            "%r is not a valid name" % (value,),
            hint="use 1-40 lower-case letters, digits and '-', starting with a letter",
        )


def _check_count(value, where, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, "must be an integer, got %r" % (value,))
    if value < minimum:
        raise SpecError(where, "must be %d or more, got %d" % (minimum, value),
                        hint="set it to a whole number of nodes, %d or more" % minimum)


def _parse_gpu(raw, where):
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw.get("type"):
        raise SpecError(where + ".type", "is required when gpu is set", hint="e.g. gpu: {type: nvidia-l4, count: 1}")
    count = raw.get("count", 1)
    _check_count(count, where + ".count", minimum=1)
    return GpuSpec(type=str(raw["type"]), count=count)


def _parse_taints(raw, where):
    taints = []
    for i, item in enumerate(raw or []):
        here = "%s[%d]" % (where, i)
        if not isinstance(item, dict) or not item.get("key"):
            raise SpecError(here + ".key", "is required for every taint")
        effect = item.get("effect", "NoSchedule")
        if effect not in TAINT_EFFECTS:
            raise SpecError(here + ".effect", "must be one of %s, got %r" % (", ".join(TAINT_EFFECTS), effect))
        taints.append(Taint(key=str(item["key"]), value=str(item.get("value") or ""), effect=effect))
    return taints


def _parse_node_config(raw, where):
    """Check node_pools[].node_config: a dict of the known keys, each of its type; returns a plain dict
    with sysctl values as strings (how every cloud API and /etc/sysctl.d take them)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a dictionary", hint="keys: %s" % ", ".join(NODE_CONFIG_KEYS))
    unknown = sorted(str(k) for k in raw if k not in NODE_CONFIG_KEYS)
    if unknown:
        raise SpecError("%s.%s" % (where, unknown[0]), "is not a node_config key",
                        hint="node_config takes %s" % ", ".join(NODE_CONFIG_KEYS))
    config = {}
    user_data = raw.get("user_data")
    if user_data is not None:
        if not isinstance(user_data, str):
            raise SpecError(where + ".user_data", "must be a string (the whole boot document), got %s"
                            % type(user_data).__name__)
        if user_data:
            config["user_data"] = user_data
    sysctls = raw.get("sysctls")
    if sysctls is not None:
        if not isinstance(sysctls, dict):
            raise SpecError(where + ".sysctls", "must be a dictionary of kernel parameter names to values")
        checked = {}
        for key, value in sysctls.items():
            if not isinstance(key, str) or not re.match(r"^[a-z0-9_]+(\.[-a-zA-Z0-9_*]+)+$", key):
                raise SpecError("%s.sysctls" % where, "%r is not a kernel parameter name" % (key,),
                                hint="use the dotted form, e.g. net.ipv4.tcp_syncookies")
            if isinstance(value, (dict, list)) or value is None:
                raise SpecError("%s.sysctls.%s" % (where, key), "must be a number or a string, got %r" % (value,))
            checked[key] = str(int(value)) if isinstance(value, bool) else str(value)
        if checked:
            config["sysctls"] = checked
    kubelet = raw.get("kubelet")
    if kubelet is not None:
        if not isinstance(kubelet, dict):
            raise SpecError(where + ".kubelet", "must be a dictionary of KubeletConfiguration fields",
                            hint="upstream camelCase names, e.g. {readOnlyPort: 0, podPidsLimit: 4096}")
        for key in kubelet:
            if not isinstance(key, str) or not re.match(r"^[a-z][a-zA-Z0-9]*$", key):
                raise SpecError("%s.kubelet" % where, "%r is not a KubeletConfiguration field name" % (key,),
                                hint="use the upstream camelCase names, e.g. protectKernelDefaults")
        if kubelet:
            config["kubelet"] = dict(kubelet)
    secure_boot = raw.get("secure_boot")
    if secure_boot is not None:
        if not isinstance(secure_boot, bool):
            raise SpecError(where + ".secure_boot", "must be true or false, got %r" % (secure_boot,))
        config["secure_boot"] = secure_boot
    return config


def _carries(cloud, instance_type, count, gpu_types):
    found, gpu_type = shape(cloud, instance_type)
    return found is not None and found.gpus == count and gpu_type in gpu_types


FALLBACK_KEYS = ("capacity_types", "gpu_types", "attempt_timeout", "regions")


def _parse_fallback(raw, where, capacity_type, gpu):
    """node_pools[].fallback: checked here so a bad list fails before any cloud is asked."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a dictionary", hint="keys: capacity_types, gpu_types, attempt_timeout")
    unknown = sorted(str(k) for k in raw if k not in FALLBACK_KEYS)
    if unknown:
        raise SpecError("%s.%s" % (where, unknown[0]), "is not a fallback key",
                        hint="fallback takes capacity_types, gpu_types and attempt_timeout")
    if raw.get("regions"):
        # EKS node groups, GKE node pools and AKS agent pools live in their cluster's region: a pool cannot
        # fall back to another one. Say so rather than accept an option that could never act.
        raise SpecError(where + ".regions", "a node pool lives in its cluster's region, so its fallback stays there",
                        hint="choose the region when the cluster is created (gpu_capacity_info with regions: [...] "
                             "ranks them), or run one cluster per region")
    kinds = raw.get("capacity_types") or []
    if not isinstance(kinds, list):
        raise SpecError(where + ".capacity_types", "must be a list", hint="e.g. [spot, on_demand]")
    for i, kind in enumerate(kinds):
        if kind not in CAPACITY_TYPES or kind in kinds[:i]:
            raise SpecError("%s.capacity_types[%d]" % (where, i), "%r is not one of %s, or is listed twice"
                            % (kind, ", ".join(CAPACITY_TYPES)), hint="e.g. [spot, on_demand]")
    if kinds and kinds[0] != capacity_type:
        raise SpecError(where + ".capacity_types[0]", "must be the pool's capacity_type (%s), tried first" % capacity_type,
                        hint="list the pool's capacity_type first, then what it may fall back to")
    gpu_types = raw.get("gpu_types") or []
    if gpu_types and gpu is None:
        raise SpecError(where + ".gpu_types", "needs the pool's gpu", hint="set gpu: {type: ..., count: ...} first")
    if not isinstance(gpu_types, list):
        raise SpecError(where + ".gpu_types", "must be a list", hint="e.g. [nvidia-l4, nvidia-a10g]")
    for i, gpu_type in enumerate(gpu_types):
        if gpu_type not in GPU_TYPES:
            raise SpecError("%s.gpu_types[%d]" % (where, i), "unknown GPU type %r" % (gpu_type,),
                            hint="use one of %s" % ", ".join(GPU_TYPES))
    timeout = raw.get("attempt_timeout")
    if timeout is not None:
        _check_count(timeout, where + ".attempt_timeout", minimum=1)
    return FallbackSpec(capacity_types=tuple(kinds),
                        gpu_types=tuple(t for t in gpu_types if gpu is None or t != gpu.type), attempt_timeout=timeout)


RESERVATION_TYPES = ("reservation", "capacity_block", "flex_start")


def _parse_reservation(raw, where, capacity_type, fallback):
    """node_pools[].reservation: the shape is checked here; whether it fits the pool is the provider's check."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a dictionary", hint="e.g. reservation: {type: reservation, name: cr-0123456789abcdef0}")
    unknown = sorted(str(k) for k in raw if k not in ("type", "name"))
    if unknown:
        raise SpecError("%s.%s" % (where, unknown[0]), "is not a reservation key", hint="reservation takes type and name")
    kind = raw.get("type") or "reservation"
    if kind not in RESERVATION_TYPES:
        raise SpecError(where + ".type", "must be one of %s, got %r" % (", ".join(RESERVATION_TYPES), kind))
    name = raw.get("name")
    if kind == "flex_start":
        if name:
            raise SpecError(where + ".name", "is not used by flex_start (the cloud queues the request, nothing is named)",
                            hint="remove name, or use type: reservation for a named reservation")
    elif not isinstance(name, str) or not name.strip():
        raise SpecError(where + ".name", "is required for a %s" % kind,
                        hint="the reservation's id or name as the cloud shows it (AWS cr-..., GCP reservation name, "
                             "Azure capacity reservation group resource ID)")
    if capacity_type != "on_demand":
        # Reserved and flex-start capacity is on-demand capacity: a spot pool cannot draw on it.
        raise SpecError(where + ".type", "%s needs capacity_type on_demand, the pool has %s" % (kind, capacity_type),
                        hint="set capacity_type: on_demand on this pool")
    if fallback is not None:
        # The reservation fixes the instance type and zone: a fallback would place the pool outside it.
        raise SpecError(where, "cannot be combined with fallback", hint="remove fallback from this pool, or the reservation")
    return ReservationSpec(type=kind, name=name.strip() if name else None)


def parse_node_pool(raw, index):
    where = "node_pools[%d]" % index
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a dictionary with at least a name")
    _check_name(raw.get("name"), where + ".name")
    count = raw.get("count", 1)
    _check_count(count, where + ".count")
    min_count, max_count = raw.get("min_count"), raw.get("max_count")
    if min_count is not None:
        _check_count(min_count, where + ".min_count")
    if max_count is not None:
        _check_count(max_count, where + ".max_count", minimum=1)
    if min_count is not None and max_count is not None and min_count > max_count:
        raise SpecError(where + ".min_count", "(%d) is greater than max_count (%d)" % (min_count, max_count),
                        hint="set min_count <= count <= max_count")
    if min_count is not None and count < min_count or max_count is not None and count > max_count:
        raise SpecError(where + ".count", "(%d) is outside min_count..max_count" % count,
                        hint="set min_count <= count <= max_count")
    capacity_type = raw.get("capacity_type") or "on_demand"
    if capacity_type not in CAPACITY_TYPES:
        raise SpecError(where + ".capacity_type", "must be one of %s, got %r" % (", ".join(CAPACITY_TYPES), capacity_type))
    disk = raw.get("disk_size_gb")
    if disk is not None:
        _check_count(disk, where + ".disk_size_gb", minimum=1)
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict):
        raise SpecError(where + ".labels", "must be a dictionary of label names to values")
    gpu = _parse_gpu(raw.get("gpu"), where + ".gpu")
    fallback = _parse_fallback(raw.get("fallback"), where + ".fallback", capacity_type, gpu)
    return NodePoolSpec(
        name=raw["name"],
        count=count,
        min_count=min_count,
        max_count=max_count,
        instance_types=[str(t) for t in raw.get("instance_types") or []],
        zones=[str(z) for z in raw.get("zones") or []],
        gpu=gpu,
        labels={str(k): str(v) for k, v in labels.items()},
        taints=_parse_taints(raw.get("taints"), where + ".taints"),
        capacity_type=capacity_type,
        disk_size_gb=disk,
        image=raw.get("image") or None,
        node_config=_parse_node_config(raw.get("node_config"), where + ".node_config"),
        fallback=fallback,
        reservation=_parse_reservation(raw.get("reservation"), where + ".reservation", capacity_type, fallback),
    )


def parse_cluster_spec(params):
    """Build a ClusterSpec from module parameters (or any dict of the same shape)."""
    _check_name(params.get("name"), "name")
    pools = [parse_node_pool(raw, i) for i, raw in enumerate(params.get("node_pools") or [])]
    seen = set()
    for i, pool in enumerate(pools):
        if pool.name in seen:
            raise SpecError("node_pools[%d].name" % i, "%r is used by more than one node pool" % pool.name)
        seen.add(pool.name)
    return ClusterSpec(
        name=params["name"],
        region=params.get("region") or None,
        kubernetes_version=params.get("kubernetes_version") or None,
        node_pools=pools,
        tags={str(k): str(v) for k, v in (params.get("tags") or {}).items()},
    )
