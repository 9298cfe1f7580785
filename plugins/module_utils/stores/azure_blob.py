# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Blob Storage behind the ObjectStore interface, on the azure-storage-blob SDK.

- Auth: a SAS token, or a Microsoft Entra token for https://storage.azure.com/.default from azure_auth: a
  service principal from AZURE_CLIENT_ID / AZURE_SECRET (or AZURE_CLIENT_SECRET) / AZURE_TENANT (or
  AZURE_TENANT_ID), as the AWX 'Microsoft Azure Resource Manager' credential injects them, otherwise
  DefaultAzureCredential (managed identity, az login), or a token obtained elsewhere (access_token).
  Credentials only travel over https (loopback excepted; the SDK itself refuses a bearer token over http).
- The SDK puts a small object whole and a large one as blocks (Put Block, then Put Block List); nothing is
  visible under the key until the list is committed. Every request body carries Content-MD5, which the
  service checks on arrival, and the whole object's MD5 is stored with it (x-ms-blob-content-md5).
- Downloads read in ranges; after the first, each range carries If-Match on the ETag the download started
  with, so a blob replaced meanwhile fails (412 ConditionNotMet) instead of being spliced. The bytes read
  are checked against the stored MD5 when the blob has one.
- 408, 429, 5xx (ServerBusy, OperationTimedOut, ...) and dropped connections are retried by the SDK with
  exponential, jittered backoff.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urlsplit

try:
    from azure.core.exceptions import (AzureError, ClientAuthenticationError, HttpResponseError,
                                       ResourceNotFoundError)
    from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry
    HAS_AZURE_BLOB = True
except ImportError:  # pragma: no cover - exercised only where azure-storage-blob is missing
    HAS_AZURE_BLOB = False

from ansible_collections.llmops.platform.plugins.module_utils import azure_auth
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import PrefixedStore, md5_of_file

SCOPE = "https://storage.azure.com/.default"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
OCTET_STREAM = "application/octet-stream"

HINTS = {
    "AuthorizationPermissionMismatch": "give the identity the 'Storage Blob Data Contributor' role on the container "
                                       "(or the storage account)",
    "AuthorizationFailure": "the identity, SAS or network rules do not allow this; check the storage account's "
                            "firewall and the SAS permissions (racwdl)",
    "AuthenticationFailed": "the token or SAS was refused; check store.sas_token (expiry, signature) or the identity",
    "NoAuthenticationInformation": "no credentials were sent; set store.sas_token, or AZURE_CLIENT_ID/AZURE_SECRET/"
                                   "AZURE_TENANT, or run where a managed identity or az login is available",
    "ContainerNotFound": "check store.container: the container must exist in the storage account",
    "InvalidAuthenticationInfo": "the token was refused; it must be issued for https://storage.azure.com/",
}


def default_credential():
    """Service principal from the AWX-style environment, else DefaultAzureCredential (azure_auth)."""
    if not azure_auth.HAS_AZURE_IDENTITY:
        raise ProviderError("Azure Blob storage with Entra ID needs azure-identity",
                            hint="pip install azure-identity (see requirements/controller.txt), or use store.sas_token")
    return azure_auth.azure_credential(azure_auth.service_principal(), lambda missing: SpecError(
        "store", "a service principal needs AZURE_CLIENT_ID, AZURE_SECRET and AZURE_TENANT",
        hint="set all three (the AWX 'Microsoft Azure Resource Manager' credential does), or none "
             "of them to use a managed identity or az login"))


class AzureBlobStore(PrefixedStore):
    def __init__(self, account, container, prefix="", endpoint_url=None, sas_token=None, access_token=None,
                 credential=None, verify=True, block_size=16 * 1024 * 1024, single_put_limit=64 * 1024 * 1024,
                 get_chunk_size=4 * 1024 * 1024, retry_attempts=6, retry_base_delay=1.0, timeout=120):
        if not HAS_AZURE_BLOB:
            raise ProviderError("Azure Blob storage needs azure-storage-blob",
                                hint="pip install azure-storage-blob (see requirements/controller.txt)")
        if not account and not endpoint_url:
            raise SpecError("store.account", "is required for an azure store (the storage account name)")
        if not container:
            raise SpecError("store.container", "is required for an azure store")
        self.account, self.container, self.prefix = account, container, (prefix or "").strip("/")
        # Azurite and sovereign clouds: the endpoint may carry the account as a path (http://127.0.0.1:10000/acct).
        self.endpoint = (endpoint_url or "https://%s.blob.core.windows.net" % account).rstrip("/")
        parts = urlsplit(self.endpoint)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise SpecError("store.endpoint_url", "must be https (tokens and SAS never travel in clear text), got %s"
                            % self.endpoint)
        self._sas = (sas_token or "").lstrip("?")
        self._credential = credential if credential is not None else (
            azure_auth.StaticTokenCredential(access_token) if access_token else None)
        self._options = dict(
            max_single_put_size=single_put_limit, max_block_size=block_size,
            max_single_get_size=get_chunk_size, max_chunk_get_size=get_chunk_size,
            connection_verify=verify, connection_timeout=timeout, read_timeout=timeout,
            retry_policy=ExponentialRetry(initial_backoff=retry_base_delay, increment_base=2 if retry_base_delay else 0,
                                          random_jitter_range=retry_base_delay, retry_total=retry_attempts - 1))
        self._client = None

    def describe(self):
        return "az://%s/%s/%s" % (self.account or urlsplit(self.endpoint).hostname, self.container, self.prefix)

    # -- plumbing ----------------------------------------------------------------------------------
    @property
    def client(self):
        """The ContainerClient, built on first use (the credential chain runs only when something is stored)."""
        if self._client is None:
            credential = self._sas or self._credential or default_credential()
            self._client = BlobServiceClient(self.endpoint, credential=credential,
                                             **self._options).get_container_client(self.container)
        return self._client

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ResourceNotFoundError as exc:
            if getattr(exc.error_code, "value", exc.error_code) == "ContainerNotFound":
                raise ProviderError("%s on %s failed: the container does not exist" % (what, self.describe()),
                                    code="ContainerNotFound", hint=HINTS["ContainerNotFound"])
            raise ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
        except ClientAuthenticationError as exc:
            if exc.response is None:
                # azure-identity could not get a token (ClientAuthenticationError, CredentialUnavailableError).
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ProviderError("cannot get an Azure token for %s: %s" % (self.describe(), reason),
                                    code="ClientAuthenticationError", hint=HINTS["NoAuthenticationInformation"])
            raise self._refused(what, exc)
        except HttpResponseError as exc:
            raise self._refused(what, exc)
        except AzureError as exc:
            # ServiceRequestError / ServiceResponseError: no answer after the retries.
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc), code="connection",
                                hint="check store.account / store.endpoint_url and the network path to %s"
                                     % self.endpoint)

    def _refused(self, what, exc):
        code = getattr(exc.error_code, "value", exc.error_code) or "HTTP %s" % exc.status_code  # StorageErrorCode
        message = (exc.reason or str(exc)).splitlines()[0]
        return ProviderError("%s on %s failed: %s" % (what, self.describe(), message), code=code, hint=HINTS.get(code))

    # -- ObjectStore -------------------------------------------------------------------------------
    def size(self, key):
        try:
            return self._call("stat %s" % key, self.client.get_blob_client(self._name(key)).get_blob_properties).size
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise

    def _upload(self, key, data, digest):
        # validate_content: Content-MD5 on every request; content_md5: the whole object's, stored for readers.
        self._call("put %s" % key, self.client.upload_blob, self._name(key), data, overwrite=True,
                   validate_content=True, max_concurrency=1,
                   content_settings=ContentSettings(content_type=OCTET_STREAM, content_md5=digest.digest()))

    def put_bytes(self, key, data):
        self._upload(key, data, hashlib.md5(data))

    def put_file(self, key, path):
        digest = md5_of_file(path)
        with open(path, "rb") as handle:
            self._upload(key, handle, digest)

    def _download(self, key, write):
        what = "get %s" % key
        stream = self._call(what, self.client.download_blob, self._name(key), max_concurrency=1)
        sink = _HashingWriter(write)
        self._call(what, stream.readinto, sink)
        stored = stream.properties.content_settings.content_md5
        if stored and bytes(stored) != sink.digest.digest():
            raise ProviderError("%s from %s: the bytes read do not match the blob's stored MD5 (corrupted)"
                                % (what, self.describe()), code="ChecksumMismatch", hint="run again")

    def get_file(self, key, path):
        with open(path, "wb") as handle:
            self._download(key, handle.write)

    def get_bytes(self, key):
        parts = []
        self._download(key, parts.append)
        return b"".join(parts)

    def list(self, prefix):
        return self._relative(self._call("list %s" % prefix, lambda: list(
            self.client.list_blob_names(name_starts_with=self._name(prefix) or None))))

    def delete(self, key):
        try:
            self._call("delete %s" % key, self.client.delete_blob, self._name(key), delete_snapshots="include")
        except ProviderError as exc:
            if exc.code != "NotFound":
                raise


class _HashingWriter(object):
    """The file-like object the SDK writes a download into: passes the bytes on, hashing them on the way."""

    def __init__(self, write):
        self._write, self.digest = write, hashlib.md5()

    def write(self, data):
        self.digest.update(data)
        self._write(data)
        return len(data)
