# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Cloud Storage behind the ObjectStore interface, on the google-cloud-storage SDK.

What the SDK does for us, and we rely on:
- Uploads up to 8 MiB go in one multipart request carrying the MD5 (GCS refuses a body that does not
  match); larger ones are resumable uploads in `chunk_size` pieces that, after a lost answer or a 5xx,
  ask the session how much arrived and continue from there. An object becomes visible only once whole;
  a resumable upload whose final MD5 disagrees is deleted and raises DataCorruption.
- A download that breaks off continues with a Range request. We read the object's metadata first, so
  every request names its generation (a replaced object is a 404, never a splice), and check the whole
  download against the stored MD5 (the SDK checks only answers that were not ranged).
- 408, 429, 5xx and dropped connections are retried with capped, jittered exponential backoff.
Credentials come from gcp_auth (access_token, service_account_file, or Application Default Credentials).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import os

try:
    from google.api_core import exceptions as api_exceptions
    from google.cloud import storage
    from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
    from google.cloud.storage.retry import DEFAULT_RETRY
    HAS_GCS = True
except ImportError:  # pragma: no cover - exercised only where google-cloud-storage is missing
    HAS_GCS = False

from ansible_collections.llmops.platform.plugins.module_utils import gcp_auth
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.gcp_auth import GoogleAuthError, requests
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import PrefixedStore, md5_of_file

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
QUANTUM = 256 * 1024  # resumable chunks must be multiples of this (all but the last)
CHECKSUM = "md5"  # what the docs promise, and what GCS keeps for every non-composite object

HINTS = {
    401: "the Google credentials were rejected; check store.service_account_file / access_token, "
         "GOOGLE_APPLICATION_CREDENTIALS or the AWX 'Google Compute Engine' credential",
    403: "the identity needs roles/storage.objectAdmin on the bucket (storage.objects.create/get/list/delete)",
    404: "check store.bucket: the bucket must exist",
}


class GcsStore(PrefixedStore):
    def __init__(self, bucket, prefix="", access_token=None, service_account_file=None, endpoint_url=None,
                 chunk_size=16 * 1024 * 1024, retry_base_delay=1.0, retry_timeout=120.0, timeout=120):
        if not HAS_GCS or not gcp_auth.HAS_GOOGLE_AUTH:
            raise ProviderError("GCS storage needs google-cloud-storage",
                                hint="pip install google-cloud-storage (see requirements/controller.txt)")
        if chunk_size % QUANTUM:
            raise SpecError("store.chunk_size", "must be a multiple of 256 KiB for GCS resumable uploads")
        self.bucket_name, self.prefix = bucket, (prefix or "").strip("/")
        self.endpoint = (endpoint_url or DEFAULT_ENDPOINT).rstrip("/")
        self.chunk_size, self.timeout = chunk_size, timeout
        # Uploads replace whole objects with the same bytes on a retry, so they are safe to retry without
        # an ifGenerationMatch precondition (the SDK's default retries only conditional uploads).
        self.retry = DEFAULT_RETRY.with_delay(initial=retry_base_delay, maximum=retry_base_delay * 32,
                                              multiplier=2.0).with_timeout(retry_timeout)
        self._access_token, self._service_account_file = access_token, service_account_file
        self._bucket = None

    def describe(self):
        return "gs://%s/%s" % (self.bucket_name, self.prefix)

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
    def bucket(self):
        if self._bucket is None:
            # project=None: object operations need no project, and the SDK then does not go looking for one.
            client = storage.Client(project=None, credentials=self._credentials(),
                                    client_options={"api_endpoint": self.endpoint})
            self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def _blob(self, key, upload=False):
        # chunk_size only for uploads: a blob with a chunk size would download in many ranged requests,
        # and the SDK verifies the MD5 only of answers that were not ranged.
        return self.bucket.blob(self._name(key), chunk_size=self.chunk_size if upload else None)

    def _call(self, what, func, *args, **kwargs):
        """func(*args, retry=..., timeout=...) with the SDK's errors mapped to ProviderError."""
        try:
            return func(*args, retry=self.retry, timeout=self.timeout, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(what, exc)

    def _error(self, what, exc):
        """The ProviderError for an exception the SDK raised (`exc` itself when it is none of the SDK's)."""
        if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
            return self._error(what, exc.cause)  # retries ran out: report what the last attempt got
        if isinstance(exc, InvalidResponse) and getattr(exc, "response", None) is not None:
            exc = api_exceptions.from_http_response(exc.response)  # the media layer's error, in API terms
        elif isinstance(exc, api_exceptions.GoogleAPICallError) and not exc.errors and exc.response is not None:
            exc = api_exceptions.from_http_response(exc.response)  # parse the JSON error body for its reason
        if isinstance(exc, api_exceptions.NotFound):
            if "bucket" in (exc.message or "").lower():
                # "The specified bucket does not exist.": not a missing object, the store itself is wrong.
                return ProviderError("%s on %s failed: %s" % (what, self.describe(), exc.message),
                                     code="BucketNotFound", hint=HINTS[404])
            return ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            reason = exc.errors[0].get("reason") if exc.errors and isinstance(exc.errors[0], dict) else None
            return ProviderError("%s on %s failed: %s" % (what, self.describe(), exc.message),
                                 code=reason or "HTTP %s" % exc.code, hint=HINTS.get(exc.code))
        if isinstance(exc, DataCorruption):
            return self._corrupted(what)
        if isinstance(exc, GoogleAuthError):
            # RefreshError (token refused or not refreshable), TransportError (metadata server unreachable).
            return ProviderError("cannot get a Google access token for %s: %s" % (self.describe(), exc),
                                 code="UNAUTHENTICATED", hint=HINTS[401])
        if isinstance(exc, (requests.RequestException, api_exceptions.RetryError)):
            return ProviderError("%s on %s failed: %s" % (what, self.describe(), exc), code="connection",
                                 hint="check store.endpoint_url and the network path to %s" % self.endpoint)
        return exc

    def _corrupted(self, what):
        return ProviderError("%s on %s: the bytes do not match the MD5 GCS stored (corrupted in transit)"
                             % (what, self.describe()), code="ChecksumMismatch", hint="run again")

    # -- ObjectStore -------------------------------------------------------------------------------
    def size(self, key):
        # blob.reload rather than bucket.get_blob: get_blob answers None for a missing bucket too.
        blob = self._blob(key)
        try:
            self._call("stat %s" % key, blob.reload, projection="noAcl")
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise
        return blob.size

    def put_bytes(self, key, data):
        self._call("put %s" % key, self._blob(key, upload=True).upload_from_string, data,
                   content_type="application/octet-stream", checksum=CHECKSUM)

    def put_file(self, key, path):
        self._call("put %s" % key, self._blob(key, upload=True).upload_from_filename, path,
                   content_type="application/octet-stream", checksum=CHECKSUM)

    # The SDK resumes a cut download with a Range request, but checks the MD5 only of answers that were not
    # ranged. Reading the metadata first makes every request name the generation (a replaced object is a
    # 404, never a splice) and lets the whole download be checked here, resumed or not.
    def _pinned(self, what, key):
        blob = self._blob(key)
        self._call(what, blob.reload, projection="noAcl")
        return blob

    def _check(self, what, blob, digest):
        if blob.md5_hash and base64.b64encode(digest.digest()).decode("ascii") != blob.md5_hash:  # composites have none
            raise self._corrupted(what)

    def get_bytes(self, key):
        what = "get %s" % key
        blob = self._pinned(what, key)
        data = self._call(what, blob.download_as_bytes, checksum=CHECKSUM)
        self._check(what, blob, hashlib.md5(data))
        return data

    def get_file(self, key, path):
        what = "get %s" % key
        blob = self._pinned(what, key)
        self._call(what, blob.download_to_filename, path, checksum=CHECKSUM)  # removes the file on its errors
        try:
            self._check(what, blob, md5_of_file(path))
        except ProviderError:
            os.remove(path)
            raise

    def list(self, prefix):
        def names(retry, timeout):
            # The iterator fetches the pages (pageToken) lazily: consume it inside the error mapping.
            pages = self.bucket.list_blobs(prefix=self._name(prefix) or None, fields="items(name),nextPageToken",
                                           retry=retry, timeout=timeout)
            return [blob.name for blob in pages]
        return self._relative(self._call("list %s" % prefix, names))

    def delete(self, key):
        try:
            self._call("delete %s" % key, self._blob(key).delete)
        except ProviderError as exc:
            if exc.code != "NotFound":
                raise
