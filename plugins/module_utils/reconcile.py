# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state vs. reported state -> an ordered plan of provider calls, computed once for every cloud.

The plan is what check mode reports, what --diff is built from, and what apply() executes, so the
three can never disagree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

# Fields compared with the reported state: the provider's reported_pool_fields for pools. A field the
# spec leaves unset (None/empty) is not compared, so "I don't care" never shows up as drift.
CLUSTER_FIELDS = ("kubernetes_version",)
# Lists of candidates: the pool matches when what it runs is among them.
SATISFIED_BY_SUBSET = ("instance_types", "zones")


@dataclass
class Action:
    verb: str  # create_cluster | update_cluster | create_node_pool | update_node_pool | delete_node_pool | delete_cluster
    target: str  # "cluster/<name>" or "node_pool/<name>"
    changes: Dict[str, Tuple[object, object]] = field(default_factory=dict)

    def describe(self):
        text = "%s %s" % (self.verb, self.target)
        if self.changes:
            text += " (%s)" % ", ".join("%s: %r -> %r" % (k, a, b) for k, (a, b) in sorted(self.changes.items()))
        return text


@dataclass
class Plan:
    actions: List[Action] = field(default_factory=list)
    # Differences the provider cannot apply in place: reported, never silently ignored.
    not_updatable: List[str] = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.actions)

    def describe(self):
        return [a.describe() for a in self.actions]


def _differences(desired, current, fields):
    diffs = {}
    for name in fields:
        want = getattr(desired, name)
        if name == "count" and "max_count" in fields and _autoscaled_within_bounds(desired, current):
            continue
        if want is None or want == [] or want == {}:
            continue
        have = getattr(current, name, None)
        if name in SATISFIED_BY_SUBSET and have and set(have) <= set(want):
            # A pool runs one of the candidates it was given (capacity fallback chose it): no drift.
            continue
        if hasattr(desired, "accepts") and desired.accepts(name, have):
            # The pool's fallback allowed this (spot had no capacity, it runs on_demand): no drift.
            continue
        if want != have:
            diffs[name] = (have, want)
    return diffs


def _autoscaled_within_bounds(desired, current):
    """With autoscaling bounds, `count` is the initial size: the autoscaler owns it afterwards, so a count
    inside [min_count, max_count] is not drift (it would fight the autoscaler on every run). Applies to
    providers that report the bounds, i.e. that autoscale."""
    minimum, maximum = getattr(desired, "min_count", None), getattr(desired, "max_count", None)
    have = getattr(current, "count", None)
    return minimum is not None and maximum is not None and have is not None and minimum <= have <= maximum


def plan_present(spec, state, provider, purge_node_pools=False):
    plan = Plan()
    cluster = "cluster/%s" % spec.name
    if state is None:
        plan.actions.append(Action("create_cluster", cluster))
        for pool in spec.node_pools:
            plan.actions.append(Action("create_node_pool", "node_pool/%s" % pool.name))
        return plan

    cluster_diffs = _differences(spec, state, CLUSTER_FIELDS)
    cluster_diffs.update(provider.cluster_differences(spec, state))
    _split(plan, "update_cluster", cluster, cluster_diffs, provider.updatable_cluster_fields)

    for pool in spec.node_pools:
        target = "node_pool/%s" % pool.name
        current = state.node_pools.get(pool.name)
        if current is None:
            plan.actions.append(Action("create_node_pool", target))
            continue
        _split(plan, "update_node_pool", target, _differences(pool, current, provider.reported_pool_fields),
               provider.updatable_pool_fields)

    if purge_node_pools:
        wanted = set(p.name for p in spec.node_pools)
        for name in sorted(set(state.node_pools) - wanted):
            plan.actions.append(Action("delete_node_pool", "node_pool/%s" % name))
    return plan


def _split(plan, verb, target, diffs, updatable):
    in_place = dict((k, v) for k, v in diffs.items() if k in updatable)
    if in_place:
        plan.actions.append(Action(verb, target, in_place))
    for name in sorted(set(diffs) - set(in_place)):
        have, want = diffs[name]
        plan.not_updatable.append(
            "%s %s: %r -> %r cannot be changed in place; replace the node pool or cluster to apply it"
            % (target, name, have, want))


def plan_absent(name, state):
    plan = Plan()
    if state is None:
        return plan
    for pool in sorted(state.node_pools):
        plan.actions.append(Action("delete_node_pool", "node_pool/%s" % pool))
    plan.actions.append(Action("delete_cluster", "cluster/%s" % name))
    return plan


def apply_plan(plan, spec, provider):
    """Execute the plan in order. Pools are deleted before the cluster; creation goes the other way."""
    for action in plan.actions:
        name = action.target.partition("/")[2]
        if action.verb == "create_cluster":
            provider.create_cluster(spec)
        elif action.verb == "update_cluster":
            provider.update_cluster(spec, action.changes)
        elif action.verb == "create_node_pool":
            provider.create_node_pool(spec, spec.pool(name))
        elif action.verb == "update_node_pool":
            provider.update_node_pool(spec, spec.pool(name), action.changes)
        elif action.verb == "delete_node_pool":
            provider.delete_node_pool(spec.name, name)
        elif action.verb == "delete_cluster":
            provider.delete_cluster(spec.name)
        else:  # pragma: no cover - plan_* only emits the verbs above
            raise ValueError("unknown action %s" % action.verb)
