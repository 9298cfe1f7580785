# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCP provider, part 1 of 4: calls, errors and long-running operations (GKE and Compute REST APIs).

- Calls go through google-auth's AuthorizedSession (credentials from module_utils/gcp_auth.py, shared with
  the GCS store). 429, 5xx, dropped connections and "operation in progress" answers (GKE runs one
  operation per cluster) are retried with capped, jittered backoff; other 4xx are errors at once, turned
  into ProviderError with the API's status as code and a hint.
- Operations we start are remembered per cluster and waited on before the next mutating call.
- Which answers mean "no capacity here" (stockouts, quota) is decided here too, since it is read from the
  same error answers; gcp_capacity.py acts on it.

Split of the provider: gcp_api.py (this), gcp_capacity.py (offers, quota, fallback), gcp_translate.py (to
and from the API's shapes), gcp.py (GcpProvider).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.platform.plugins.module_utils import gcp_auth
from ansible_collections.llmops.platform.plugins.module_utils.gcp_auth import RefreshError, requests
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

DEFAULT_API = "https://container.googleapis.com"

DEFAULT_COMPUTE = "https://compute.googleapis.com"

# What GKE and GCE say when a zone cannot supply the machines, or the project's quota is used up.
CAPACITY_MARKERS = ("ZONE_RESOURCE_POOL_EXHAUSTED", "GCE_STOCKOUT", "QUOTA_EXCEEDED", "GCE_QUOTA_EXCEEDED",
                    "does not have enough resources available")

# GKE's synchronous quota answer to nodePools.create / clusters.create is HTTP 403 PERMISSION_DENIED with
# "Insufficient regional quota to satisfy request: resource \"NVIDIA_L4_GPUS\": request requires '1.0' and
# is short '1.0'. ..." (or "Insufficient quota ..."): a capacity answer, not an IAM one.
QUOTA_SHORT_RE = re.compile(r"insufficient (regional |zonal |global )?quota", re.IGNORECASE)

# google.rpc.Code numbers, as Operation.error.code carries them.
RPC_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
             6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
             10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
             16: "UNAUTHENTICATED"}

HINTS = {
    "PERMISSION_DENIED": "the service account needs roles/container.admin and roles/compute.viewer on the project "
                         "(and roles/iam.serviceAccountUser on the node service account); see docs/clouds.md",
    "UNAUTHENTICATED": "the Google credentials were rejected; check provider_options.service_account_file / access_token, "
                       "GOOGLE_APPLICATION_CREDENTIALS or the AWX 'Google Compute Engine' credential",
    "NOT_FOUND": "check provider_options.project and region; the project must exist and have the Kubernetes Engine "
                 "API enabled (gcloud services enable container.googleapis.com)",
    "INVALID_ARGUMENT": "check the cluster and node pool settings named in the message",
    "RESOURCE_EXHAUSTED": "a quota or rate limit was reached; check IAM & Admin > Quotas for the region, "
                          "or ask for an increase",
    "ALREADY_EXISTS": "a resource of that name exists already; use another name or import it",
    "FAILED_PRECONDITION": "another operation is running on the cluster; wait for it and run again",
    "QUOTA_EXCEEDED": "the project's quota in the region is too small for the pool; ask for an increase under "
                      "IAM & Admin > Quotas (gpu_capacity_info shows limit and usage), or use another region",
    "PROVISIONING": "GKE is still creating it: nothing failed yet; run the play again later (it waits on the same "
                    "operation) or raise wait_timeout",
    "SERVICE_DISABLED": "enable the API named in the message: gcloud services enable container.googleapis.com "
                        "compute.googleapis.com",
    "connection": "check provider_options.api_endpoint / compute_endpoint and the network path to Google APIs",
}


class GcpApiError(Exception):
    """An HTTP error answer of a Google API, before it is turned into ProviderError."""

    def __init__(self, http_status, status, message, reason=None):
        super(GcpApiError, self).__init__("%s %s: %s" % (http_status, status, message))
        self.http_status, self.status, self.message, self.reason = http_status, status, message, reason


def _transient(exc):
    if gcp_auth.HAS_GOOGLE_AUTH and isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if not isinstance(exc, GcpApiError):
        return False
    if exc.http_status == 429 or exc.http_status >= 500:
        return True
    # GKE runs one operation per cluster: "Cluster is running incompatible operation operation-...",
    # "Operation operation-... is currently ... Please wait and try again once it is done."
    return (exc.http_status in (400, 409) and exc.status in ("FAILED_PRECONDITION", "ABORTED")
            and "operation" in exc.message.lower())


def _capacity_code(text):
    """The capacity marker in an error text or code, or None when the error is about something else."""
    text = str(text or "")
    for marker in CAPACITY_MARKERS:
        if marker.lower() in text.lower():
            return marker if marker.isupper() else "ZONE_RESOURCE_POOL_EXHAUSTED"
    # GCE: "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region us-central1."
    # GKE: "Insufficient regional quota to satisfy request: resource \"NVIDIA_L4_GPUS\": ..."
    if re.search(r"quota .* exceeded", text, re.IGNORECASE) or QUOTA_SHORT_RE.search(text):
        return "QUOTA_EXCEEDED"
    return None


def _regional_quota(text):
    """True when the answer says the region's quota is short: every zone of the region shares it."""
    return bool(re.search(r"insufficient regional quota|in region [a-z]+-[a-z]+[0-9]+\.?$", str(text or ""), re.IGNORECASE))


def _last(url):
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


class GkeApiMixin(object):
    """Settings, session, REST calls, URLs and GKE operations of GcpProvider (which sets options,
    api, compute, poll_interval, operation_timeout, _session and _pending in its __init__)."""

    @property
    def project(self):
        project = self.options.get("project")
        if not project:
            raise SpecError("provider_options.project", "is required by the gcp provider",
                            hint="set it to the project id, e.g. from the GCP_PROJECT environment variable "
                                 "(the AWX 'Google Compute Engine' credential sets GCE_PROJECT)")
        return project

    @property
    def region(self):
        region = self.options.get("region")
        if not region:
            raise SpecError("region", "is required by the gcp provider", hint="e.g. region: us-central1")
        return region

    def _credentials(self):
        return gcp_auth.google_credentials(
            SCOPES, self.options.get("access_token"), self.options.get("service_account_file"),
            file_field="provider_options", file_hint="point it at a service account key (JSON) file",
            no_credentials=SpecError("provider_options", "no Google credentials were found",
                                     hint="set provider_options.service_account_file (a service account key file) or "
                                          "provider_options.access_token, or GOOGLE_APPLICATION_CREDENTIALS, or run "
                                          "'gcloud auth application-default login', or attach an AWX 'Google Compute "
                                          "Engine' credential (it sets GCE_CREDENTIALS_FILE_PATH, which the inventories "
                                          "pass as service_account_file)"))

    def session(self):
        if self._session is None:
            self._session = gcp_auth.authorized_session("the gcp provider", self._credentials)
        return self._session

    def call(self, method, url, what, body=None, params=None, not_found=False):
        """One REST call: retries what passes, returns the JSON answer; None for 404 when not_found."""
        session = self.session()
        timeout = float(self.options.get("request_timeout", 60))

        def once():
            try:
                resp = session.request(method, url, json=body, params=params, timeout=timeout)
            except RefreshError as exc:
                raise GcpApiError(401, "UNAUTHENTICATED", "cannot refresh the access token: %s" % exc)
            if resp.status_code >= 400:
                try:
                    error = resp.json().get("error") or {}
                except ValueError:
                    error = {}
                reason = None
                for detail in error.get("details") or []:
                    reason = reason or detail.get("reason")
                raise GcpApiError(resp.status_code, error.get("status") or str(resp.status_code),
                                  error.get("message") or resp.text[:300], reason)
            return resp.json() if resp.content else {}

        try:
            return call_with_retry(once, _transient, attempts=int(self.options.get("retry_attempts", 8)),
                                   base=float(self.options.get("retry_base_delay", 2)), cap=60)
        except GcpApiError as exc:
            if exc.http_status == 404 and not_found:
                return None
            code = exc.reason if exc.reason == "SERVICE_DISABLED" else exc.status
            if exc.http_status in (403, 429) and QUOTA_SHORT_RE.search(exc.message or ""):
                code = "QUOTA_EXCEEDED"  # GKE's quota answer comes as 403 PERMISSION_DENIED; it is not IAM
            raise ProviderError("GCP %s failed: %s" % (what, exc.message), code=code,
                                hint=HINTS.get(code) or HINTS.get(exc.status))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ProviderError("GCP %s failed: cannot reach %s: %s" % (what, url.split("/v1/")[0], exc),
                                code="connection", hint=HINTS["connection"])

    def _loc(self):
        return "%s/v1/projects/%s/locations/%s" % (self.api, self.project, self.region)

    def _cluster_url(self, name):
        return "%s/clusters/%s" % (self._loc(), name)

    def _pool_url(self, cluster, pool):
        return "%s/nodePools/%s" % (self._cluster_url(cluster), pool)

    def _compute_url(self, path):
        return "%s/compute/v1/projects/%s/%s" % (self.compute, self.project, path)

    def _compute_self_link(self, link):
        """A selfLink GKE reports (https://www.googleapis.com/compute/v1/...) on the configured endpoint."""
        return "%s/compute/v1/%s" % (self.compute, link.split("/compute/v1/", 1)[1])

    def _start(self, cluster, operation):
        self._pending.setdefault(cluster, []).append(operation["name"])
        return operation["name"]

    def _operation_error(self, op):
        """(code, message) of a failed operation; the code is a capacity marker when it says so."""
        error = op.get("error") or {}
        message = error.get("message") or op.get("statusMessage") or "no error message"
        code = RPC_CODES.get(error.get("code"), error.get("code"))
        capacity = _capacity_code(message)
        for condition in op.get("nodepoolConditions") or op.get("clusterConditions") or []:
            capacity = capacity or _capacity_code(condition.get("code")) or _capacity_code(condition.get("message"))
        return capacity or code, message

    def wait_operation(self, name, timeout=None):
        """Wait until the operation is DONE; return it. A failed operation raises ProviderError."""
        url = "%s/operations/%s" % (self._loc(), name)
        seen = {}

        def probe():
            op = self.call("GET", url, "operations.get %s" % name)
            seen["op"] = op
            return op.get("status") == "DONE", "%s %s" % (op.get("operationType", "operation"), op.get("status"))

        wait_for(probe, "GKE operation %s" % name, self.operation_timeout if timeout is None else timeout,
                 interval=self.poll_interval)
        op = seen["op"]
        for pending in self._pending.values():
            if name in pending:
                pending.remove(name)
        # statusMessage is the deprecated error field: "If an error has occurred, a textual description".
        if op.get("error") or op.get("statusMessage"):
            code, message = self._operation_error(op)
            raise ProviderError("GKE operation %s (%s of %s) failed: %s" % (
                name, op.get("operationType"), _last(op.get("targetLink")), message),
                code=code, hint=HINTS.get(code))
        return op

    def _settle(self, cluster, timeout=None):
        """Wait for the operations we started on `cluster`: GKE runs one at a time."""
        for name in list(self._pending.get(cluster, [])):
            self.wait_operation(name, timeout)
