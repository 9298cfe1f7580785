# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus' HTTP API as the backup needs it: is it up, and take a TSDB snapshot (admin API)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.urls import open_url

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError

ADMIN_API_HINT = ("start Prometheus with --web.enable-admin-api "
                  "(prometheus_extra_args: [--web.enable-admin-api] in the prometheus role)")


class PrometheusApi(object):
    """One Prometheus server at `url` (as seen from the host this runs on), optionally behind a proxy
    that wants `bearer_token`. Every failure is a ProviderError with the HTTP code and what to do."""

    def __init__(self, url, bearer_token=None, timeout=300):
        self.url, self.bearer_token, self.timeout = url, bearer_token, timeout

    def request(self, method, path):
        headers = {}
        if self.bearer_token:
            headers["Authorization"] = "Bearer %s" % self.bearer_token
        url = self.url.rstrip("/") + path
        try:
            response = open_url(url, method=method, headers=headers, timeout=self.timeout)
            return json.loads(response.read())
        # open_url raises several unrelated types (HTTPError, URLError, socket errors).
        except Exception as exc:  # pylint: disable=broad-except
            body = getattr(exc, "read", lambda: b"")()
            code = getattr(exc, "code", None)
            hint = "is Prometheus running at %s?" % self.url
            if code in (403, 404) or b"admin APIs disabled" in body:
                hint = ADMIN_API_HINT
            detail = ("%s %s" % (exc, body.decode("utf-8", "replace")[:200])).strip()
            raise ProviderError("%s %s failed: %s" % (method, url, detail), code=code, hint=hint)

    def runtime_info(self):
        """GET /api/v1/status/runtimeinfo: proves Prometheus answers (check mode asks nothing more)."""
        return self.request("GET", "/api/v1/status/runtimeinfo")

    def snapshot(self, skip_head=False):
        """Take a TSDB snapshot; return its name (a directory under <data_dir>/snapshots)."""
        answer = self.request("POST", "/api/v1/admin/tsdb/snapshot?skip_head=%s" % str(bool(skip_head)).lower())
        name = answer.get("data", {}).get("name")
        if answer.get("status") != "success" or not name:
            raise ProviderError("Prometheus did not take a snapshot: %s" % json.dumps(answer)[:300])
        return name
