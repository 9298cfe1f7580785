# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Blob Storage behind the ObjectStore interface, over the Blob service REST API (x-ms-version 2023-11-03).

Operations used: Put Blob (small objects), Put Block + Get Block List + Put Block List (large objects),
Get Blob, Get Blob Properties (HEAD), List Blobs (marker paging) and Delete Blob, with requests.

- Auth: a SAS token (appended to every request), or a Microsoft Entra token for the scope
  https://storage.azure.com/.default from azure-identity: a service principal from AZURE_CLIENT_ID /
  AZURE_SECRET (or AZURE_CLIENT_SECRET) / AZURE_TENANT (or AZURE_TENANT_ID), as the AWX 'Microsoft Azure
  Resource Manager' credential injects them, otherwise DefaultAzureCredential (managed identity, az login),
  or a token obtained elsewhere (access_token). Tokens and SAS only travel over https (loopback excepted).
- Every body carries Content-MD5, which the service checks on arrival; the blob's MD5 is stored
  (x-ms-blob-content-md5) and a full download is checked against it.
- A large object is sent in blocks whose ids name their index and MD5; an interrupted upload asks the
  service which blocks it already holds (uncommitted) and sends only the others, then commits the list.
  Nothing is visible under the key until Put Block List commits it.
- A download that breaks off continues with x-ms-range and If-Match on the ETag it started with, so a
  replaced blob fails (412) instead of being spliced.
- 408, 429, 5xx (ServerBusy, OperationTimedOut, ...) and dropped connections are retried with capped,
  jittered backoff (retry.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import email.utils
import hashlib
import os
import time
import uuid
import xml.etree.ElementTree as ET

try:
    from urllib.parse import quote, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote
    from urlparse import urlsplit

try:
    import requests
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover
    HAS_REQUESTS = False

from ansible_collections.llmops.platform.plugins.module_utils import azure_auth
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import ResumableDownloadStore, md5_of_file
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry

API_VERSION = "2023-11-03"
SCOPE = "https://storage.azure.com/.default"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BLOCKS = 50000

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


class BlobError(Exception):
    def __init__(self, status, code, message):
        super(BlobError, self).__init__("%s %s: %s" % (status, code, message))
        self.status, self.code, self.message = status, code, message


def _transient(exc):
    if HAS_REQUESTS and isinstance(exc, (requests.ConnectionError, requests.Timeout,
                                         requests.exceptions.ChunkedEncodingError)):
        return True
    return isinstance(exc, BlobError) and (exc.status in (408, 429) or exc.status >= 500)


def _b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def default_credential():
    """Service principal from the AWX-style environment, else DefaultAzureCredential (azure_auth)."""
    if not azure_auth.HAS_AZURE_IDENTITY:
        raise ProviderError("Azure Blob storage with Entra ID needs azure-identity",
                            hint="pip install azure-identity (see requirements/controller.txt), or use store.sas_token")
    return azure_auth.azure_credential(azure_auth.service_principal(), lambda missing: SpecError(
        "store", "a service principal needs AZURE_CLIENT_ID, AZURE_SECRET and AZURE_TENANT",
        hint="set all three (the AWX 'Microsoft Azure Resource Manager' credential does), or none "
             "of them to use a managed identity or az login"))


class AzureBlobStore(ResumableDownloadStore):
    def __init__(self, account, container, prefix="", endpoint_url=None, sas_token=None, access_token=None,
                 credential=None, verify=True, block_size=16 * 1024 * 1024, single_put_limit=64 * 1024 * 1024,
                 retry_attempts=6, retry_base_delay=1.0, timeout=120):
        if not HAS_REQUESTS:
            raise ProviderError("Azure Blob storage needs requests", hint="pip install requests")
        if not account and not endpoint_url:
            raise SpecError("store.account", "is required for an azure store (the storage account name)")
        if not container:
            raise SpecError("store.container", "is required for an azure store")
        self.account, self.container, self.prefix = account, container, (prefix or "").strip("/")
        self.endpoint = (endpoint_url or "https://%s.blob.core.windows.net" % account).rstrip("/")
        parts = urlsplit(self.endpoint)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise SpecError("store.endpoint_url", "must be https (tokens and SAS never travel in clear text), got %s"
                            % self.endpoint)
        self.sas = (sas_token or "").lstrip("?")
        self._credential = credential if credential is not None else (azure_auth.StaticTokenCredential(access_token) if access_token else None)
        self._token = None
        self.verify = verify
        self.block_size, self.single_put_limit = block_size, single_put_limit
        self.retry_attempts, self.retry_base_delay, self.timeout = retry_attempts, retry_base_delay, timeout
        self.http = requests.Session()

    def describe(self):
        return "az://%s/%s/%s" % (self.account or urlsplit(self.endpoint).hostname, self.container, self.prefix)

    # -- plumbing ----------------------------------------------------------------------------------
    def _name(self, key):
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def _url(self, key=None):
        url = "%s/%s" % (self.endpoint, quote(self.container, safe=""))
        if key is not None:
            url += "/" + quote(self._name(key), safe="/")
        return url + ("?" + self.sas if self.sas else "")

    def _auth_header(self):
        if self.sas:
            return {}
        if self._credential is None:
            self._credential = default_credential()
        if self._token is None or self._token.expires_on - 300 < time.time():
            try:
                self._token = self._credential.get_token(SCOPE)
            except Exception as exc:  # pylint: disable=broad-except
                # azure-identity raises ClientAuthenticationError / CredentialUnavailableError.
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ProviderError("cannot get an Azure token for %s: %s" % (self.describe(), reason),
                                    code="ClientAuthenticationError", hint=HINTS["NoAuthenticationInformation"])
        return {"Authorization": "Bearer %s" % self._token.token}

    def _send(self, method, url, ok=(200,), headers=None, **kwargs):
        all_headers = {"x-ms-version": API_VERSION, "x-ms-date": email.utils.formatdate(usegmt=True),
                       "x-ms-client-request-id": str(uuid.uuid4())}
        all_headers.update(self._auth_header())
        all_headers.update(headers or {})
        kwargs.setdefault("timeout", self.timeout)
        response = self.http.request(method, url, headers=all_headers, verify=self.verify, **kwargs)
        if response.status_code not in ok:
            code = response.headers.get("x-ms-error-code") or "HTTP %d" % response.status_code
            message = response.reason
            if method != "HEAD" and response.content:
                try:
                    root = ET.fromstring(response.content)
                    code = root.findtext("Code") or code
                    message = (root.findtext("Message") or message).splitlines()[0]
                except ET.ParseError:
                    pass
            response.close()
            raise BlobError(response.status_code, code, message)
        return response

    def _call(self, what, func):
        try:
            return call_with_retry(func, _transient, attempts=self.retry_attempts, base=self.retry_base_delay)
        except BlobError as exc:
            if exc.code == "BlobNotFound" or (exc.status == 404 and exc.code in ("HTTP 404", "ResourceNotFound")):
                raise ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc.message), code=exc.code,
                                hint=HINTS.get(exc.code))
        except requests.RequestException as exc:
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc), code="connection",
                                hint="check store.account / store.endpoint_url and the network path to %s" % self.endpoint)

    # -- ObjectStore -------------------------------------------------------------------------------
    def size(self, key):
        try:
            response = self._call("stat %s" % key, lambda: self._send("HEAD", self._url(key)))
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise
        return int(response.headers["Content-Length"])

    def put_bytes(self, key, data):
        if len(data) <= self.single_put_limit:
            self._put_blob(key, data)
        else:
            self._put_blocks(key, len(data), hashlib.md5(data), lambda offset, length: data[offset:offset + length])

    def put_file(self, key, path):
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if size <= self.single_put_limit:
                self._put_blob(key, handle.read())
                return
            digest = md5_of_file(path)

            def read(offset, length):
                handle.seek(offset)
                return handle.read(length)
            self._put_blocks(key, size, digest, read)

    def _put_blob(self, key, data):
        md5 = _b64md5(data)
        self._call("put %s" % key, lambda: self._send("PUT", self._url(key), ok=(201,), data=data, headers={
            "x-ms-blob-type": "BlockBlob", "Content-MD5": md5, "x-ms-blob-content-md5": md5,
            "x-ms-blob-content-type": "application/octet-stream", "Content-Type": "application/octet-stream"}).close())

    def _uncommitted(self, key):
        """Ids of the blocks the service holds for a blob that has not been committed yet."""
        def get():
            try:
                response = self._send("GET", self._url(key), params={"comp": "blocklist", "blocklisttype": "uncommitted"})
            except BlobError as exc:
                if exc.status == 404 and exc.code == "BlobNotFound":
                    return set()
                raise
            root = ET.fromstring(response.content)
            return set(name.text for name in root.iter("Name"))
        return self._call("list uploaded blocks of %s" % key, get)

    def _put_blocks(self, key, size, digest, read):
        count = -(-size // self.block_size)
        if count > MAX_BLOCKS:
            raise ProviderError("put %s: %d bytes need more than %d blocks of %d bytes" % (key, size, MAX_BLOCKS,
                                                                                           self.block_size))
        have = self._uncommitted(key)
        ids = []
        for index in range(count):
            block = read(index * self.block_size, self.block_size)
            md5 = hashlib.md5(block)
            # Same length for every id (the service requires it); index + MD5, so a rerun recognises its blocks.
            block_id = base64.b64encode(("%06d-%s" % (index, md5.hexdigest())).encode()).decode("ascii")
            ids.append(block_id)
            if block_id in have:
                continue
            self._call("put block %d of %s" % (index, key), lambda: self._send(
                "PUT", self._url(key), ok=(201,), params={"comp": "block", "blockid": block_id}, data=block,
                headers={"Content-MD5": base64.b64encode(md5.digest()).decode("ascii")}).close())
        body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>%s</BlockList>"
                % "".join("<Latest>%s</Latest>" % block_id for block_id in ids)).encode("utf-8")
        self._call("commit %s" % key, lambda: self._send("PUT", self._url(key), ok=(201,), params={"comp": "blocklist"},
                                                         data=body, headers={
            "Content-Type": "application/xml", "Content-MD5": _b64md5(body),
            "x-ms-blob-content-md5": base64.b64encode(digest.digest()).decode("ascii"),
            "x-ms-blob-content-type": "application/octet-stream"}).close())

    def _download(self, key, handle):
        what = "get %s" % key
        state = {"written": 0, "etag": None, "md5": None, "digest": hashlib.md5()}

        def attempt():
            headers = {}
            if not state["written"]:
                state["etag"], state["md5"] = None, None  # nothing kept yet: read whatever is current
            if state["written"]:
                headers["x-ms-range"] = "bytes=%d-" % state["written"]
                headers["If-Match"] = state["etag"]
            response = self._send("GET", self._url(key), ok=(200, 206), headers=headers, stream=True)
            try:
                if state["written"] and response.status_code == 200:
                    handle.truncate(0)
                    if hasattr(handle, "seek"):
                        handle.seek(0)
                    state["written"], state["digest"] = 0, hashlib.md5()
                if not state["etag"]:
                    state["etag"] = response.headers.get("ETag")
                    # For a whole-blob read the service returns the stored MD5 (x-ms-blob-content-md5).
                    state["md5"] = response.headers.get("Content-MD5")
                for block in response.iter_content(64 * 1024):
                    handle.write(block)
                    state["digest"].update(block)
                    state["written"] += len(block)
            finally:
                response.close()

        self._call(what, attempt)
        if state["md5"] and state["md5"] != base64.b64encode(state["digest"].digest()).decode("ascii"):
            raise ProviderError("%s from %s: the bytes read do not match the blob's stored MD5 (corrupted)"
                                % (what, self.describe()), code="ChecksumMismatch", hint="run again")

    def list(self, prefix):
        keys, marker = [], None
        strip = len(self.prefix) + 1 if self.prefix else 0
        while True:
            params = {"restype": "container", "comp": "list"}
            if self._name(prefix):
                params["prefix"] = self._name(prefix)
            if marker:
                params["marker"] = marker

            def page():
                return ET.fromstring(self._send("GET", self._url(), params=params).content)
            root = self._call("list %s" % prefix, page)
            keys.extend(name.text[strip:] for name in root.findall("Blobs/Blob/Name"))
            marker = root.findtext("NextMarker")
            if not marker:
                return sorted(keys)

    def delete(self, key):
        try:
            self._call("delete %s" % key, lambda: self._send("DELETE", self._url(key), ok=(202,),
                                                             headers={"x-ms-delete-snapshots": "include"}).close())
        except ProviderError as exc:
            if exc.code != "NotFound":
                raise
