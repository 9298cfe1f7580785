"""Runs the built container image once and talks to it over HTTP.

Run through scripts/test-image.sh, which builds the image first and sets
LLMOPS_SERVING_IMAGE. When podman is present this test fails (never skips) if the
image is missing or does not work; it skips, loudly, only without podman.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import KEYS, free_port, key_hashes

pytestmark = pytest.mark.image
HERE = Path(__file__).resolve().parent


def _podman(*args, check=True, timeout=120):
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None:
        pytest.skip("LOUD SKIP: podman is not installed; the container image was NOT tested")
    ref = os.environ.get("LLMOPS_SERVING_IMAGE", "localhost/llmops/serving:test")
    r = _podman("image", "exists", ref, check=False)
    assert r.returncode == 0, f"image {ref} does not exist: build it with scripts/test-image.sh"
    return ref


def test_image_metadata(image):
    info = json.loads(_podman("image", "inspect", image).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == "1000:1000"
    hc = info.get("Healthcheck") or info.get("HealthCheck") or cfg.get("Healthcheck") or {}
    assert "/readyz" in " ".join(hc.get("Test", []))
    assert cfg["Entrypoint"] == ["/opt/venv/bin/llmops-serve"]


def test_container_serves_over_http_read_only(image, model_dir, tmp_path):
    # the container runs as UID 1000: give it a world-readable copy of the model
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    for p in [model, *model.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    port = free_port()
    name = f"llmops-serving-test-{port}"
    run = _podman(
        "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=256m",
        "--cap-drop", "all", "--security-opt", "no-new-privileges",
        "-v", f"{model}:/models/model:ro",
        "-e", f"LLMOPS_PORT={port}", "-e", "LLMOPS_HOST=127.0.0.1", "-e", f"LLMOPS_API_KEYS={key_hashes()}",
        "-e", "LLMOPS_TORCH_THREADS=1", image, check=False)
    assert run.returncode == 0, run.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            state = _podman("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
            assert state == "true", _podman("logs", name, check=False).stdout[-4000:]
            time.sleep(0.5)
        assert ready, _podman("logs", name, check=False).stdout[-4000:]
        assert _podman("exec", name, "id", "-u").stdout.strip() == "1000"
        auth = {"Authorization": f"Bearer {KEYS['alice']}"}
        r = httpx.post(url + "/v1/completions", headers=auth, timeout=30,
                       json={"prompt": "Hello", "max_tokens": 5, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 5
        r = httpx.post(url + "/v1/chat/completions", headers=auth, timeout=30,
                       json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True})
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        assert httpx.get(url + "/v1/models").status_code == 401
        assert "llmops_http_requests_total" in httpx.get(url + "/metrics").text
        # the image's own HEALTHCHECK command passes inside the running container
        hc = _podman("healthcheck", "run", name, check=False)
        assert hc.returncode == 0, hc.stdout + hc.stderr
        # SIGTERM drains and exits cleanly
        _podman("stop", "-t", "30", name)
        code = _podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", _podman("logs", name, check=False).stdout[-4000:]
    finally:
        _podman("rm", "-f", name, check=False)


def test_import_cli_converts_gguf_in_a_networkless_read_only_container(image, bpe_model_dir, tmp_path):
    """What the model_import role runs: llmops-import-model as uid 1000, no network, read-only root. The
    image must carry everything the GGUF path needs (gguf, accelerate); the result must load."""
    from test_import_model import write_gguf

    src = tmp_path / "src"
    src.mkdir()
    gguf_file = write_gguf(bpe_model_dir, src / "tiny.gguf")
    gguf_file.chmod(0o644)
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, 1000, 1000)
    else:
        out.chmod(0o777)
    run = _podman("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--user", "1000:1000",
                  "--cap-drop", "all", "--security-opt", "no-new-privileges",
                  "-v", f"{gguf_file}:/in/tiny.gguf:ro", "-v", f"{out}:/out",
                  "--entrypoint", "/opt/venv/bin/llmops-import-model", image,
                  "/in/tiny.gguf", "/out/model", "--source", "test:tiny", check=False, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    provenance = json.loads(run.stdout.strip().splitlines()[-1])
    assert provenance["source_kind"] == "gguf" and provenance["architecture"] == "llama"
    assert sorted(p.name for p in (out / "model").glob("*.safetensors")) == ["model.safetensors"]
    assert json.loads((out / "model" / "llmops-provenance.json").read_text()) == provenance
