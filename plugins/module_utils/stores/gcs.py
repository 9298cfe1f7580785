# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Cloud Storage behind the ObjectStore interface, over the JSON API (storage/v1).

Calls go through google-auth's AuthorizedSession (requests) to the documented endpoints:
objects.get (metadata, and alt=media for content), objects.insert (uploadType=multipart for small
objects, uploadType=resumable for large ones), objects.list (pageToken paging) and objects.delete.

- Every upload carries the object's MD5 (md5Hash in the metadata), so GCS refuses a body that was
  corrupted on the way; an object becomes visible only once whole (GCS finalizes it atomically).
- A resumable upload sends chunks of `chunk_size` bytes (a multiple of 256 KiB, as the API requires);
  after a dropped connection or a 5xx it asks the session how much arrived (PUT with
  `Content-Range: bytes */<size>`, answered 308 + Range) and continues from there.
- A download that breaks off continues with a Range request pinned to the generation it started
  reading (ifGenerationMatch), so it never splices two versions of an object, and the bytes are checked
  against the MD5 GCS reports (x-goog-hash) when the object has one (composite objects do not).
- 429, 408, 5xx and dropped connections are retried with capped, jittered backoff (retry.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import uuid

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote

from ansible_collections.llmops.platform.plugins.module_utils import gcp_auth
from ansible_collections.llmops.platform.plugins.module_utils.gcp_auth import GoogleAuthError, requests
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import ResumableDownloadStore, md5_of_file
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
QUANTUM = 256 * 1024  # resumable chunks must be multiples of this (all but the last)

HINTS = {
    401: "the Google credentials were rejected; check store.service_account_file / access_token, "
         "GOOGLE_APPLICATION_CREDENTIALS or the AWX 'Google Compute Engine' credential",
    403: "the identity needs roles/storage.objectAdmin on the bucket (storage.objects.create/get/list/delete)",
    404: "check store.bucket: the bucket must exist",
}


class GcsError(Exception):
    def __init__(self, status, reason, message):
        super(GcsError, self).__init__("%s %s: %s" % (status, reason, message))
        self.status, self.reason, self.message = status, reason, message


def _transient(exc):
    if gcp_auth.HAS_GOOGLE_AUTH and isinstance(exc, (requests.ConnectionError, requests.Timeout,
                                                     requests.exceptions.ChunkedEncodingError)):
        return True
    return isinstance(exc, GcsError) and (exc.status in (408, 429) or exc.status >= 500)


def _md5_b64(digest):
    return base64.b64encode(digest.digest()).decode("ascii")


class GcsStore(ResumableDownloadStore):
    def __init__(self, bucket, prefix="", access_token=None, service_account_file=None, endpoint_url=None,
                 chunk_size=16 * 1024 * 1024, multipart_limit=8 * 1024 * 1024, retry_attempts=6,
                 retry_base_delay=1.0, timeout=120):
        if not gcp_auth.HAS_GOOGLE_AUTH:
            raise ProviderError("GCS storage needs google-auth and requests", hint=gcp_auth.INSTALL_HINT)
        if chunk_size % QUANTUM:
            raise SpecError("store.chunk_size", "must be a multiple of 256 KiB for GCS resumable uploads")
        self.bucket, self.prefix = bucket, (prefix or "").strip("/")
        self.endpoint = (endpoint_url or DEFAULT_ENDPOINT).rstrip("/")
        self.chunk_size, self.multipart_limit = chunk_size, multipart_limit
        self.retry_attempts, self.retry_base_delay, self.timeout = retry_attempts, retry_base_delay, timeout
        self._access_token, self._service_account_file = access_token, service_account_file
        self._session = None

    def describe(self):
        return "gs://%s/%s" % (self.bucket, self.prefix)

    # -- plumbing ----------------------------------------------------------------------------------
    def _credentials(self):
        return gcp_auth.google_credentials(
            SCOPES, self._access_token, self._service_account_file, file_field="store",
            file_hint="a service account JSON key file",
            no_credentials=SpecError("store", "no Google credentials were found for %s" % self.describe(),
                                     hint="set store.service_account_file or GOOGLE_APPLICATION_CREDENTIALS, run on "
                                          "GCE/GKE with a service account, or attach the AWX 'Google Compute Engine' "
                                          "credential"))

    @property
    def session(self):
        if self._session is None:
            self._session = gcp_auth.authorized_session("GCS storage", self._credentials)
        return self._session

    def _name(self, key):
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def _object_url(self, key, upload=False):
        if upload:
            return "%s/upload/storage/v1/b/%s/o" % (self.endpoint, quote(self.bucket, safe=""))
        return "%s/storage/v1/b/%s/o/%s" % (self.endpoint, quote(self.bucket, safe=""), quote(self._name(key), safe=""))

    def _send(self, method, url, ok=(200,), **kwargs):
        """One HTTP exchange; a status outside `ok` raises GcsError with the API's reason."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except GoogleAuthError as exc:
            # RefreshError (token refused or not refreshable), TransportError (metadata server unreachable).
            raise ProviderError("cannot get a Google access token for %s: %s" % (self.describe(), exc),
                                code="UNAUTHENTICATED", hint=HINTS[401])
        if response.status_code not in ok:
            reason, message = "HTTP %d" % response.status_code, response.reason
            try:
                error = response.json().get("error", {})
                message = error.get("message") or message
                reason = (error.get("errors") or [{}])[0].get("reason") or error.get("status") or reason
            except ValueError:
                pass
            response.close()
            raise GcsError(response.status_code, reason, message)
        return response

    def _retry(self, func):
        return call_with_retry(func, _transient, attempts=self.retry_attempts, base=self.retry_base_delay)

    def _call(self, what, func):
        """Run func with retries; map what is left to ProviderError (NotFound keeps its code)."""
        try:
            return self._retry(func)
        except GcsError as exc:
            if exc.status == 404 and "bucket" in exc.message.lower():
                # "The specified bucket does not exist.": not a missing object, the store itself is wrong.
                raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc.message), code="BucketNotFound",
                                    hint=HINTS[404])
            if exc.status == 404:
                raise ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc.message), code=exc.reason,
                                hint=HINTS.get(exc.status))
        except requests.RequestException as exc:
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), exc), code="connection",
                                hint="check store.endpoint_url and the network path to %s" % self.endpoint)

    # -- ObjectStore -------------------------------------------------------------------------------
    def size(self, key):
        try:
            meta = self._call("stat %s" % key, lambda: self._send(
                "GET", self._object_url(key), params={"fields": "size"}).json())
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise
        return int(meta["size"])

    def put_bytes(self, key, data):
        digest = hashlib.md5(data)
        if len(data) <= self.multipart_limit:
            self._call("put %s" % key, lambda: self._multipart(key, data, digest))
        else:
            self._resumable(key, len(data), digest, lambda offset, length: data[offset:offset + length])

    def put_file(self, key, path):
        size = os.path.getsize(path)
        digest = md5_of_file(path)
        if size <= self.multipart_limit:
            with open(path, "rb") as handle:
                data = handle.read()
            self._call("put %s" % key, lambda: self._multipart(key, data, digest))
            return
        with open(path, "rb") as handle:
            def read(offset, length):
                handle.seek(offset)
                return handle.read(length)
            self._resumable(key, size, digest, read)

    def _metadata(self, key, digest):
        return {"name": self._name(key), "md5Hash": _md5_b64(digest)}

    def _multipart(self, key, data, digest):
        # objects.insert, uploadType=multipart: a multipart/related body, metadata part then media part.
        boundary = "llmops-%s" % uuid.uuid4().hex
        body = b"".join([
            ("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" % boundary).encode(),
            json.dumps(self._metadata(key, digest)).encode(),
            ("\r\n--%s\r\nContent-Type: application/octet-stream\r\n\r\n" % boundary).encode(),
            data,
            ("\r\n--%s--\r\n" % boundary).encode(),
        ])
        self._send("POST", self._object_url(key, upload=True), params={"uploadType": "multipart"}, data=body,
                   headers={"Content-Type": "multipart/related; boundary=%s" % boundary}).close()

    def _resumable(self, key, size, digest, read):
        what = "put %s" % key

        def start():
            response = self._send("POST", self._object_url(key, upload=True), params={"uploadType": "resumable"},
                                  data=json.dumps(self._metadata(key, digest)),
                                  headers={"Content-Type": "application/json; charset=UTF-8",
                                           "X-Upload-Content-Type": "application/octet-stream",
                                           "X-Upload-Content-Length": str(size)})
            response.close()
            if not response.headers.get("Location"):
                raise ProviderError("%s: GCS started a resumable upload without a session URI" % what)
            return response.headers["Location"]

        session_url = self._call(what, start)
        state = {"offset": 0}

        def committed():
            """Bytes the session holds: 308 + `Range: bytes=0-N` (none without Range), or done (200/201)."""
            response = self._send("PUT", session_url, ok=(200, 201, 308), data=b"",
                                  headers={"Content-Range": "bytes */%d" % size})
            response.close()
            if response.status_code in (200, 201):
                return size
            ranged = response.headers.get("Range")
            return int(ranged.rsplit("-", 1)[1]) + 1 if ranged else 0

        def send_chunk():
            if state.get("lost"):
                state["offset"] = committed()
                state["lost"] = False
            offset = state["offset"]
            if offset >= size:
                return True
            chunk = read(offset, self.chunk_size)
            end = offset + len(chunk) - 1
            try:
                response = self._send("PUT", session_url, ok=(200, 201, 308), data=chunk,
                                      headers={"Content-Range": "bytes %d-%d/%d" % (offset, end, size)})
            except Exception:
                state["lost"] = True  # ask the session where it stands before sending more
                raise
            response.close()
            if response.status_code in (200, 201):
                state["offset"] = size
                return True
            ranged = response.headers.get("Range")
            state["offset"] = int(ranged.rsplit("-", 1)[1]) + 1 if ranged else 0
            return state["offset"] >= size

        while not self._call(what, send_chunk):
            pass

    def _download(self, key, handle):
        what = "get %s" % key
        state = {"written": 0, "generation": None, "md5": None, "digest": hashlib.md5()}

        def attempt():
            params = {"alt": "media"}
            headers = {}
            if not state["written"]:
                state["generation"], state["md5"] = None, None  # nothing kept yet: read whatever is current
            if state["generation"]:
                # Continue the same generation only: a replaced object fails with 412 instead of splicing.
                params["ifGenerationMatch"] = state["generation"]
            if state["written"]:
                headers["Range"] = "bytes=%d-" % state["written"]
            response = self._send("GET", self._object_url(key), ok=(200, 206), params=params, headers=headers,
                                  stream=True)
            try:
                if state["written"] and response.status_code == 200:
                    # The server ignored the range: start over.
                    handle.truncate(0)
                    if hasattr(handle, "seek"):
                        handle.seek(0)
                    state["written"], state["digest"] = 0, hashlib.md5()
                state["generation"] = state["generation"] or response.headers.get("x-goog-generation")
                for part in (response.headers.get("x-goog-hash") or "").split(","):
                    name, dummy, value = part.strip().partition("=")
                    if name == "md5":
                        state["md5"] = value
                for block in response.iter_content(64 * 1024):
                    handle.write(block)
                    state["digest"].update(block)
                    state["written"] += len(block)
            finally:
                response.close()

        self._call(what, attempt)
        if state["md5"] and state["md5"] != _md5_b64(state["digest"]):
            raise ProviderError("%s from %s: the bytes read do not match the MD5 GCS stored (corrupted in transit)"
                                % (what, self.describe()), code="ChecksumMismatch", hint="run again")

    def list(self, prefix):
        keys, token = [], None
        strip = len(self.prefix) + 1 if self.prefix else 0
        url = "%s/storage/v1/b/%s/o" % (self.endpoint, quote(self.bucket, safe=""))
        while True:
            params = {"fields": "items(name),nextPageToken"}
            if self._name(prefix):
                params["prefix"] = self._name(prefix)
            if token:
                params["pageToken"] = token
            page = self._call("list %s" % prefix, lambda: self._send("GET", url, params=params).json())
            keys.extend(item["name"][strip:] for item in page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return sorted(keys)

    def delete(self, key):
        try:
            self._call("delete %s" % key, lambda: self._send("DELETE", self._object_url(key), ok=(200, 204)).close())
        except ProviderError as exc:
            if exc.code != "NotFound":
                raise
