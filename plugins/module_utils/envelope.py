# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side envelope encryption: AES-256-GCM data keys, wrapped by a key file or AWS KMS.

Blobs are sealed in the one llmops encryption format, LLMOPSE1 (docs/encryption.md, the spec; the
serving image implements the same spec in llmops_serving/crypto.py and both are tested against
tests/vectors/encryption.json). Chunks keep multi-GB weights out of memory; chunk i's nonce is the
file's random prefix followed by i, and its tag authenticates the header, the blob id, i and a
last-chunk flag, so chunks cannot be reordered, swapped between blobs, cut off or extended.

    blob   := "LLMOPSE1" nonce_prefix:8 chunk_size:u32 { ciphertext+tag }*

Blobs written before LLMOPSE1 (magic "LLMA1") are still read, by the legacy reader at the end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import os
import struct

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError, ProviderError, SpecError

MAGIC = b"LLMOPSE1"
PREFIX = 8
HEADER = len(MAGIC) + PREFIX + 4
TAG = 16
CHUNK = 8 << 20
# Readers refuse larger chunks: a forged header must not make them allocate gigabytes, and one GCM
# call in cryptography is limited to 2 GiB.
MAX_CHUNK = 1 << 30
NONCE = 12
LEGACY_MAGIC = b"LLMA1"


class IntegrityError(LlmopsError):
    """Data failed authentication or its checksum: corrupt, truncated, tampered, or the wrong key."""


class WrongKeyError(IntegrityError):
    """The key given is not the one that wrapped the data key. An IntegrityError, so whatever treats
    unreadable data as bad still does; a catalogue catches it apart, because it means the caller's key is
    wrong, not that every set is corrupt."""


def _aead(key):
    if not HAS_CRYPTOGRAPHY:
        raise ProviderError("encryption needs the cryptography package", hint="pip install cryptography")
    return AESGCM(key)


def read_key_file(path, field="encryption.key_file"):
    """A 256-bit key as 32 raw bytes, 64 hex digits or base64 text."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise SpecError(field, "cannot read %s: %s" % (path, exc.strerror))
    text = raw.strip()
    candidates = [raw]
    try:
        candidates.append(binascii.unhexlify(text))
    except (binascii.Error, ValueError):
        pass
    try:
        candidates.append(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        pass
    for key in candidates:
        if len(key) == 32:
            return key
    raise SpecError(field, "%s does not hold a 256-bit key" % path,
                    hint="write 32 random bytes, or their hex/base64 form: head -c32 /dev/urandom > key")


def key_id(key):
    """A short, non-secret fingerprint of a key, to say *which* key an artifact needs."""
    return hashlib.sha256(b"llmops-key-id:" + key).hexdigest()[:16]


class FileKeyWrapper(object):
    """Wraps data keys with AES-256-GCM under a key read from a file."""

    def __init__(self, path):
        self.kek = read_key_file(path)
        self.id = "file:" + key_id(self.kek)

    def wrap(self, dek):
        nonce = os.urandom(NONCE)
        return {"kind": "file", "key_id": self.id,
                "wrapped": base64.b64encode(nonce + _aead(self.kek).encrypt(nonce, dek, b"llmops-dek")).decode()}

    def unwrap(self, record):
        if record.get("key_id") != self.id:
            raise WrongKeyError("wrong key: this artifact's data key is wrapped by %s, the key given is %s"
                                % (record.get("key_id"), self.id),
                                hint="use the key file the artifact was pushed with; nothing was changed")
        blob = base64.b64decode(record["wrapped"])
        try:
            return _aead(self.kek).decrypt(blob[:NONCE], blob[NONCE:], b"llmops-dek")
        except InvalidTag:
            raise IntegrityError("the wrapped data key failed authentication (tampered key record)")


class KmsKeyWrapper(object):
    """Wraps data keys with AWS KMS Encrypt/Decrypt; the key never leaves KMS."""

    def __init__(self, client, key_arn):
        self.client, self.key_arn = client, key_arn
        self.id = "kms:" + key_arn

    def wrap(self, dek):
        blob = self.client.encrypt(KeyId=self.key_arn, Plaintext=dek,
                                   EncryptionContext={"purpose": "llmops-dek"})["CiphertextBlob"]
        return {"kind": "kms", "key_id": self.id, "wrapped": base64.b64encode(blob).decode()}

    def unwrap(self, record):
        if record.get("kind") != "kms":
            raise WrongKeyError("wrong key: this artifact's data key is wrapped by %s, not KMS" % record.get("key_id"))
        try:
            return self.client.decrypt(CiphertextBlob=base64.b64decode(record["wrapped"]),
                                       EncryptionContext={"purpose": "llmops-dek"})["Plaintext"]
        # botocore's ClientError (and friends), reported with the code KMS gave.
        except Exception as exc:  # pylint: disable=broad-except
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise IntegrityError("KMS refused to unwrap the data key (%s)" % code,
                                 hint="check the KMS key policy allows kms:Decrypt for these credentials")


def new_data_key():
    return os.urandom(32)


def mac(dek, payload):
    """HMAC-SHA256 of bytes under a key derived from the data key (never the data key itself)."""
    return hmac.new(hashlib.sha256(b"llmops-manifest-mac:" + dek).digest(), payload, hashlib.sha256).hexdigest()


def _nonce(prefix, index):
    return prefix + struct.pack(">I", index)


def _aad(header, context, index, last):
    """The header and the context (the blob id) are fixed for one blob, index and flag are fixed-size:
    so the associated data of two different chunk positions can never be equal."""
    return header + context + struct.pack(">IB", index, 1 if last else 0)


def encrypt_file(dek, blob_id, source, target, chunk=CHUNK, nonce_prefix=None):
    """Encrypt file `source` into file `target` (LLMOPSE1).

    `nonce_prefix` exists for the test vectors only: a repeated prefix under one key reuses nonces."""
    if not 0 < chunk <= MAX_CHUNK:
        raise ValueError("chunk size must be between 1 and %d bytes" % MAX_CHUNK)
    prefix = nonce_prefix or os.urandom(PREFIX)
    if len(prefix) != PREFIX:
        raise ValueError("the nonce prefix must be %d bytes" % PREFIX)
    aead = _aead(dek)
    header = MAGIC + prefix + struct.pack(">I", chunk)
    context = blob_id.encode()
    with open(source, "rb") as src, open(target, "wb") as out:
        out.write(header)
        index = 0
        data = src.read(chunk)
        while True:
            following = src.read(chunk)
            last = not following
            out.write(aead.encrypt(_nonce(prefix, index), data, _aad(header, context, index, last)))
            if last:
                return
            data, index = following, index + 1


def decrypt_file(dek, blob_id, source, target, expected_sha256):
    """Decrypt `source` into `target`, checking every chunk's tag and the plaintext SHA-256.

    Raises IntegrityError on any mismatch; `target` is then incomplete and must be discarded.
    """
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as out:
        header = src.read(HEADER)
        if header.startswith(LEGACY_MAGIC):
            src.seek(0)
            _legacy_decrypt(_aead(dek), blob_id, src, out, digest)
        else:
            _decrypt(_aead(dek), blob_id, header, src, out, digest)
    if digest.hexdigest() != expected_sha256:
        raise IntegrityError("blob %s decrypted to content with the wrong SHA-256" % blob_id[:12])


def _decrypt(aead, blob_id, header, src, out, digest):
    if len(header) != HEADER or not header.startswith(MAGIC):
        raise IntegrityError("blob %s is not an llmops encrypted blob (bad header)" % blob_id[:12])
    prefix = header[len(MAGIC):len(MAGIC) + PREFIX]
    chunk = struct.unpack(">I", header[-4:])[0]
    if not 0 < chunk <= MAX_CHUNK:
        raise IntegrityError("blob %s has an impossible chunk size %d (corrupt header)" % (blob_id[:12], chunk))
    context, step, index = blob_id.encode(), chunk + TAG, 0
    sealed = src.read(step)
    while True:
        # Only a full chunk can have a successor; the last chunk is the one nothing follows.
        following = src.read(step) if len(sealed) == step else b""
        last = not following
        if index > 0xFFFFFFFF:
            raise IntegrityError("blob %s has more chunks than the format allows" % blob_id[:12])
        try:
            plain = aead.decrypt(_nonce(prefix, index), sealed, _aad(header, context, index, last))
        except InvalidTag:
            raise IntegrityError("blob %s chunk %d failed authentication (corrupt, truncated, reordered, "
                                 "or the wrong key)" % (blob_id[:12], index))
        digest.update(plain)
        out.write(plain)
        if last:
            return
        sealed, index = following, index + 1


# -- legacy ----------------------------------------------------------------------------------------
# LLMA1, written by this collection before LLMOPSE1: MAGIC chunk_size:u32 { len:u32 nonce:12 sealed }*
# with random nonces and AAD "<blob id>:<index>:<last 0|1>". Model artifacts and backups already in
# users' stores are in it, and pushes skip blobs that exist, so it is read for as long as such sets
# may be restored. Nothing writes it any more.
def _legacy_aad(blob_id, index, last):
    return b"%s:%d:%d" % (blob_id.encode(), index, 1 if last else 0)


def _legacy_decrypt(aead, blob_id, src, out, digest):
    header = src.read(len(LEGACY_MAGIC) + 4)
    if len(header) != len(LEGACY_MAGIC) + 4:
        raise IntegrityError("blob %s is truncated (bad header)" % blob_id[:12])
    index, seen_last = 0, False
    while True:
        prefix = src.read(4)
        if not prefix:
            break
        if seen_last or len(prefix) != 4:
            raise IntegrityError("blob %s has trailing or truncated data" % blob_id[:12])
        size = struct.unpack(">I", prefix)[0]
        body = src.read(NONCE + size)
        if len(body) != NONCE + size:
            raise IntegrityError("blob %s is truncated" % blob_id[:12])
        plain = None
        for last in (False, True):
            try:
                plain = aead.decrypt(body[:NONCE], body[NONCE:], _legacy_aad(blob_id, index, last))
                seen_last = last
                break
            except InvalidTag:
                continue
        if plain is None:
            raise IntegrityError("blob %s chunk %d failed authentication (corrupt, or the wrong key)" % (blob_id[:12], index))
        digest.update(plain)
        out.write(plain)
        index += 1
    if not seen_last:
        raise IntegrityError("blob %s is truncated (its last chunk is missing)" % blob_id[:12])
