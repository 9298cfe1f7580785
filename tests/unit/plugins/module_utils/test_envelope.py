import hashlib
import os
import struct

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import envelope


@pytest.fixture
def sealed(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(5000))
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    dek = envelope.new_data_key()
    out = tmp_path / "sealed"
    envelope.encrypt_file(dek, digest, str(plain), str(out), chunk=1024)
    return dek, digest, out, tmp_path


def chunks(data):
    """Offsets of each chunk record in a sealed blob."""
    offsets, pos = [], len(envelope.MAGIC) + 4
    while pos < len(data):
        offsets.append(pos)
        pos += 4 + envelope.NONCE + struct.unpack(">I", data[pos:pos + 4])[0]
    return offsets


def test_round_trip_over_several_chunks(sealed):
    dek, digest, out, tmp = sealed
    assert len(chunks(out.read_bytes())) == 5
    envelope.decrypt_file(dek, digest, str(out), str(tmp / "back"), digest)
    assert hashlib.sha256((tmp / "back").read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("cut", ["last_chunk", "swap_chunks", "other_blob_id"])
def test_chunk_level_tampering_is_detected(sealed, cut):
    dek, digest, out, tmp = sealed
    data = out.read_bytes()
    offsets = chunks(data)
    blob_id = digest
    if cut == "last_chunk":  # a clean cut at a chunk boundary: every remaining tag is valid
        data = data[:offsets[-1]]
    elif cut == "swap_chunks":
        a, b, c = offsets[0], offsets[1], offsets[2]
        data = data[:a] + data[b:c] + data[a:b] + data[c:]
    else:
        blob_id = "0" * 64
    out.write_bytes(data)
    with pytest.raises(envelope.IntegrityError):
        envelope.decrypt_file(dek, blob_id, str(out), str(tmp / "back"), digest)


def test_key_file_formats(tmp_path):
    raw = os.urandom(32)
    for name, content in (("raw", raw), ("hex", raw.hex().encode() + b"\n"), ("b64", __import__("base64").b64encode(raw))):
        path = tmp_path / name
        path.write_bytes(content)
        assert envelope.read_key_file(str(path)) == raw
