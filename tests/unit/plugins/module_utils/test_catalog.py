"""catalog: sets described, pruned and selected on a real local store written by the real ArtifactRepository."""
import datetime
import os

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import catalog, retention
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.envelope import FileKeyWrapper, IntegrityError, WrongKeyError
from ansible_collections.llmops.platform.plugins.module_utils.stores.local import LocalStore

START = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)


def new_key(path):
    path.write_bytes(os.urandom(32))
    return FileKeyWrapper(str(path))


@pytest.fixture
def repo(tmp_path):
    """Four daily sets of one artifact; set 02's manifest is then garbled."""
    store = LocalStore(str(tmp_path / "store"))
    source = tmp_path / "source"
    source.mkdir()
    repo = ArtifactRepository(store, "grafana", new_key(tmp_path / "k"))
    for day in range(4):
        (source / "dashboards.json").write_text('{"day": %d}' % day)
        repo.push(str(source), version="%02d" % (day + 1), created=START + datetime.timedelta(days=day))
    manifest = tmp_path / "store" / "grafana" / "manifests" / "02.json"
    manifest.write_bytes(manifest.read_bytes()[:-10])
    return repo


def test_sets_are_described_newest_first_and_bad_ones_say_why(repo):
    sets = catalog.describe_sets(repo, "quick")
    assert [s["version"] for s in sets] == ["04", "03", "01", "02"], "an unreadable set sorts as oldest"
    assert [s["good"] for s in sets] == [True, True, True, False]
    assert "not valid JSON" in sets[-1]["status"] and "created" not in sets[-1]


def test_a_wrong_key_fails_the_call_by_its_type(repo, tmp_path):
    stranger = ArtifactRepository(repo.store, "grafana", new_key(tmp_path / "other"))
    with pytest.raises(WrongKeyError) as raised:
        catalog.describe_sets(stranger, "quick")
    # Still an IntegrityError, so code that treats unreadable data as bad keeps doing so.
    assert isinstance(raised.value, IntegrityError)


def test_prune_in_check_mode_only_reports(repo):
    sets = catalog.describe_sets(repo, "full")
    planned = catalog.prune(repo, sets, {"keep_last": 1}, check_mode=True)
    assert planned == ["03", "01", "02"] and len(repo.manifest_keys()) == 4
    assert catalog.prune(repo, sets, {"keep_last": 1}) == planned
    assert [s["version"] for s in catalog.describe_sets(repo, "full")] == ["04"]


def test_select_returns_the_described_set(repo):
    sets = catalog.describe_sets(repo, "quick")
    chosen = catalog.select(sets, retention.parse_time("2026-11-02T12:00:00Z"))
    assert chosen["version"] == "01" and chosen["good"], "02 is bad, so the day before it is chosen"
    assert catalog.select(sets, retention.parse_time("2026-10-01T00:00:00Z")) is None
