# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU node count override (AWX survey "GPU node count", `llmops_gpu_node_count`) applied to node pools.

Plain Python, used by the `llmops.platform.gpu_node_count` filter in playbooks/provision.yml.

Why it is more than `count: N`: on a pool with autoscaling bounds, `count` is only the initial size and a
count inside min_count..max_count is left to the autoscaler (plugins/module_utils/reconcile.py), so setting
`count` alone would do nothing. The rule, for every pool with a `gpu`:

- unbounded pool (no min_count, no max_count): count = N.
- bounded pool: N becomes the floor the autoscaler keeps, and the pool has N nodes now:
  min_count = N, max_count = max(max_count, N) (unchanged when it was not set and N fits no bound),
  count = N. The autoscaler may still add nodes up to max_count and remove them down to N.
  N = 0 lets an idle GPU pool scale to zero.

Pools without a `gpu` are returned unchanged; so is every pool when the override is empty.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

FIELD = "llmops_gpu_node_count"


def parse_count(value):
    """None for "no override" (None or empty string), else a non-negative int; SpecError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise SpecError(FIELD, "must be a whole number of nodes, not %r" % (value,), hint="leave it empty to keep the inventory's counts")
    try:
        count = int(str(value).strip())
    except ValueError:
        raise SpecError(FIELD, "must be a whole number of nodes, not %r" % (value,),
                        hint="leave it empty to keep the inventory's counts")
    if count < 0:
        raise SpecError(FIELD, "must be 0 or more, not %d" % count, hint="0 lets a bounded GPU pool scale to zero")
    return count


def apply_gpu_node_count(pools, value):
    """A copy of `pools` with the override applied to every GPU pool (see the module docstring)."""
    count = parse_count(value)
    if not isinstance(pools, list):
        raise SpecError("llmops_cluster.node_pools", "must be a list of pools, not %s" % type(pools).__name__)
    result = []
    for index, pool in enumerate(pools):
        if not isinstance(pool, dict):
            raise SpecError("llmops_cluster.node_pools[%d]" % index, "must be a mapping")
        pool = copy.deepcopy(pool)
        if count is not None and pool.get("gpu"):
            pool["count"] = count
            minimum, maximum = pool.get("min_count"), pool.get("max_count")
            if minimum is not None or maximum is not None:
                pool["min_count"] = count
                if maximum is not None:
                    pool["max_count"] = max(int(maximum), count, 1)
        result.append(pool)
    return result
