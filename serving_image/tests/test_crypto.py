"""Encrypted weights: format checks, the CLI, and server start-up with good/wrong key and tampered files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import KEYS, ServerProcess, base_env
from llmops_serving import crypto

AUTH = {"Authorization": f"Bearer {KEYS['alice']}"}
# The format's shared vectors, outside both packages: the collection's tests read the same file
# (tests/unit/plugins/module_utils/test_envelope.py). Spec: docs/encryption.md.
VECTORS = json.loads((Path(__file__).resolve().parents[2] / "tests" / "vectors" / "encryption.json").read_text())


def by_name(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["name"] for v in vectors])


@by_name(VECTORS["valid"])
def test_crypto_vector_decrypts_and_encrypts_to_the_same_bytes(vector):
    key, plaintext = bytes.fromhex(vector["key"]), bytes.fromhex(vector["plaintext"])
    assert crypto.decrypt_bytes(bytes.fromhex(vector["ciphertext"]), key, vector["context"]) == plaintext
    sealed = crypto.encrypt_bytes(plaintext, key, vector["context"], chunk_size=vector["chunk_size"],
                                  nonce_prefix=bytes.fromhex(vector["nonce_prefix"]))
    assert sealed.hex() == vector["ciphertext"]


@by_name(VECTORS["invalid"] + VECTORS["legacy_llma1"]["vectors"])
def test_crypto_vector_is_refused(vector):
    # The image never read the collection's legacy LLMA1 blobs (model_artifact decrypts those
    # itself), so it refuses them as it refuses every broken LLMOPSE1 file.
    with pytest.raises(crypto.WeightsDecryptionError):
        crypto.decrypt_bytes(bytes.fromhex(vector["ciphertext"]), bytes.fromhex(vector["key"]), vector["context"])


def test_roundtrip_chunked_and_tamper_detection():
    key = os.urandom(32)
    data = os.urandom(10_000)
    blob = crypto.encrypt_bytes(data, key, "model.safetensors", chunk_size=4096)
    assert data not in blob
    assert crypto.decrypt_bytes(blob, key, "model.safetensors") == data
    with pytest.raises(crypto.WeightsDecryptionError, match="modified"):
        crypto.decrypt_bytes(blob, os.urandom(32), "model.safetensors")
    flipped = bytearray(blob)
    flipped[5000] ^= 1
    with pytest.raises(crypto.WeightsDecryptionError):
        crypto.decrypt_bytes(bytes(flipped), key, "model.safetensors")
    with pytest.raises(crypto.WeightsDecryptionError):  # truncated by one whole chunk
        crypto.decrypt_bytes(blob[: crypto.HEADER_LEN + 2 * (4096 + 16)], key, "model.safetensors")
    with pytest.raises(crypto.WeightsDecryptionError):  # renamed / swapped file
        crypto.decrypt_bytes(blob, key, "other.safetensors")


def test_key_formats():
    raw = os.urandom(32)
    import base64
    assert crypto.parse_key(raw.hex()) == raw
    assert crypto.parse_key(base64.b64encode(raw)) == raw
    assert crypto.parse_key(raw.hex() + "\n") == raw
    with pytest.raises(ValueError):
        crypto.parse_key("too-short")


@pytest.fixture(scope="module")
def encrypted(model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    keyfile = d / "weights.key"
    out = d / "model"
    r = subprocess.run([sys.executable, "-m", "llmops_serving.crypto", str(model_dir), str(out),
                        "--generate-key", str(keyfile)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    assert not list(out.glob("*.safetensors"))
    assert list(out.glob("*.safetensors.enc")) and (out / "config.json").exists()
    return out, keyfile


def _server(model, tmp_path, secrets_dir, **env) -> ServerProcess:
    return ServerProcess(base_env(model, secrets_dir, **env), tmp_path / "server.log")


def test_server_serves_encrypted_model(encrypted, server, tmp_path, secrets_dir):
    model, keyfile = encrypted
    srv = _server(model, tmp_path, secrets_dir, LLMOPS_WEIGHTS_KEY=keyfile.read_text().strip())
    try:
        srv.wait_ready()
        body = {"prompt": "The quick brown fox", "max_tokens": 12, "temperature": 0, "ignore_eos": True}
        enc = httpx.post(srv.url + "/v1/completions", json=body, headers=AUTH, timeout=30).json()
        plain = httpx.post(server.url + "/v1/completions", json=body, headers=AUTH, timeout=30).json()
        assert enc["choices"][0]["text"] == plain["choices"][0]["text"]  # same weights after decryption
    finally:
        srv.stop()


def test_server_refuses_wrong_key(encrypted, tmp_path, secrets_dir):
    model, _ = encrypted
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex())
    srv = _server(model, tmp_path, secrets_dir, LLMOPS_WEIGHTS_KEY_FILE=str(wrong))
    code = srv.proc.wait(60)
    srv.stop()
    assert code != 0
    assert "refusing to start" in srv.log() and "wrong weights key" in srv.log()


def test_server_refuses_missing_key(encrypted, tmp_path, secrets_dir):
    model, _ = encrypted
    srv = _server(model, tmp_path, secrets_dir)
    code = srv.proc.wait(60)
    srv.stop()
    assert code != 0 and "no key was given" in srv.log()


def test_server_refuses_tampered_file(encrypted, tmp_path, secrets_dir):
    import shutil
    model, keyfile = encrypted
    bad = tmp_path / "tampered"
    shutil.copytree(model, bad)
    shard = next(bad.glob("*.safetensors.enc"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    srv = _server(bad, tmp_path, secrets_dir, LLMOPS_WEIGHTS_KEY_FILE=str(keyfile))
    code = srv.proc.wait(60)
    srv.stop()
    assert code != 0
    assert "refusing to start" in srv.log() and "modified or truncated" in srv.log()
