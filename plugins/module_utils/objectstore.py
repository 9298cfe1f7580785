# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Object storage behind one small interface: a local directory (the lab) and S3.

Keys are '/'-separated relative paths. Writes are all-or-nothing from a reader's point of view:
a local write goes to a temporary name and is renamed, an S3 PUT is atomic, a GCS object is finalized
whole and an Azure block blob exists once its block list is committed. That is what lets an
interrupted upload resume safely: an object either exists whole or not at all.

Stores: local (LocalStore), s3 (S3Store, below), gcs (gcs_store.GcsStore, JSON API) and azure
(azure_blob_store.AzureBlobStore, Blob REST API). open_store() picks one from a module's `store`
option, by `type` or by `url`:

    file:///srv/backups  or  /srv/backups                 local
    s3://bucket/prefix                                    s3
    gs://bucket/prefix                                    gcs
    az://account/container/prefix                         azure
    https://account.blob.core.windows.net/container/prefix azure (any Azure cloud's blob host)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import tempfile

try:
    from urllib.parse import unquote, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urllib import unquote
    from urlparse import urlsplit

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
except ImportError:  # pragma: no cover
    HAS_BOTO3 = False

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError


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


class S3Store(ObjectStore):
    def __init__(self, bucket, prefix="", region=None, endpoint_url=None, profile=None,
                 access_key=None, secret_key=None, session_token=None):
        if not HAS_BOTO3:
            raise ProviderError("S3 storage needs boto3", hint="pip install boto3 (see requirements/controller.txt)")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        session = boto3.session.Session(profile_name=profile, aws_access_key_id=access_key,
                                        aws_secret_access_key=secret_key, aws_session_token=session_token,
                                        region_name=region)
        self.client = session.client("s3", endpoint_url=endpoint_url,
                                     config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 8}))

    def describe(self):
        return "s3://%s/%s" % (self.bucket, self.prefix)

    def _key(self, key):
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def _call(self, what, func, **kwargs):
        try:
            return func(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.NoCredentialsError:
            raise SpecError("store", "no AWS credentials were found for %s" % self.describe(),
                            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or attach an AWX AWS credential")
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), error.get("Message") or exc), code=code,
                                hint="the credentials need s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject"
                                if code in ("AccessDenied", "403") else None)

    def size(self, key):
        try:
            return self._call("head %s" % key, self.client.head_object, Key=self._key(key))["ContentLength"]
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise

    def put_file(self, key, path):
        with open(path, "rb") as handle:
            self._call("put %s" % key, self.client.put_object, Key=self._key(key), Body=handle)

    def put_bytes(self, key, data):
        self._call("put %s" % key, self.client.put_object, Key=self._key(key), Body=data)

    def get_file(self, key, path):
        body = self._call("get %s" % key, self.client.get_object, Key=self._key(key))["Body"]
        with open(path, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)

    def get_bytes(self, key):
        return self._call("get %s" % key, self.client.get_object, Key=self._key(key))["Body"].read()

    def list(self, prefix):
        keys, token = [], None
        full = self._key(prefix)
        while True:
            kwargs = {"Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list %s" % prefix, self.client.list_objects_v2, **kwargs)
            strip = len(self.prefix) + 1 if self.prefix else 0
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(keys)

    def delete(self, key):
        self._call("delete %s" % key, self.client.delete_object, Key=self._key(key))


STORE_TYPES = ("local", "s3", "gcs", "azure")
# <account>.blob.core.windows.net, and the sovereign clouds' blob.core.* hosts.
AZURE_HOST_RE = re.compile(r"^([a-z0-9]{3,24})\.blob\.core\.[a-z0-9.-]+$")
# What a URL fills in; a field the user also set must agree with it.
URL_FIELDS = ("type", "path", "bucket", "prefix", "account", "container", "endpoint_url")


def parse_store_url(url):
    """A store URL -> the store fields it names (type, bucket/account/container/path, prefix, endpoint_url)."""
    text = (url or "").strip()
    if text.startswith("/"):
        return {"type": "local", "path": text}
    parts = urlsplit(text)
    path = unquote(parts.path).strip("/")
    if parts.scheme == "file" and parts.path:
        return {"type": "local", "path": unquote(parts.path)}
    if parts.scheme in ("s3", "gs") and parts.netloc:
        return {"type": "s3" if parts.scheme == "s3" else "gcs", "bucket": parts.netloc, "prefix": path}
    if parts.scheme == "az" and parts.netloc and path:
        container, dummy, prefix = path.partition("/")
        return {"type": "azure", "account": parts.netloc, "container": container, "prefix": prefix}
    if parts.scheme == "https" and AZURE_HOST_RE.match(parts.hostname or "") and path:
        container, dummy, prefix = path.partition("/")
        return {"type": "azure", "account": AZURE_HOST_RE.match(parts.hostname).group(1), "container": container,
                "prefix": prefix, "endpoint_url": "https://%s" % parts.netloc}
    raise SpecError("store.url", "%r is not a store URL" % (url,),
                    hint="use /path or file:///path, s3://bucket/prefix, gs://bucket/prefix, "
                         "az://account/container/prefix or https://account.blob.core.windows.net/container/prefix")


def resolve_store_spec(spec):
    """The `store` option with its url (if any) expanded into type and fields; conflicts are errors."""
    spec = dict(spec or {})
    if spec.get("url"):
        for field, value in parse_store_url(spec["url"]).items():
            given = spec.get(field)
            # prefix defaults to "" in the argument spec: only a non-empty one can conflict.
            if given not in (None, "") and given != value:
                raise SpecError("store.%s" % field, "is %r but store.url says %r" % (given, value),
                                hint="set the store either by url or by its fields, not both differently")
            spec[field] = value
    return spec


def open_store(spec):
    """Build a store from a module's `store` option: {type: local|s3|gcs|azure, ...} or {url: ...}."""
    if isinstance(spec, str):
        spec = {"url": spec}
    spec = resolve_store_spec(spec)
    kind = spec.get("type")
    if kind == "local":
        if not spec.get("path"):
            raise SpecError("store.path", "is required for a local store", hint="a directory, e.g. /srv/llmops-backups")
        return LocalStore(spec["path"])
    if kind == "s3":
        if not spec.get("bucket"):
            raise SpecError("store.bucket", "is required for an s3 store")
        return S3Store(spec["bucket"], spec.get("prefix") or "", region=spec.get("region"),
                       endpoint_url=spec.get("endpoint_url"), profile=spec.get("profile"),
                       access_key=spec.get("access_key"), secret_key=spec.get("secret_key"),
                       session_token=spec.get("session_token"))
    if kind == "gcs":
        if not spec.get("bucket"):
            raise SpecError("store.bucket", "is required for a gcs store")
        from ansible_collections.llmops.platform.plugins.module_utils.gcs_store import GcsStore
        return GcsStore(spec["bucket"], spec.get("prefix") or "", access_token=spec.get("access_token"),
                        service_account_file=spec.get("service_account_file"), endpoint_url=spec.get("endpoint_url"))
    if kind == "azure":
        from ansible_collections.llmops.platform.plugins.module_utils.azure_blob_store import AzureBlobStore
        return AzureBlobStore(spec.get("account"), spec.get("container"), spec.get("prefix") or "",
                              endpoint_url=spec.get("endpoint_url"), sas_token=spec.get("sas_token"),
                              access_token=spec.get("access_token"))
    if not kind:
        raise SpecError("store", "needs type or url",
                        hint="for example {type: local, path: /srv/llmops-backups} or {url: gs://bucket/prefix}")
    raise SpecError("store.type", "unknown store type %r" % (kind,), hint="use one of %s" % ", ".join(STORE_TYPES))
