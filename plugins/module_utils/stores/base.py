# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The object store interface, and what the cloud stores share (a key prefix, the MD5 of a file)."""

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


class PrefixedStore(ObjectStore):
    """A store whose keys live under `self.prefix` in a bucket or container (S3, GCS, Azure Blob)."""

    prefix = ""

    def _name(self, key):
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def _relative(self, names):
        """Object names -> keys relative to the prefix, sorted (what list() returns)."""
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(name[strip:] for name in names)


def md5_of_file(path):
    """hashlib md5 object of a file's content, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest
