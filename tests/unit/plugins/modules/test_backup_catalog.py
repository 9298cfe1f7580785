"""backup_catalog through the real module on a local store written by the real ArtifactRepository."""
import datetime
import json
import os

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.envelope import FileKeyWrapper
from ansible_collections.llmops.platform.plugins.module_utils.stores.local import LocalStore
from ansible_collections.llmops.platform.plugins.modules import backup_catalog

START = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def backups(tmp_path):
    """Ten nightly Prometheus sets (1-10 November) and three Grafana exports."""
    key = tmp_path / "backup.key"
    key.write_bytes(os.urandom(32))
    store = LocalStore(str(tmp_path / "store"))
    wrapper = FileKeyWrapper(str(key))
    source = tmp_path / "source"
    source.mkdir()
    for day in range(10):
        (source / "block").write_bytes(b"tsdb block of day %d" % day)
        (source / "meta.json").write_text('{"shared": true}')
        ArtifactRepository(store, "prometheus", wrapper).push(
            str(source), version="%02d" % (day + 1), metadata={"source": "monitoring-1"},
            created=START + datetime.timedelta(days=day))
    for day in (0, 4, 8):
        (source / "block").write_bytes(b"dashboards %d" % day)
        ArtifactRepository(store, "grafana", wrapper).push(str(source), version="g%d" % day,
                                                           created=START + datetime.timedelta(days=day, hours=1))
    return {"store": {"type": "local", "path": str(tmp_path / "store")}, "encryption": {"key_file": str(key)}}


def corrupt(backups, name, version):
    """Flip a byte in the blob only this version has."""
    root = os.path.join(backups["store"]["path"], name)
    with open(os.path.join(root, "manifests", version + ".json")) as handle:
        manifest = json.load(handle)
    sha = [f["sha256"] for f in manifest["files"] if f["path"] == "block"][0]
    path = os.path.join(root, "blobs", sha)
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_list_reports_every_set(backups, run_module):
    result = run_module(backup_catalog.main, dict(backups, mode="list"))
    assert len(result["sets"]) == 13 and result["changed"] is False
    newest = [s for s in result["sets"] if s["name"] == "prometheus"][0]
    assert newest["version"] == "10" and newest["created"].startswith("2026-11-10T02:00")
    assert newest["source"] == "monitoring-1" and newest["good"] and len(newest["checksum"]) == 64
    assert newest["size"] == len(b"tsdb block of day 9") + len('{"shared": true}')


def test_prune_keeps_policy_and_last_good_set(backups, run_module):
    for version in ("08", "09", "10"):
        corrupt(backups, "prometheus", version)
    args = dict(backups, mode="prune", names=["prometheus"], retention={"keep_last": 2})
    planned = run_module(backup_catalog.main, args, check_mode=True)
    assert planned["changed"] and planned["deleted"] == ["prometheus/%02d" % d for d in range(5, 0, -1)]
    assert len(os.listdir(os.path.join(backups["store"]["path"], "prometheus", "manifests"))) == 10  # check mode: untouched

    pruned = run_module(backup_catalog.main, args)
    assert pruned["deleted"] == planned["deleted"]
    left = sorted(v[:-5] for v in os.listdir(os.path.join(backups["store"]["path"], "prometheus", "manifests")))
    # 06 and 07 are the two newest good sets; 08-10 are corrupt but newer than the last good one.
    assert left == ["06", "07", "08", "09", "10"]
    # Blobs only the deleted sets used are gone; the survivors still verify.
    listed = run_module(backup_catalog.main, dict(backups, mode="list", names=["prometheus"], verify="full"))
    assert {s["version"]: s["good"] for s in listed["sets"]} == {"06": True, "07": True, "08": False, "09": False, "10": False}
    again = run_module(backup_catalog.main, args)
    assert again["changed"] is False and again["deleted"] == []


def test_select_point_in_time_skips_corrupt_sets(backups, run_module):
    corrupt(backups, "prometheus", "05")
    result = run_module(backup_catalog.main, dict(backups, mode="select", point_in_time="2026-11-05T12:00:00Z"))
    assert result["selected"]["prometheus"]["version"] == "04"
    assert result["selected"]["grafana"]["version"] == "g4"
    early = run_module(backup_catalog.main, dict(backups, mode="select", point_in_time="2026-10-01T00:00:00Z"))
    assert early["selected"] == {"grafana": None, "prometheus": None}


@pytest.mark.parametrize("extra, field", [
    ({"mode": "prune"}, "retention"),
    ({"mode": "prune", "retention": {"keep_last": 0}}, "retention"),
    ({"mode": "select"}, "point_in_time"),
    ({"mode": "select", "point_in_time": "last tuesday"}, "point_in_time"),
])
def test_bad_input_names_the_field(backups, run_module, extra, field):
    result = run_module(backup_catalog.main, dict(backups, **extra))
    assert result.failed and result["msg"].startswith(field), result["msg"]


def test_wrong_key_fails_instead_of_calling_everything_corrupt(backups, run_module, tmp_path):
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    result = run_module(backup_catalog.main, dict(backups, mode="prune", retention={"keep_last": 1},
                                                  encryption={"key_file": str(other)}))
    assert result.failed and result["msg"].startswith("wrong key")
    assert len(os.listdir(os.path.join(backups["store"]["path"], "prometheus", "manifests"))) == 10
