import datetime

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.retention import (
    Record, parse_time, select_keep, select_point_in_time)

START = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=datetime.timezone.utc)


def daily(days, bad=()):
    """One set a day at 02:00 for `days` days; ids are their day numbers."""
    return [Record("d%03d" % i, START + datetime.timedelta(days=i), i not in bad) for i in range(days)]


def test_keep_last():
    keep, delete = select_keep(daily(10), {"keep_last": 3})
    assert keep == ["d007", "d008", "d009"] and len(delete) == 7


def test_grandfather_father_son():
    records = daily(120)
    keep, delete = select_keep(records, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3})
    days = sorted(int(k[1:]) for k in keep)
    assert days[-7:] == list(range(113, 120))  # the last week, every day
    assert len(keep) == len(set(keep)) and set(keep).isdisjoint(delete)
    # 120 days from 1 January end on 30 April: the monthly sets are the last of February, March, April.
    months = sorted(set((START + datetime.timedelta(days=d)).month for d in days))
    assert months == [2, 3, 4]
    assert days[0] == 58  # 28 February, the newest set of February
    weeks = set((START + datetime.timedelta(days=d)).isocalendar()[1] for d in days)
    assert len(weeks) >= 4
    assert len(keep) <= 7 + 4 + 3


def test_newest_good_set_is_kept_when_every_newer_set_is_corrupt():
    records = daily(10, bad=range(4, 10))  # six newest sets corrupt
    keep, delete = select_keep(records, {"keep_last": 1})
    assert "d003" in keep, "the last good set must survive"
    assert all("d%03d" % i in keep for i in range(4, 10)), "sets newer than the last good one are not pruned"
    assert delete == ["d002", "d001", "d000"]


def test_corrupt_sets_older_than_a_good_one_are_pruned():
    keep, delete = select_keep(daily(5, bad=[1]), {"keep_last": 10})
    assert "d001" in delete and keep == ["d000", "d002", "d003", "d004"]


@pytest.mark.parametrize("policy, field", [({}, "retention"), ({"keep_last": -1}, "retention.keep_last"),
                                           ({"keep_daily": "7"}, "retention.keep_daily")])
def test_bad_policy_names_the_field(policy, field):
    with pytest.raises(SpecError) as err:
        select_keep(daily(3), policy)
    assert err.value.field == field


def test_point_in_time_takes_the_newest_good_set_before_the_moment():
    records = daily(10, bad=[5])
    assert select_point_in_time(records, parse_time("2026-01-06T12:00:00Z")).id == "d004"  # d005 is corrupt
    assert select_point_in_time(records, parse_time("2026-01-07T02:00:00+00:00")).id == "d006"
    assert select_point_in_time(records, parse_time("2025-12-31T00:00:00")) is None


def test_bad_time_names_the_field():
    with pytest.raises(SpecError) as err:
        parse_time("yesterday")
    assert err.value.field == "point_in_time"
