# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Object storage behind one small interface: a local directory (the lab) and S3.

Keys are '/'-separated relative paths. Writes are all-or-nothing from a reader's point of view:
a local write goes to a temporary name and is renamed, an S3 PUT is atomic, a GCS object is finalized
whole and an Azure block blob exists once its block list is committed. That is what lets an
interrupted upload resume safely: an object either exists whole or not at all.

Stores: local (local.LocalStore), s3 (s3.S3Store, boto3), gcs (gcs.GcsStore, google-cloud-storage) and
azure (azure_blob.AzureBlobStore, azure-storage-blob); the interface is base.ObjectStore. open_store()
picks one from a module's `store` option, by `type` or by `url`:

    file:///srv/backups  or  /srv/backups                 local
    s3://bucket/prefix                                    s3
    gs://bucket/prefix                                    gcs
    az://account/container/prefix                         azure
    https://account.blob.core.windows.net/container/prefix azure (any Azure cloud's blob host)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from urllib.parse import unquote, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urllib import unquote
    from urlparse import urlsplit

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.local import LocalStore
from ansible_collections.llmops.platform.plugins.module_utils.stores.s3 import S3Store


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
        from ansible_collections.llmops.platform.plugins.module_utils.stores.gcs import GcsStore
        return GcsStore(spec["bucket"], spec.get("prefix") or "", access_token=spec.get("access_token"),
                        service_account_file=spec.get("service_account_file"), endpoint_url=spec.get("endpoint_url"))
    if kind == "azure":
        from ansible_collections.llmops.platform.plugins.module_utils.stores.azure_blob import AzureBlobStore
        return AzureBlobStore(spec.get("account"), spec.get("container"), spec.get("prefix") or "",
                              endpoint_url=spec.get("endpoint_url"), sas_token=spec.get("sas_token"),
                              access_token=spec.get("access_token"))
    if not kind:
        raise SpecError("store", "needs type or url",
                        hint="for example {type: local, path: /srv/llmops-backups} or {url: gs://bucket/prefix}")
    raise SpecError("store.type", "unknown store type %r" % (kind,), hint="use one of %s" % ", ".join(STORE_TYPES))
