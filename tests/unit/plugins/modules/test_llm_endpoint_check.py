"""llm_endpoint_check against the real serving image server (serving_image/), not a stub.

The servers are `python -m llmops_serving.server` processes from serving_image/.venv (created here with
serving_image/scripts/ensure-venv.sh when it is missing or stale, as the `serving` test stage does), on
free loopback ports, generating with torch on a tiny random-weight model made at test time.
"""
import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from ansible_collections.llmops.platform.plugins.modules import llm_endpoint_check

ROOT = pathlib.Path(__file__).resolve().parents[4]
SERVING = ROOT / "serving_image"
VENV_PY = SERVING / ".venv" / "bin" / "python"
KEYS = {"smoke": "sk-ut-smoke-5f0c1d2e3a4b5c6d7e8f", "prometheus": "sk-ut-prom-0a1b2c3d4e5f60718293"}
MODEL = "tiny-llama"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server(object):
    """One llmops-serve process; `url` is its base URL."""

    def __init__(self, workdir, model_dir, **env):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = workdir / ("server-%d.log" % self.port)
        full = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LLMOPS_HOST="127.0.0.1",
                    LLMOPS_PORT=str(self.port), LLMOPS_TORCH_THREADS="1", LLMOPS_MODEL_PATH=str(model_dir),
                    LLMOPS_SERVED_MODEL_NAME=MODEL, LLMOPS_DRAIN_GRACE_SECONDS="2")
        full.update(dict((k, str(v)) for k, v in env.items()))
        self._log = open(str(self.log_path), "wb")
        self.proc = subprocess.Popen([str(VENV_PY), "-m", "llmops_serving.server"], env=full,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                if urllib.request.urlopen(self.url + "/readyz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready after %ss:\n%s" % (timeout, self.log()))

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def serving(tmp_path_factory):
    """The serving venv (made if missing or stale), a tiny model, a key store; yields start(**env)."""
    subprocess.run(["bash", str(SERVING / "scripts" / "ensure-venv.sh")], check=True)
    work = tmp_path_factory.mktemp("serving")
    model_dir = work / "tiny"
    subprocess.run([str(VENV_PY), "-m", "llmops_serving.tiny_model", str(model_dir), "--tokenizer", "word",
                    "--max-position-embeddings", "256"], check=True, capture_output=True,
                   env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    keys_file = work / "api-keys"
    keys_file.write_text("".join("%s:%s\n" % (name, hashlib.sha256(key.encode()).hexdigest())
                                 for name, key in KEYS.items()))
    started = []

    def start(wait=True, **env):
        server = Server(work, model_dir, **env)
        started.append(server)
        return server.wait_ready() if wait else server

    start.keys_file = keys_file
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def secured(serving):
    """Production-like: API keys from a file, /metrics open."""
    return serving(LLMOPS_API_KEYS_FILE=serving.keys_file)


@pytest.fixture(scope="session")
def open_server(serving):
    """Auth switched off (LLMOPS_AUTH_ENABLED=false): what the auth check must catch."""
    return serving(LLMOPS_AUTH_ENABLED="false")


@pytest.fixture(scope="session")
def metrics_closed(serving):
    return serving(LLMOPS_API_KEYS_FILE=serving.keys_file, LLMOPS_METRICS_REQUIRE_AUTH="true")


def check(run_module, url, check_mode=False, **args):
    return run_module(llm_endpoint_check.main, dict(args, url=url), check_mode=check_mode)


def by_name(result):
    return dict((c["name"], c) for c in result["checks"])


def test_healthy_server_passes_with_figures(run_module, secured):
    result = check(run_module, secured.url + "/", api_key=KEYS["smoke"], ready_timeout=30)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    assert result["url"] == secured.url
    assert result["model"] == MODEL
    assert [c["name"] for c in result["checks"]] == ["readiness", "models", "completion", "slo", "auth", "metrics"]
    assert all(c["ok"] for c in result["checks"]), result["checks"]
    assert result["failed_checks"] == []
    assert 0 <= result["ready_after_seconds"] < 30
    assert 0 < result["completion_latency_seconds"] < 10
    assert 0 <= result["completion_tokens"] <= 8
    assert result["auth_enforced"] is True
    assert result["metrics_reachable"] is True
    assert "without a key: 401" in by_name(result)["auth"]["detail"]
    assert "with an unknown key: 401" in by_name(result)["auth"]["detail"]
    assert "llmops_ready 1" in by_name(result)["metrics"]["detail"]
    # The key never appears in what the module returns.
    assert KEYS["smoke"] not in repr(result)


def test_check_mode_runs_the_same_read_only_checks(run_module, secured):
    result = check(run_module, secured.url, check_mode=True, api_key=KEYS["smoke"], model=MODEL, max_tokens=2,
                   check_metrics=False)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    assert [c["name"] for c in result["checks"]] == ["readiness", "models", "completion", "slo", "auth"]
    assert result["completion_tokens"] <= 2
    assert result["metrics_reachable"] is None


def test_auth_disabled_server_fails_the_auth_check(run_module, open_server):
    result = check(run_module, open_server.url, ready_timeout=30)
    assert result.failed
    assert result["failed_checks"] == ["auth"]
    assert result["auth_enforced"] is False
    assert "auth not enforced: POST /v1/completions without a key returned 200" in result["msg"]
    assert "set api keys in the serving config" in result["msg"]
    # The rest still ran and measured: the failure carries the figures.
    assert result["completion_latency_seconds"] > 0
    assert result["metrics_reachable"] is True


def test_auth_disabled_server_passes_when_auth_is_not_checked(run_module, open_server):
    result = check(run_module, open_server.url, check_auth=False)
    assert not result.failed, result.get("msg")
    assert result["auth_enforced"] is None


def test_wrong_key_fails_clearly(run_module, secured):
    result = check(run_module, secured.url, api_key="sk-not-a-key-of-this-server")
    assert result.failed
    assert result["failed_checks"] == ["models"]
    assert "models: GET /v1/models returned 401 (invalid_api_key" in result["msg"]
    assert "the api_key was refused" in result["msg"]
    assert result["completion_latency_seconds"] is None
    # Auth and metrics do not depend on the key and still pass.
    assert result["auth_enforced"] is True and result["metrics_reachable"] is True
    assert "sk-not-a-key-of-this-server" not in result["msg"]


def test_missing_key_on_a_secured_server_says_the_api_needs_one(run_module, secured):
    result = check(run_module, secured.url, model=MODEL)
    assert result.failed
    assert "the API needs a key" in result["msg"]


def test_unknown_model_is_named(run_module, secured):
    result = check(run_module, secured.url, api_key=KEYS["smoke"], model="llama-70b")
    assert result.failed
    assert "model 'llama-70b' is not served here (served: tiny-llama)" in result["msg"]


def test_unreachable_url_fails_within_the_ready_timeout(run_module):
    port = free_port()  # nothing listens there once the probe socket is closed
    start = time.monotonic()
    result = check(run_module, "http://127.0.0.1:%d" % port, api_key="x", ready_timeout=3)
    elapsed = time.monotonic() - start
    assert result.failed
    assert elapsed < 8, "gave up after %.1f s with ready_timeout 3" % elapsed
    assert result["failed_checks"] == ["readiness"]
    assert result["ready_after_seconds"] is None
    assert "not ready: GET http://127.0.0.1:%d/readyz did not return 200 within 3 s" % port in result["msg"]
    assert "Connection refused" in result["msg"] or "ConnectionRefused" in result["msg"]
    assert "check url and that the server is running" in result["msg"]
    attempts = int(result["msg"].split(" s (", 1)[1].split(" attempts", 1)[0])
    assert attempts >= 3, "readiness was not polled: %s" % result["msg"]


def test_slo_too_small_fails_naming_the_slo(run_module, secured):
    result = check(run_module, secured.url, api_key=KEYS["smoke"], slo_seconds=0.000001)
    assert result.failed
    assert result["failed_checks"] == ["slo"]
    assert "completion SLO missed" in result["msg"] and "the SLO is 1e-06 s" in result["msg"]
    assert result["completion_latency_seconds"] > 0.000001


def test_closed_metrics_need_metrics_api_key(run_module, metrics_closed):
    result = check(run_module, metrics_closed.url, api_key=KEYS["smoke"])
    assert result.failed
    assert result["failed_checks"] == ["metrics"]
    assert result["metrics_reachable"] is False
    assert "metrics closed: GET /metrics without a key returned 401" in result["msg"]
    assert "set metrics_api_key" in result["msg"]

    result = check(run_module, metrics_closed.url, api_key=KEYS["smoke"], metrics_api_key=KEYS["prometheus"])
    assert not result.failed, result.get("msg")
    assert result["metrics_reachable"] is True
    assert by_name(result)["metrics"]["detail"].startswith("with metrics_api_key")

    result = check(run_module, metrics_closed.url, api_key=KEYS["smoke"], metrics_api_key="sk-wrong")
    assert result.failed
    assert "metrics unreachable: GET /metrics with metrics_api_key returned 401" in result["msg"]


def test_waits_for_a_server_that_is_still_starting(run_module, serving):
    server = serving(wait=False, LLMOPS_API_KEYS_FILE=serving.keys_file)
    result = check(run_module, server.url, api_key=KEYS["smoke"], ready_timeout=120)
    assert not result.failed, "%s\n%s" % (result.get("msg"), server.log())
    assert result["ready_after_seconds"] > 0
    readiness = by_name(result)["readiness"]["detail"]
    assert "attempts)" in readiness, readiness  # more than one poll: it really waited
    server.stop()


def test_bad_arguments_name_the_field(run_module):
    result = check(run_module, "127.0.0.1:8080")
    assert result.failed and result["msg"].startswith("url: must be the http(s) base URL")
    result = check(run_module, "http://127.0.0.1:1", slo_seconds=0)
    assert result.failed and result["msg"].startswith("slo_seconds: must be greater than 0")
