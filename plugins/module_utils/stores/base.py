# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The object store interface, and what the HTTP stores share (resumable downloads, md5 of a file)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib


class ObjectStore(object):
    """exists / put_file / get_file / put_bytes / get_bytes / list / delete on keys."""

    def describe(self):
        raise NotImplementedError

    def size(self, key):
        """Size in bytes, or None when the object does not exist."""
        raise NotImplementedError

    def put_file(self, key, path):
        raise NotImplementedError

    def get_file(self, key, path):
        raise NotImplementedError

    def put_bytes(self, key, data):
        raise NotImplementedError

    def get_bytes(self, key):
        raise NotImplementedError

    def list(self, prefix):
        """Keys under prefix, sorted."""
        raise NotImplementedError

    def delete(self, key):
        raise NotImplementedError


class ResumableDownloadStore(ObjectStore):
    """An HTTP store whose _download(key, handle) writes an object into handle, resuming a cut transfer
    with a ranged request and, when the server ignores the range, starting over with handle.truncate(0)."""

    def _download(self, key, handle):
        raise NotImplementedError

    def get_file(self, key, path):
        with open(path, "wb") as handle:
            self._download(key, handle)

    def get_bytes(self, key):
        sink = _BytesSink()
        self._download(key, sink)
        return sink.getvalue()


class _BytesSink(object):
    """The write/truncate part of a file, in memory (for get_bytes)."""

    def __init__(self):
        self._chunks = []

    def write(self, data):
        self._chunks.append(data)

    def truncate(self, length):
        self._chunks = [b"".join(self._chunks)[:length]]

    def getvalue(self):
        return b"".join(self._chunks)


def md5_of_file(path):
    """hashlib md5 object of a file's content, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest
