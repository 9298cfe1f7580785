"""envelope.py against the shared LLMOPSE1 vectors (tests/vectors/encryption.json, also read by
serving_image/tests/test_crypto.py), and against the serving image's own implementation of the spec."""
import base64
import hashlib
import importlib.util
import json
import os

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import envelope

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VECTORS_DIR = os.path.join(TESTS, "vectors")
with open(os.path.join(VECTORS_DIR, "encryption.json")) as _handle:
    VECTORS = json.load(_handle)
IMAGE_CRYPTO = os.path.join(os.path.dirname(TESTS), "serving_image", "src", "llmops_serving", "crypto.py")


def load(path, name):
    """A standalone file as a module: the image's crypto.py must work without the collection (and
    the collection never imports the image), so each is loaded by path, not through a package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_name(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["name"] for v in vectors])


def decrypt(tmp_path, key, context, ciphertext, expected_sha256=None):
    sealed, plain = tmp_path / "sealed", tmp_path / "plain"
    sealed.write_bytes(ciphertext)
    envelope.decrypt_file(key, context, str(sealed), str(plain), expected_sha256 or hashlib.sha256(b"").hexdigest())
    return plain.read_bytes()


def test_vectors_are_what_the_generator_writes():
    generator = load(os.path.join(VECTORS_DIR, "generate_encryption.py"), "generate_encryption")
    with open(os.path.join(VECTORS_DIR, "encryption.json")) as handle:
        assert handle.read() == generator.render(), "run python tests/vectors/generate_encryption.py"


@by_name(VECTORS["valid"])
def test_valid_vector_decrypts(tmp_path, vector):
    plaintext = bytes.fromhex(vector["plaintext"])
    got = decrypt(tmp_path, bytes.fromhex(vector["key"]), vector["context"], bytes.fromhex(vector["ciphertext"]),
                  hashlib.sha256(plaintext).hexdigest())
    assert got == plaintext


@by_name(VECTORS["valid"])
def test_valid_vector_encrypts_to_the_same_bytes(tmp_path, vector):
    source, target = tmp_path / "plain", tmp_path / "sealed"
    source.write_bytes(bytes.fromhex(vector["plaintext"]))
    envelope.encrypt_file(bytes.fromhex(vector["key"]), vector["context"], str(source), str(target),
                          chunk=vector["chunk_size"], nonce_prefix=bytes.fromhex(vector["nonce_prefix"]))
    assert target.read_bytes().hex() == vector["ciphertext"]


@by_name(VECTORS["invalid"])
def test_invalid_vector_fails_before_the_digest_check(tmp_path, vector):
    # A reader that let the bytes through would still fail on the plaintext SHA-256; it must refuse
    # on the chunk structure and tags first, or the vector proves nothing about the format.
    with pytest.raises(envelope.IntegrityError) as caught:
        decrypt(tmp_path, bytes.fromhex(vector["key"]), vector["context"], bytes.fromhex(vector["ciphertext"]))
    assert "wrong SHA-256" not in caught.value.message


@by_name(VECTORS["legacy_llma1"]["vectors"])
def test_legacy_llma1_blobs_are_still_read(tmp_path, vector):
    key, ciphertext = bytes.fromhex(vector["key"]), bytes.fromhex(vector["ciphertext"])
    if vector["plaintext"] is None:
        with pytest.raises(envelope.IntegrityError, match="truncated"):
            decrypt(tmp_path, key, vector["context"], ciphertext)
        return
    plaintext = bytes.fromhex(vector["plaintext"])
    assert decrypt(tmp_path, key, vector["context"], ciphertext, hashlib.sha256(plaintext).hexdigest()) == plaintext


@pytest.fixture(scope="module")
def image_crypto():
    if not os.path.exists(IMAGE_CRYPTO):
        pytest.skip("serving_image/ is not part of a built collection; run from the repository")
    return load(IMAGE_CRYPTO, "image_crypto")


@pytest.mark.parametrize("size", [0, 1, 4096, 10000])
def test_the_collection_and_the_image_read_each_other(tmp_path, image_crypto, size):
    key, plaintext = envelope.new_data_key(), os.urandom(size)
    digest = hashlib.sha256(plaintext).hexdigest()
    source, sealed = tmp_path / "plain", tmp_path / "sealed"
    source.write_bytes(plaintext)
    envelope.encrypt_file(key, digest, str(source), str(sealed), chunk=4096)
    from_collection = sealed.read_bytes()
    assert image_crypto.decrypt_bytes(from_collection, key, digest) == plaintext
    from_image = image_crypto.encrypt_bytes(plaintext, key, "model.safetensors", chunk_size=4096)
    assert decrypt(tmp_path, key, "model.safetensors", from_image, digest) == plaintext
    # The same key and name but another context (file) is refused on both sides.
    with pytest.raises(image_crypto.WeightsDecryptionError):
        image_crypto.decrypt_bytes(from_collection, key, "model.safetensors")
    with pytest.raises(envelope.IntegrityError):
        decrypt(tmp_path, key, digest, from_image, digest)


def test_each_encryption_uses_a_fresh_nonce_prefix(tmp_path):
    key = envelope.new_data_key()
    source = tmp_path / "plain"
    source.write_bytes(b"same content")
    sealed = []
    for name in ("one", "two"):
        envelope.encrypt_file(key, "blob", str(source), str(tmp_path / name))
        sealed.append((tmp_path / name).read_bytes())
    assert sealed[0][:len(envelope.MAGIC)] == envelope.MAGIC
    assert sealed[0][len(envelope.MAGIC):envelope.HEADER - 4] != sealed[1][len(envelope.MAGIC):envelope.HEADER - 4]


def test_refuses_a_chunk_size_readers_would_reject(tmp_path):
    source = tmp_path / "plain"
    source.write_bytes(b"x")
    for chunk in (0, envelope.MAX_CHUNK + 1):
        with pytest.raises(ValueError, match="chunk size"):
            envelope.encrypt_file(envelope.new_data_key(), "blob", str(source), str(tmp_path / "out"), chunk=chunk)


def test_key_file_formats(tmp_path):
    raw = os.urandom(32)
    for name, content in (("raw", raw), ("hex", raw.hex().encode() + b"\n"), ("b64", base64.b64encode(raw))):
        path = tmp_path / name
        path.write_bytes(content)
        assert envelope.read_key_file(str(path)) == raw
