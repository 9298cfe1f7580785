# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes tests/vectors/encryption.json, the shared test vectors of the LLMOPSE1 format (docs/encryption.md).

It seals with AESGCM directly, following the spec, so the vectors are a third implementation that the
collection's envelope.py and the image's crypto.py must both agree with. Everything is derived from
fixed seeds: running it again gives the same bytes, and a unit test checks the stored file is exactly
what this script writes.

    python tests/vectors/generate_encryption.py          # rewrite the file
    python tests/vectors/generate_encryption.py --check  # exit 1 if the file differs
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "encryption.json")
MAGIC = b"LLMOPSE1"


def seeded(label, size):
    """`size` bytes that depend only on `label`."""
    return hashlib.shake_256(b"llmops-vectors:" + label.encode()).digest(size)


def seal(key, prefix, chunk_size, context, plaintext):
    header = MAGIC + prefix + struct.pack(">I", chunk_size)
    pieces = [plaintext[i:i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    out = [header]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        aad = header + context.encode() + struct.pack(">IB", index, 1 if last else 0)
        out.append(AESGCM(key).encrypt(prefix + struct.pack(">I", index), piece, aad))
    return header, out[1:]


def seal_legacy(key, chunk_size, context, plaintext):
    """LLMA1, the collection's format before LLMOPSE1 (read by envelope.py only)."""
    pieces = [plaintext[i:i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    out = [b"LLMA1" + struct.pack(">I", chunk_size)]
    for index, piece in enumerate(pieces):
        nonce = seeded("legacy-nonce-%d" % index, 12)
        aad = b"%s:%d:%d" % (context.encode(), index, 1 if index == len(pieces) - 1 else 0)
        sealed = AESGCM(key).encrypt(nonce, piece, aad)
        out.append(struct.pack(">I", len(sealed)) + nonce + sealed)
    return out


def build():
    key = seeded("key", 32)
    other_key = seeded("other-key", 32)
    blob_id = hashlib.sha256(b"llmops-vectors").hexdigest()  # what envelope.py uses as the context
    valid, invalid, legacy = [], [], []

    def add(name, size, chunk_size, context, note):
        plaintext = seeded("plaintext-" + name, size)
        prefix = seeded("prefix-" + name, 8)
        header, chunks = seal(key, prefix, chunk_size, context, plaintext)
        valid.append({"name": name, "note": note, "key": key.hex(), "nonce_prefix": prefix.hex(),
                      "chunk_size": chunk_size, "context": context, "plaintext": plaintext.hex(),
                      "ciphertext": (header + b"".join(chunks)).hex()})
        return header, chunks

    add("empty", 0, 32, blob_id, "empty plaintext: one chunk holding only its tag")
    add("one-short-chunk", 5, 32, "model.safetensors", "one chunk, shorter than the chunk size")
    add("one-full-chunk", 32, 32, blob_id, "exactly one full chunk: no empty chunk follows")
    add("two-full-chunks", 64, 32, "model-00001-of-00002.safetensors", "a multiple of the chunk size")
    header, chunks = add("multi-chunk", 80, 32, blob_id, "three chunks, the last one partial")
    body = b"".join(chunks)

    def bad(name, data, why, use_key=key, context=blob_id):
        invalid.append({"name": name, "why": why, "key": use_key.hex(), "context": context, "ciphertext": data.hex()})

    bad("truncated-last-chunk", header + chunks[0] + chunks[1],
        "cut at a chunk boundary: the new last chunk was sealed as not last")
    bad("truncated-mid-chunk", header + body[:-7], "cut inside the last chunk")
    bad("header-only", header, "no chunk at all, not even the empty last one")
    bad("truncated-header", header[:12], "shorter than the header")
    bad("reordered-chunks", header + chunks[1] + chunks[0] + chunks[2], "chunks 0 and 1 swapped")
    bad("appended-chunk", header + body + chunks[2], "a chunk added after the last one")
    bad("trailing-byte", header + body + b"\x00", "one byte after the last chunk")
    flipped_tag = bytearray(header + body)
    flipped_tag[-1] ^= 0x01
    bad("flipped-tag", bytes(flipped_tag), "one bit of the last tag flipped")
    flipped_ct = bytearray(header + body)
    flipped_ct[len(header) + 3] ^= 0x80
    bad("flipped-ciphertext", bytes(flipped_ct), "one bit of chunk 0's ciphertext flipped")
    flipped_prefix = bytearray(header + body)
    flipped_prefix[len(MAGIC)] ^= 0x01
    bad("flipped-nonce-prefix", bytes(flipped_prefix), "the header's nonce prefix changed")
    bad("changed-chunk-size", header[:-4] + struct.pack(">I", 16) + body, "the header's chunk size changed")
    bad("zero-chunk-size", header[:-4] + struct.pack(">I", 0) + body, "a chunk size no writer may use")
    bad("bad-magic", b"LLMOPSE2" + header[len(MAGIC):] + body, "an unknown format version")
    bad("wrong-key", header + body, "sealed under another key", use_key=other_key)
    bad("wrong-context", header + body, "moved to another blob (or renamed file)", context="0" * 64)
    foreign = seal(key, seeded("prefix-other", 8), 32, blob_id, seeded("other", 80))[1]
    bad("chunk-from-other-file", header + chunks[0] + foreign[1] + chunks[2],
        "chunk 1 taken from another file sealed under the same key")

    plaintext = seeded("plaintext-legacy", 80)
    pieces = seal_legacy(key, 32, blob_id, plaintext)
    legacy.append({"name": "legacy-multi-chunk", "key": key.hex(), "context": blob_id,
                   "plaintext": plaintext.hex(), "ciphertext": b"".join(pieces).hex()})
    legacy.append({"name": "legacy-truncated-last-chunk", "key": key.hex(), "context": blob_id,
                   "plaintext": None, "ciphertext": b"".join(pieces[:-1]).hex()})
    return {"format": "LLMOPSE1", "spec": "docs/encryption.md",
            "generator": "tests/vectors/generate_encryption.py",
            "encoding": "bytes are lowercase hex; context is the UTF-8 text bound into every chunk",
            "valid": valid, "invalid": invalid,
            "legacy_llma1": {"note": "read by the collection only (envelope.py); a null plaintext must fail",
                             "vectors": legacy}}


def render():
    return json.dumps(build(), indent=1) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        with open(PATH) as handle:
            same = handle.read() == text
        print("%s is %s" % (PATH, "up to date" if same else "stale: run this script"))
        return 0 if same else 1
    with open(PATH, "w") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
