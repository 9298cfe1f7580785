# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ClusterProvider interface: what every cloud (and the local podman lab) must implement.

The shape follows what managed Kubernetes APIs have in common (EKS CreateCluster/CreateNodegroup,
GKE clusters + nodePools, AKS managedClusters + agentPools): a cluster is created, then node pools
inside it; both are long-running operations that must be waited on; pools are updated in place for
scaling (and, depending on the cloud, labels, taints, version); other fields force a replacement.

Providers only translate. Deciding *what* to do (the plan) is done once, cloud-neutrally, in
module_utils/reconcile.py, which compares ClusterSpec with the ClusterState a provider reports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import abc
import dataclasses
import datetime
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError, ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers.capacity_plan import rank


@dataclass
class NodePoolState:
    """A node pool as the provider reports it. None means "the provider does not report this field"."""

    name: str
    status: str
    count: int
    min_count: Optional[int] = None
    max_count: Optional[int] = None
    instance_types: List[str] = field(default_factory=list)
    zones: List[str] = field(default_factory=list)
    gpu: Optional[GpuSpec] = None
    labels: Dict[str, str] = field(default_factory=dict)
    taints: List[Taint] = field(default_factory=list)
    capacity_type: Optional[str] = None
    disk_size_gb: Optional[int] = None
    image: Optional[str] = None
    # The boot-time node configuration the pool's nodes were created with (providers that list
    # "node_config" in reported_pool_fields report it, so a change is drift).
    node_config: Dict[str, object] = field(default_factory=dict)

    def summary(self):
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}


@dataclass
class CapacityOffer:
    """One place where GPUs of a type can be had, with the account's quota there when the cloud says."""

    region: str
    instance_type: str
    gpus_per_node: int
    zone: Optional[str] = None
    # Quota that limits this shape: name as the cloud calls it, limit and current usage in `unit`.
    quota_name: Optional[str] = None
    quota_limit: Optional[float] = None
    quota_used: Optional[float] = None
    quota_unit: Optional[str] = None
    # What one node of this shape draws on that quota (vCPUs or GPUs), where the cloud says.
    quota_per_node: Optional[float] = None

    def as_dict(self):
        return {k: v for k, v in asdict(self).items() if v is not None}


def read_time():
    """Now, UTC, to the second (ISO 8601): when a price was read."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Price:
    """An hourly price as a cloud's own price source gave it: never a number typed into the code.

    `source` names the API and the rows read, `read_at` when they were read (UTC, ISO 8601), and `by_zone`
    the zone prices behind `per_hour` where they differ by zone (spot); `per_hour` is then the lowest."""

    per_hour: float
    source: str
    read_at: str
    currency: str = "USD"
    by_zone: Optional[Dict[str, float]] = None


@dataclass
class CapacityMiss:
    """One placement of a node pool (instance type, zones) that the cloud could not supply.

    `reason` is what the events and the final error say about it, `code` the cloud's capacity code,
    `detail` a provider's extra words for its own event (defaults to nothing), and `rules_out` a predicate
    over the remaining placements this answer also condemns (e.g. a regional quota every zone shares).
    """

    code: Optional[str]
    reason: str
    detail: Optional[str] = None
    rules_out: Optional[Callable[[object], bool]] = None


@dataclass
class ClusterState:
    name: str
    status: str
    region: Optional[str] = None
    kubernetes_version: Optional[str] = None
    endpoint: Optional[str] = None
    ca_data: Optional[str] = None
    node_pools: Dict[str, NodePoolState] = field(default_factory=dict)

    def summary(self):
        data = asdict(self)
        data["node_pools"] = {name: pool.summary() for name, pool in sorted(self.node_pools.items())}
        return {k: v for k, v in data.items() if v not in (None, [], {})}


@dataclass
class Node:
    """One machine of the cluster, with what Ansible needs to reach it."""

    name: str
    pool: str
    status: str
    address: Optional[str] = None
    # Host variables for add_host / inventory (e.g. ansible_connection, ansible_host).
    connection: Dict[str, str] = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


class ClusterProvider(abc.ABC):
    """One implementation per cloud. Instances are cheap; they hold a client and options only.

    Contract (tests/unit/plugins/module_utils/providers/test_contract.py checks it for every provider):
    - get_cluster returns None when the cluster does not exist; it never raises for "not found".
    - mutating calls start the operation; wait_for_cluster waits until the cluster and all its pools
      are ready (or gone, with state="absent") and raises WaitTimeout naming what it waited for.
    - delete_node_pool and delete_cluster are no-ops for things already gone.
    - errors are ProviderError with the provider's code and a hint, never a raw SDK exception.
    """

    #: short name used in inventories: provider: local|aws|gcp|azure
    name = None
    #: NodePoolSpec fields this provider can change on an existing pool without replacing it.
    updatable_pool_fields = frozenset(["count", "min_count", "max_count"])
    #: ClusterSpec fields this provider can change on an existing cluster.
    updatable_cluster_fields = frozenset()
    #: NodePoolSpec fields the provider reports back in NodePoolState, hence compared for drift.
    reported_pool_fields = ("count", "min_count", "max_count", "instance_types", "zones", "gpu", "labels",
                            "taints", "capacity_type", "disk_size_gb", "image")
    #: Seconds gpu_cluster waits when the user sets no wait_timeout. Each cloud sets it above its own
    #: documented creation times (and above the time a GPU stockout takes to be reported), so the
    #: waiter never gives up before the cloud has answered; docs/clouds.md names the sources.
    default_wait_timeout = 1800

    def __init__(self, options=None, region=None):
        self.options = dict(options or {})
        if region:
            self.options.setdefault("region", region)
        # Upper bound for each long-running operation a provider waits on internally (e.g. EKS must
        # finish a cluster before node groups can be added). The module sets it from wait_timeout.
        self.operation_timeout = 1800
        # Things worth telling the user that are not errors, e.g. "g6.xlarge had no capacity in
        # us-east-1a; node_pool/gpu uses g6.2xlarge". Returned by the module as `events`.
        self.events = []
        # The capacity fallback's attempt trace: one dict per placement considered (see
        # create_pool_with_fallback), returned by gpu_cluster as `attempts`.
        self.attempts = []

    def record(self, message):
        self.events.append(message)

    def validate(self, spec):
        """Provider-specific checks on a ClusterSpec; raise SpecError naming the field."""

    @abc.abstractmethod
    def get_cluster(self, name):
        """Return ClusterState, or None when there is no such cluster."""

    @abc.abstractmethod
    def create_cluster(self, spec):
        """Start creating the cluster (control plane and network, not its node pools)."""

    def cluster_differences(self, spec, state):
        """Cluster fields that come from provider_options, not from ClusterSpec (the foundations: node subnet,
        OIDC issuer, Entra ID...), compared by the provider with what it read in get_cluster. Returns
        {field: (current, desired)} for fields in updatable_cluster_fields; a difference that cannot be
        applied in place raises ProviderError here, so the run stops while planning, before any change."""
        return {}

    def update_cluster(self, spec, changes):
        """Apply in-place changes: `changes` maps field name to (current, desired)."""
        raise NotImplementedError("%s cannot update %s in place" % (self.name, ", ".join(sorted(changes))))

    @abc.abstractmethod
    def delete_cluster(self, name):
        """Delete the cluster; its node pools are deleted first by the caller."""

    @abc.abstractmethod
    def create_node_pool(self, spec, pool):
        """Start creating `pool` (a NodePoolSpec) in the cluster described by `spec`."""

    @abc.abstractmethod
    def update_node_pool(self, spec, pool, changes):
        """Apply in-place changes to an existing pool; `changes` maps field to (current, desired)."""

    @abc.abstractmethod
    def delete_node_pool(self, cluster_name, pool_name):
        """Start deleting a node pool."""

    @abc.abstractmethod
    def wait_for_cluster(self, name, state, timeout):
        """Wait until the cluster is ready ("present") or gone ("absent")."""

    @abc.abstractmethod
    def list_nodes(self, name):
        """Return the cluster's nodes as a list of Node, sorted by name."""

    def kubeconfig(self, name):
        """A kubeconfig (as a dict) that reaches the cluster's API, or None where there is none (local)."""
        return None

    def gpu_capacity(self, gpu_type, count, regions, capacity_type="on_demand"):
        """Where nodes with `count` GPUs of `gpu_type` can be had: a list of CapacityOffer for `regions`
        (the provider's configured region when empty), with the quota that applies to `capacity_type`."""
        raise NotImplementedError("the %s provider does not report GPU capacity" % self.name)

    def gpu_prices(self, region, instance_types, capacity_type="on_demand"):
        """{instance type: Price} from the cloud's price source for `region`. A type without a row is left
        out, one whose rows cannot be told apart maps to a string saying why, and a source that cannot be
        reached raises ProviderError: the plan then says "price unknown" and gives the reason."""
        raise NotImplementedError("the %s provider has no price source" % self.name)

    def unknown_regions(self, regions):
        """(the names in `regions` this cloud does not have, some it does have for the hint); ([], []) when
        the provider cannot tell."""
        return [], []

    # -- capacity fallback: the loop once, the cloud-specific parts in each provider -------------------
    def fallback_candidates(self, spec, pool):
        """Every (spec, pool, placement) the fallback may try for `pool`, in order.

        The pool's fallback option widens the walk: each capacity type in its order (spot, then on_demand),
        within it the pool's GPU type then the other acceptable ones, and for each the provider's own
        placements (instance types, zone subsets). The pool is rewritten per variant (capacity type, GPU), so
        a provider's one-attempt create needs no knowledge of the fallback. With a fallback option, the
        instance types of one GPU type are ordered by the capacity plan's ranking (price per GPU-hour, unknown
        prices last) where the cloud's price source answers, else they keep the catalog's order."""
        fallback = pool.fallback
        kinds = list(fallback.capacity_types) if fallback and fallback.capacity_types else [pool.capacity_type]
        gpu_types = [pool.gpu.type] + list(fallback.gpu_types) if fallback and pool.gpu else [None]
        candidates = []
        for kind in kinds:
            for gpu_type in gpu_types:
                changes = {"capacity_type": kind}
                if gpu_type not in (None, pool.gpu and pool.gpu.type):
                    # Another GPU: the catalog picks its shapes (instance_types named the first GPU's).
                    changes.update(gpu=GpuSpec(type=gpu_type, count=pool.gpu.count), instance_types=[])
                variant = dataclasses.replace(pool, **changes)
                vspec = dataclasses.replace(spec, node_pools=[variant if p is pool else p for p in spec.node_pools])
                try:
                    placements = list(self.pool_placements(vspec, variant))
                except SpecError as exc:
                    if variant.gpu is pool.gpu:
                        raise
                    # An alternative GPU this cloud lacks (or not in that count): the others still serve.
                    self.record("node_pool/%s: fallback gpu type %s skipped: %s" % (pool.name, gpu_type, exc.message))
                    continue
                if fallback:
                    placements = self._ranked(vspec, variant, placements)
                candidates.extend((vspec, variant, p) for p in placements)
        return candidates

    def _ranked(self, spec, pool, placements):
        """`placements` with their instance types in the capacity plan's order; the catalog's when unpriced."""
        types = []
        for placement in placements:
            instance_type = self.placement_fields(placement).get("instance_type")
            if instance_type not in types:
                types.append(instance_type)
        region = spec.region or self.options.get("region")
        if len(types) < 2 or None in types or not region:
            return placements
        try:
            prices = self.gpu_prices(region, types, pool.capacity_type)
        except (ProviderError, NotImplementedError) as exc:
            self.record("node_pool/%s: %s prices unknown (%s); trying instance types in catalog order"
                        % (pool.name, pool.capacity_type, exc))
            return placements
        gpus = pool.gpu.count if pool.gpu else 1
        offers = []
        for instance_type in types:
            price = prices.get(instance_type)
            per_hour = None if price is None or isinstance(price, str) else price.per_hour
            offers.append(dict(instance_type=instance_type, price_per_hour=per_hour,
                               price_per_gpu_hour=None if per_hour is None else per_hour / gpus))
        order = dict((offer["instance_type"], i) for i, offer in enumerate(rank(offers)))
        return sorted(placements, key=lambda p: order[self.placement_fields(p).get("instance_type")])

    def planned_attempts(self, spec, pool):
        """The attempt trace check mode shows: what creating `pool` would try, in order, nothing sent."""
        entries = []
        try:
            candidates = self.fallback_candidates(spec, pool)
        except NotImplementedError:
            # The local lab places pools on this machine: nothing to fall back to, nothing to plan.
            self.record("node_pool/%s: the %s provider has no capacity fallback; fallback is ignored" % (pool.name, self.name))
            return entries
        for dummy, variant, placement in candidates:
            entry = dict(pool=pool.name, outcome="planned", capacity_type=variant.capacity_type,
                         gpu_type=variant.gpu.type if variant.gpu else None, code=None, error=None, seconds=0.0)
            entry.update(self.placement_fields(placement))
            entries.append(entry)
        return entries

    def create_pool_with_fallback(self, spec, pool):
        """Create `pool` at the first placement the cloud can supply and return that placement.

        The candidates come from fallback_candidates (the provider's pool_placements for each capacity type
        and GPU the pool accepts). The provider makes one attempt (try_pool_placement: None when the pool
        was created, a CapacityMiss when the cloud had no capacity there, after cleaning up what the attempt
        left; any other error raises and stops the loop). A miss may rule out later candidates of the same
        capacity type (quotas are per capacity type). pool_missed and pool_placed record events in the
        cloud's own words; no_capacity_error is raised when every candidate missed.

        Time: the whole walk is bounded by operation_timeout (the module's wait_timeout), each attempt by
        the pool's fallback.attempt_timeout too. An attempt still pending at its attempt_timeout is a
        stockout that the cloud has not admitted yet: it is abandoned (abandon_pool_placement deletes what
        it created) and the next candidate is tried. Pending at the overall deadline is a WaitTimeout, as
        without a fallback: the cloud is still working, nothing is deleted.

        Every candidate leaves one entry in `self.attempts` (the attempt trace): the pool, the placement
        (placement_fields), capacity type and GPU, the outcome (created, no_capacity, timed_out, skipped
        when an earlier answer ruled it out, failed for an error that stops the loop), the cloud's code and
        words, and the seconds it took.
        """
        candidates = self.fallback_candidates(spec, pool)
        attempt_timeout = pool.fallback.attempt_timeout if pool.fallback else None
        overall = self.operation_timeout
        deadline = time.monotonic() + overall
        misses, rules = [], []

        def ruled_out(candidate):
            """The miss whose answer rules `candidate` out, or None."""
            return next((miss for kind, rule, miss in rules
                         if kind == candidate[1].capacity_type and rule(candidate[2])), None)

        def trace(candidate, outcome, started, code=None, error=None):
            variant = candidate[1]
            entry = dict(pool=pool.name, outcome=outcome, capacity_type=variant.capacity_type,
                         gpu_type=variant.gpu.type if variant.gpu else None, code=code, error=error,
                         seconds=round(time.monotonic() - started, 3) if started else 0.0)
            entry.update(self.placement_fields(candidate[2]))
            self.attempts.append(entry)

        for i, candidate in enumerate(candidates):
            vspec, variant, placement = candidate
            earlier = ruled_out(candidate)
            if earlier is not None:
                # Not sent: an earlier answer (a regional quota) already said it cannot succeed.
                trace(candidate, "skipped", None, earlier.code, "ruled out by an earlier answer: %s" % earlier.reason)
                continue
            started = time.monotonic()
            bound = deadline - started
            by_attempt = attempt_timeout is not None and attempt_timeout < bound
            self.operation_timeout = min(attempt_timeout, bound) if by_attempt else bound
            try:
                miss = self.try_pool_placement(vspec, variant, placement)
            except WaitTimeout as exc:
                self.operation_timeout = overall
                if not by_attempt:
                    trace(candidate, "failed", started, exc.code, exc.message)
                    raise
                trace(candidate, "timed_out", started, "AttemptTimeout", exc.message)
                self.abandon_pool_placement(vspec, variant, placement)
                miss = CapacityMiss(code="AttemptTimeout", reason="%s still pending after attempt_timeout %ss, abandoned"
                                    % (self.placement_fields(placement).get("instance_type") or placement, attempt_timeout))
                misses.append(miss)
                self.pool_missed(vspec, variant, placement, miss, self._following(candidates, i, ruled_out))
                continue
            except LlmopsError as exc:
                trace(candidate, "failed", started, getattr(exc, "code", None), exc.message)
                raise
            finally:
                self.operation_timeout = overall
            if miss is None:
                trace(candidate, "created", started)
                self.pool_placed(vspec, variant, placement, misses)
                if variant.capacity_type != pool.capacity_type or variant.gpu != pool.gpu:
                    self.record("node_pool/%s: created as %s%s (allowed by its fallback)" % (
                        pool.name, variant.capacity_type, " with %s" % variant.gpu.type if variant.gpu != pool.gpu else ""))
                return placement
            trace(candidate, "no_capacity", started, miss.code, miss.reason)
            misses.append(miss)
            if miss.rules_out is not None:
                rules.append((variant.capacity_type, miss.rules_out, miss))
            self.pool_missed(vspec, variant, placement, miss, self._following(candidates, i, ruled_out))
        raise self.no_capacity_error(spec, pool, [c[2] for c in candidates], misses)

    @staticmethod
    def _following(candidates, i, ruled_out):
        """The placement the loop will try after candidates[i], or None."""
        return next((c[2] for c in candidates[i + 1:] if ruled_out(c) is None), None)

    def abandon_pool_placement(self, spec, pool, placement):
        """Delete what an attempt that ran past its attempt_timeout created, so the next one starts clean.
        Providers whose delete only starts an operation wait for it here."""
        self.delete_node_pool(spec.name, pool.name)

    def placement_fields(self, placement):
        """A placement as the attempt trace shows it: instance_type and zones where the provider says."""
        return {"placement": str(placement)}

    def pool_placements(self, spec, pool):
        """Where `pool` may go, most preferred first (the provider's own placement objects)."""
        raise NotImplementedError("the %s provider has no capacity fallback" % self.name)

    def try_pool_placement(self, spec, pool, placement):
        """One create attempt: None on success, a CapacityMiss when the cloud had no capacity there."""
        raise NotImplementedError("the %s provider has no capacity fallback" % self.name)

    def pool_missed(self, spec, pool, placement, miss, following):
        """Called after each miss; `following` is the next placement to be tried, or None."""

    def pool_placed(self, spec, pool, placement, misses):
        """Called once the pool was created at `placement`, after the `misses` before it."""

    def no_capacity_error(self, spec, pool, candidates, misses):
        """The ProviderError raised when every candidate missed."""
        return ProviderError("no capacity for node_pool/%s: %s" % (pool.name, "; ".join(m.reason for m in misses)),
                             code=misses[-1].code if misses else None,
                             hint="add zones or instance_types to the pool, or use another region "
                                  "(gpu_capacity_info lists GPU offers and quotas)")
