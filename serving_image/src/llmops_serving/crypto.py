"""AES-256-GCM encryption of safetensors weight files, and the CLI that applies it.

The file format is LLMOPSE1, the one llmops encryption format; its spec is docs/encryption.md at the
repository root. The Ansible collection implements the same spec (plugins/module_utils/envelope.py);
this image imports nothing from it, and both are tested against tests/vectors/encryption.json.

File format (`<name>.safetensors.enc`):
    magic "LLMOPSE1" | 8-byte random nonce prefix | 4-byte big-endian chunk size
    | chunk_0 | chunk_1 | ...  each chunk = AES-GCM(ciphertext || 16-byte tag)
Chunk i uses nonce = prefix || i (4 bytes) and authenticated data
= header || file name || i || last-flag, so chunks cannot be reordered, swapped
between files, truncated or extended without the tag check failing (the STREAM
construction). Chunking keeps each GCM call under cryptography's 2 GiB limit.

`encryption.json` in the model directory records a key check value
(HMAC-SHA256(key, "llmops-key-check")), so a wrong key is reported as a wrong
key, and a right key that fails a tag check is reported as a tampered file.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import shutil
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"LLMOPSE1"
PREFIX_LEN = 8
HEADER_LEN = len(MAGIC) + PREFIX_LEN + 4
TAG_LEN = 16
DEFAULT_CHUNK = 64 * 1024 * 1024
# Readers refuse larger chunks (spec): a forged header must not decide how much one GCM call takes.
MAX_CHUNK = 1 << 30
MANIFEST = "encryption.json"


class WeightsDecryptionError(RuntimeError):
    pass


def parse_key(material: bytes | str) -> bytes:
    """A key is 64 hex characters, base64 of 32 bytes, or exactly 32 raw bytes."""
    if isinstance(material, str):
        material = material.encode()
    text = material.strip()
    if len(text) == 64:
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            pass
    if len(text) in (43, 44):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                key = decode(text + b"=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                continue
            if len(key) == 32:
                return key
    if len(material) == 32:
        return material
    raise ValueError("weights key must be 64 hex chars, base64 of 32 bytes, or 32 raw bytes")


def load_key(key_file: str = "", env_var: str = "LLMOPS_WEIGHTS_KEY") -> bytes | None:
    if key_file:
        return parse_key(Path(key_file).read_bytes())
    value = os.environ.get(env_var) if env_var else None
    return parse_key(value) if value else None


def key_check(key: bytes) -> str:
    return hmac.new(key, b"llmops-key-check", hashlib.sha256).hexdigest()


def _aad(header: bytes, name: str, index: int, last: bool) -> bytes:
    return header + name.encode() + struct.pack(">I?", index, last)


def encrypt_bytes(data: bytes, key: bytes, name: str, chunk_size: int = DEFAULT_CHUNK,
                  nonce_prefix: bytes | None = None) -> bytes:
    """Seal `data` (LLMOPSE1). `nonce_prefix` is for the test vectors only: never repeat one under a key."""
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK} bytes")
    prefix = nonce_prefix or secrets.token_bytes(PREFIX_LEN)
    if len(prefix) != PREFIX_LEN:
        raise ValueError(f"the nonce prefix must be {PREFIX_LEN} bytes")
    aes = AESGCM(key)
    header = MAGIC + prefix + struct.pack(">I", chunk_size)
    out = [header]
    n_chunks = max(1, -(-len(data) // chunk_size))
    for i in range(n_chunks):
        chunk = data[i * chunk_size:(i + 1) * chunk_size]
        last = i == n_chunks - 1
        out.append(aes.encrypt(prefix + struct.pack(">I", i), chunk, _aad(header, name, i, last)))
    return b"".join(out)


def decrypt_bytes(blob: bytes, key: bytes, name: str) -> bytes:
    if len(blob) < HEADER_LEN + TAG_LEN or not blob.startswith(MAGIC):
        raise WeightsDecryptionError(f"{name}: not an llmops encrypted weights file (bad header)")
    header = blob[:HEADER_LEN]
    prefix = header[len(MAGIC):len(MAGIC) + PREFIX_LEN]
    (chunk_size,) = struct.unpack(">I", header[-4:])
    if not 0 < chunk_size <= MAX_CHUNK:
        raise WeightsDecryptionError(f"{name}: impossible chunk size {chunk_size}: the file was modified")
    aes = AESGCM(key)
    body = memoryview(blob)[HEADER_LEN:]
    step = chunk_size + TAG_LEN
    n_chunks = max(1, -(-len(body) // step))
    if n_chunks > 1 << 32:
        raise WeightsDecryptionError(f"{name}: more chunks than the format allows: the file was modified")
    out = []
    for i in range(n_chunks):
        part = bytes(body[i * step:(i + 1) * step])
        try:
            out.append(aes.decrypt(prefix + struct.pack(">I", i), part, _aad(header, name, i, i == n_chunks - 1)))
        except InvalidTag:
            raise WeightsDecryptionError(f"{name}: authentication failed at chunk {i}: the file was modified "
                                         "or truncated, or the key is wrong") from None
    return b"".join(out)


def encrypted_files(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.safetensors.enc"))


def load_encrypted_state_dict(model_dir: Path, key: bytes) -> dict:
    """Decrypt every shard in memory (plaintext never touches disk) and return one state dict."""
    from safetensors.torch import load as load_safetensors

    manifest = model_dir / MANIFEST
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if not hmac.compare_digest(info.get("key_check", ""), key_check(key)):
            raise WeightsDecryptionError("wrong weights key: it does not match the key this model was encrypted with")
    state: dict = {}
    for path in encrypted_files(model_dir):
        plain_name = path.name[: -len(".enc")]
        state.update(load_safetensors(decrypt_bytes(path.read_bytes(), key, plain_name)))
    return state


def encrypt_model_dir(src: Path, dst: Path, key: bytes, chunk_size: int = DEFAULT_CHUNK) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for item in sorted(src.iterdir()):
        if item.is_dir():
            continue
        if item.name.endswith(".safetensors"):
            target = dst / (item.name + ".enc")
            target.write_bytes(encrypt_bytes(item.read_bytes(), key, item.name, chunk_size))
        elif item.name.endswith((".bin", ".pt", ".pth")):
            raise SystemExit(f"{item.name}: only safetensors weights can be encrypted; convert first")
        else:
            target = dst / item.name
            shutil.copy2(item, target)
        written.append(target)
    (dst / MANIFEST).write_text(json.dumps({"format": "llmops-aes256gcm-v1", "key_check": key_check(key)}, indent=2))
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Encrypt the safetensors weights of a model directory with AES-256-GCM.")
    p.add_argument("src", type=Path, help="plain model directory (config, tokenizer, *.safetensors)")
    p.add_argument("dst", type=Path, help="output directory")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--key-file", help="file holding the key (32 raw bytes, 64 hex chars or base64)")
    g.add_argument("--generate-key", metavar="PATH", help="create a new random key at PATH (mode 0600) and use it")
    p.add_argument("--chunk-mib", type=int, default=64)
    a = p.parse_args(argv)
    if a.generate_key:
        key = secrets.token_bytes(32)
        fd = os.open(a.generate_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
    else:
        key = parse_key(Path(a.key_file).read_bytes())
    if not any(a.src.glob("*.safetensors")):
        sys.exit(f"{a.src}: no *.safetensors files to encrypt")
    written = encrypt_model_dir(a.src, a.dst, key, a.chunk_mib * 1024 * 1024)
    for w in written:
        print(w)


if __name__ == "__main__":
    main()
