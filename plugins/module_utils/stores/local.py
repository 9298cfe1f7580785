# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local directory as an object store (the lab): writes go to a temporary name and are renamed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import ObjectStore


class LocalStore(ObjectStore):
    def __init__(self, root):
        self.root = os.path.abspath(root)

    def describe(self):
        return "file://%s" % self.root

    def _path(self, key):
        path = os.path.abspath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise ProviderError("object key %r escapes the store root" % key)
        return path

    def size(self, key):
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            return None

    def _atomic_write(self, key, writer):
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                writer(handle)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, key, path):
        def write(handle):
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, 1 << 20)
        self._atomic_write(key, write)

    def put_bytes(self, key, data):
        self._atomic_write(key, lambda handle: handle.write(data))

    def get_file(self, key, path):
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError:
            raise ProviderError("object %s not found in %s" % (key, self.describe()), code="NotFound")

    def get_bytes(self, key):
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise ProviderError("object %s not found in %s" % (key, self.describe()), code="NotFound")

    def list(self, prefix):
        base = self._path(prefix) if prefix else self.root
        keys = []
        for directory, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(".part-"):
                    keys.append(os.path.relpath(os.path.join(directory, name), self.root).replace(os.sep, "/"))
        return sorted(keys)

    def delete(self, key):
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
