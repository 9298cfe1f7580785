"""prometheus_snapshot against a real Prometheus (Debian's package) on loopback, restored into a second one."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from ansible_collections.llmops.platform.plugins.modules import model_artifact, prometheus_snapshot


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def query(url, expr):
    with urllib.request.urlopen("%s/api/v1/query?query=%s" % (url, expr), timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


class Prometheus(object):
    """A real Prometheus process on loopback. Without `data`, it gets a fresh data directory and
    scrapes itself every second; with `data`, it serves that (restored) directory and scrapes nothing."""

    def __init__(self, tmp, name, admin_api=True, data=None):
        if not shutil.which("prometheus"):
            pytest.fail("prometheus is not installed (scripts/bootstrap.sh installs Debian's package)")
        os.makedirs(str(tmp / name))
        self.data = data or str(tmp / name / "data")
        port = free_port()
        self.url = "http://127.0.0.1:%d" % port
        config = tmp / name / "prometheus.yml"
        if data:
            config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
        else:
            config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n"
                              "  - job_name: self\n    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % port)
        args = ["prometheus", "--config.file=%s" % config, "--storage.tsdb.path=%s" % self.data,
                "--web.listen-address=127.0.0.1:%d" % port]
        if admin_api:
            args.append("--web.enable-admin-api")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/-/ready", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("prometheus did not become ready in 30 s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def store(tmp_path):
    key = tmp_path / "backup.key"
    key.write_bytes(os.urandom(32))
    return {"store": {"type": "local", "path": str(tmp_path / "backups")}, "encryption": {"key_file": str(key)}}


def test_snapshot_is_stored_shared_and_restores_into_a_new_prometheus(tmp_path, run_module, store):
    primary = Prometheus(tmp_path, "primary")
    try:
        deadline = time.time() + 20
        while not query(primary.url, "up") and time.time() < deadline:
            time.sleep(0.5)
        assert query(primary.url, "up"), "no sample scraped yet"
        args = dict(store, url=primary.url, data_dir=primary.data, source="primary")
        assert run_module(prometheus_snapshot.main, args, check_mode=True)["changed"]
        assert not os.path.exists(os.path.join(primary.data, "snapshots")) or not os.listdir(os.path.join(primary.data, "snapshots"))
        first = run_module(prometheus_snapshot.main, args)
        assert first["changed"] and first["uploaded"], first
        assert not os.listdir(os.path.join(primary.data, "snapshots")), "local snapshot removed after upload"
        second = run_module(prometheus_snapshot.main, args)
        assert second["version"] != first["version"]
    finally:
        primary.stop()

    # Restore the newest set into an empty directory and serve it with a second Prometheus that
    # scrapes nothing: every sample it answers with came from the primary, through the backup.
    restored = str(tmp_path / "restored" / "data")
    pulled = run_module(model_artifact.main, dict(store, mode="pull", name="prometheus", path=restored))
    assert pulled["version"] == second["version"]
    replica = Prometheus(tmp_path, "replica", admin_api=False, data=restored)
    try:
        found = query(replica.url, 'count_over_time(up{job="self"}[1h])')
        assert found and float(found[0]["value"][1]) >= 1, "the restored TSDB holds the primary's samples"
    finally:
        replica.stop()


def test_admin_api_disabled_says_how_to_enable_it(tmp_path, run_module, store):
    server = Prometheus(tmp_path, "noadmin", admin_api=False)
    try:
        result = run_module(prometheus_snapshot.main, dict(store, url=server.url, data_dir=server.data))
    finally:
        server.stop()
    assert result.failed and "--web.enable-admin-api" in result["msg"]
