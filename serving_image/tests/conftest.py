"""Shared fixtures: a tiny model built at test time and real server processes.

Every server here is the real `llmops_serving.server` process listening on
127.0.0.1, generating with torch on the tiny random-weight model.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

KEYS = {"alice": "sk-test-alice-0123456789abcdef", "bob": "sk-test-bob-0123456789abcdef"}
WATERMARK_KEY = b"test-watermark-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key_hashes() -> str:
    return ",".join(f"{n}:{hashlib.sha256(k.encode()).hexdigest()}" for n, k in KEYS.items())


class ServerProcess:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "LLMOPS_HOST": "127.0.0.1", "LLMOPS_PORT": str(self.port),
                    "LLMOPS_TORCH_THREADS": "1", **{k: str(v) for k, v in env.items()}}
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "llmops_serving.server"], env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def metric(self, name: str, headers=None) -> float:
        """Sum of all samples of a metric (exact name, any labels)."""
        text = httpx.get(self.url + "/metrics", headers=headers or {}, timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Word-level tokenizer: generated text re-tokenizes exactly (see tiny_model.build_tokenizer)."""
    from llmops_serving.tiny_model import build
    return build(tmp_path_factory.mktemp("model") / "tiny", vocab_size=512, hidden_size=64, num_layers=2,
                 num_heads=4, max_position_embeddings=2048, tokenizer="word")


@pytest.fixture(scope="session")
def bpe_model_dir(tmp_path_factory) -> Path:
    """Byte-level BPE tokenizer, as real models have (multi-byte characters split across tokens)."""
    from llmops_serving.tiny_model import build
    return build(tmp_path_factory.mktemp("model") / "tiny-bpe", vocab_size=512, hidden_size=64, num_layers=2,
                 num_heads=4, max_position_embeddings=2048, tokenizer="bpe")


@pytest.fixture(scope="session")
def bpe_model(bpe_model_dir):
    """(model, tokenizer) of bpe_model_dir, loaded once, for in-process engine tests."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bpe_model_dir)
    model = AutoModelForCausalLM.from_pretrained(bpe_model_dir, attn_implementation="sdpa").eval()
    return model, tok


class SyncLoop:
    """Stands in for the asyncio loop in in-process engine tests: events are delivered at once."""

    def call_soon_threadsafe(self, fn, *args):
        fn(*args)


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory) -> Path:
    """HS256 secret, RSA keys (PEM + JWKS) and the watermark key, all made at test time."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    d = tmp_path_factory.mktemp("secrets")
    (d / "hs256.secret").write_bytes(b"x" * 8 + os.urandom(24).hex().encode())
    for name in ("rsa1", "rsa2"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (d / f"{name}.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        (d / f"{name}.pub.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(
        serialization.load_pem_public_key((d / "rsa1.pub.pem").read_bytes())))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    (d / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    (d / "watermark.key").write_bytes(WATERMARK_KEY)
    return d


def base_env(model_dir: Path, secrets_dir: Path, **extra) -> dict:
    env = {
        "LLMOPS_MODEL_PATH": str(model_dir),
        "LLMOPS_SERVED_MODEL_NAME": "tiny",
        "LLMOPS_API_KEYS": key_hashes(),
        "LLMOPS_JWT_HS256_SECRET_FILE": str(secrets_dir / "hs256.secret"),
        "LLMOPS_JWT_JWKS_FILE": str(secrets_dir / "jwks.json"),
        "LLMOPS_JWT_ISSUER": "https://issuer.test",
        "LLMOPS_JWT_AUDIENCE": "llmops",
        "LLMOPS_WATERMARK_KEY_FILE": str(secrets_dir / "watermark.key"),
        "LLMOPS_MAX_BATCH_SIZE": "16",
        "LLMOPS_MAX_PROMPTS_PER_REQUEST": "4",
        "LLMOPS_MAX_BODY_BYTES": "65536",
        "LLMOPS_DRAIN_GRACE_SECONDS": "10",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def start_server(tmp_path_factory, model_dir, secrets_dir):
    started: list[ServerProcess] = []

    def _start(wait: bool = True, **extra) -> ServerProcess:
        log = tmp_path_factory.mktemp("srv") / "server.log"
        srv = ServerProcess(base_env(model_dir, secrets_dir, **extra), log)
        started.append(srv)
        return srv.wait_ready() if wait else srv

    yield _start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(start_server) -> ServerProcess:
    """The main server: API keys + JWT, watermark detector available, no watermark applied."""
    return start_server()


@pytest.fixture
def auth() -> dict:
    return {"Authorization": f"Bearer {KEYS['alice']}"}


@pytest.fixture
def client(server, auth):
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as c:
        yield c
