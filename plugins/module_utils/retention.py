# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backup sets to keep (grandfather-father-son) and which one to restore for a point in time.

Pure functions over (id, created datetime, good) records, so the rules are tested without storage.
The one rule that overrides every policy: the newest *good* set is always kept, even when every newer
set is corrupt, because it may be the only thing left to restore from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
from collections import namedtuple

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

Record = namedtuple("Record", ["id", "created", "good"])

POLICY_KEYS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def parse_time(value, field="point_in_time"):
    """ISO 8601 to an aware UTC datetime ('Z' or an offset; naive means UTC)."""
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise SpecError(field, "%r is not an ISO 8601 time" % (value,), hint="e.g. 2026-11-20T03:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def check_policy(policy):
    for key in POLICY_KEYS:
        value = (policy or {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SpecError("retention.%s" % key, "must be a whole number, 0 or more, got %r" % (value,))
    if not any((policy or {}).get(k) for k in POLICY_KEYS):
        raise SpecError("retention", "keeps nothing", hint="set at least one of %s above 0" % ", ".join(POLICY_KEYS))


def _bucket(moment, unit):
    if unit == "daily":
        return moment.date()
    if unit == "weekly":
        year, week, _day = moment.isocalendar()
        return (year, week)
    return (moment.year, moment.month)


def select_keep(records, policy):
    """Return (keep ids, delete ids). Only good sets count toward a policy; bad sets are deleted
    unless they are newer than the newest good one (they may be a backup still being written)."""
    check_policy(policy)
    ordered = sorted(records, key=lambda r: r.created, reverse=True)
    good = [r for r in ordered if r.good]
    keep = set()
    keep.update(r.id for r in good[:policy.get("keep_last") or 0])
    for unit in ("daily", "weekly", "monthly"):
        limit = policy.get("keep_" + unit) or 0
        seen = []
        for record in good:
            bucket = _bucket(record.created, unit)
            if bucket not in seen:
                if len(seen) == limit:
                    break
                seen.append(bucket)
                keep.add(record.id)  # the newest good set of each period
    if good:
        keep.add(good[0].id)
        newest_good = good[0].created
        keep.update(r.id for r in ordered if not r.good and r.created > newest_good)
    delete = [r.id for r in ordered if r.id not in keep]
    return sorted(keep), delete


def select_point_in_time(records, moment):
    """The newest good set created at or before `moment`, or None."""
    candidates = [r for r in records if r.good and r.created <= moment]
    return max(candidates, key=lambda r: r.created) if candidates else None
