# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke test of a deployment of the serving image (serving_image/), read-only.

Checks, in order (each one a {name, ok, detail} entry):

- readiness:  GET /readyz answers 200 within ready_timeout (polled with capped exponential backoff);
              nothing else runs until it does.
- models:     GET /v1/models with the key lists the model (or names the default one).
- completion: POST /v1/completions with the key returns a well-formed completion;
- slo:        ...within slo_seconds (wall time of the whole non-streamed request).
- auth:       the same POST without a key, and with a key nobody was given, is refused (401/403).
- metrics:    GET /metrics is Prometheus text with llmops_ samples, without a key or with metrics_api_key.

HTTP goes through ansible.module_utils.urls.open_url, which exists wherever a module runs (the check
may run on a node inside the cluster network) and handles validate_certs, ca_path and proxies.
Keys only ever go into request headers; no detail text contains one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import re
import socket
import time

from ansible.module_utils.urls import open_url

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

# A Prometheus text-format sample line: name, optional labels, value, optional timestamp.
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")
# Hints per failed check: where to look.
HINT_KEYS = ("set api_key to a key whose SHA-256 is in the serving key store "
             "(LLMOPS_API_KEYS / LLMOPS_API_KEYS_FILE; make one with llmops-hash-key NAME --generate)")


class Answer(object):
    """One HTTP exchange: status (None when no HTTP answer came), body, seconds taken, error text."""

    def __init__(self, status=None, body=b"", seconds=0.0, error=None, headers=None):
        self.status, self.body, self.seconds, self.error = status, body, seconds, error
        self.headers = headers or {}

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def describe(self):
        """'503 (reason: loading)', '401 (invalid_api_key: ...)' or the connection error."""
        if self.status is None:
            return self.error
        data = self.json()
        extra = None
        if isinstance(data, dict):
            if isinstance(data.get("error"), dict):
                err = data["error"]
                extra = ": ".join(str(x) for x in (err.get("code"), err.get("message")) if x)
            elif data.get("reason"):
                extra = "reason: %s" % data["reason"]
        elif self.body:
            extra = self.body[:120].decode("utf-8", "replace").strip()
        return "%s (%s)" % (self.status, extra) if extra else str(self.status)


def parse_metrics(text):
    """{sample name: [values]} of a Prometheus text exposition; raises ValueError on a malformed line."""
    samples = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line)
        if not match:
            raise ValueError("line %d is not a Prometheus sample: %r" % (number, line[:80]))
        try:
            value = float(match.group(3))
        except ValueError:
            raise ValueError("line %d has a non-numeric value: %r" % (number, line[:80]))
        samples.setdefault(match.group(1), []).append(value)
    return samples


def check_url(url):
    if not url or not re.match(r"^https?://[^/\s]+", url):
        raise SpecError("url", "must be the http(s) base URL of the serving API, got %r" % (url,),
                        hint="for example http://127.0.0.1:8080 or https://llm.example.com")
    return url.rstrip("/")


class EndpointCheck(object):
    """Runs the checks; run() returns the result dict with `failed_checks` (empty when all passed)."""

    def __init__(self, url, api_key=None, model=None, prompt="Say hello", max_tokens=8, slo_seconds=10.0,
                 ready_timeout=300.0, check_auth=True, check_metrics=True, metrics_api_key=None,
                 validate_certs=True, ca_path=None, timeout=30.0, clock=time.monotonic, sleep=time.sleep):
        self.url = check_url(url)
        if max_tokens < 1:
            raise SpecError("max_tokens", "must be at least 1, got %s" % max_tokens)
        if slo_seconds <= 0:
            raise SpecError("slo_seconds", "must be greater than 0, got %s" % slo_seconds)
        if ready_timeout < 0:
            raise SpecError("ready_timeout", "must be 0 or more seconds, got %s" % ready_timeout)
        if timeout <= 0:
            raise SpecError("timeout", "must be greater than 0, got %s" % timeout)
        self.api_key, self.model, self.prompt, self.max_tokens = api_key, model, prompt, max_tokens
        self.slo_seconds, self.ready_timeout, self.timeout = float(slo_seconds), float(ready_timeout), float(timeout)
        self.check_auth, self.check_metrics, self.metrics_api_key = check_auth, check_metrics, metrics_api_key
        self.validate_certs, self.ca_path = validate_certs, ca_path
        self.clock, self.sleep = clock, sleep
        self.checks = []

    # -- HTTP --------------------------------------------------------------------------------------
    def request(self, method, path, key=None, payload=None, timeout=None):
        headers = {"Accept": "application/json, text/plain;q=0.9"}
        if key:
            headers["Authorization"] = "Bearer %s" % key
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        start = self.clock()
        try:
            response = open_url(self.url + path, method=method, data=data, headers=headers,
                                timeout=timeout or self.timeout, validate_certs=self.validate_certs,
                                ca_path=self.ca_path, follow_redirects="none", use_proxy=True)
            body = response.read()
            return Answer(response.getcode(), body, self.clock() - start, headers=dict(response.headers))
        # open_url raises HTTPError for non-2xx answers and URLError/socket/ssl errors for no answer.
        except Exception as exc:  # pylint: disable=broad-except
            seconds = self.clock() - start
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                try:
                    body = exc.read()
                except Exception:  # pylint: disable=broad-except
                    body = b""
                return Answer(code, body, seconds, headers=dict(getattr(exc, "headers", None) or {}))
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, socket.timeout) or "timed out" in str(reason):
                text = "no answer within %.1f s (timeout)" % (timeout or self.timeout)
            else:
                text = "%s: %s" % (type(reason).__name__, reason)
            return Answer(None, b"", seconds, error=text)

    # -- bookkeeping -------------------------------------------------------------------------------
    def record(self, name, ok, detail):
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return ok

    # -- checks ------------------------------------------------------------------------------------
    def wait_ready(self):
        """Poll /readyz until 200; return seconds waited, or None (and a failed check) at the deadline."""
        start = self.clock()
        deadline = start + self.ready_timeout
        delay, attempts, last = 0.5, 0, None
        while True:
            attempts += 1
            remaining = deadline - self.clock()
            answer = self.request("GET", "/readyz", timeout=max(1.0, min(self.timeout, remaining)))
            if answer.status == 200:
                waited = self.clock() - start
                self.record("readiness", True, "GET /readyz returned 200 after %.2f s (%d attempt%s)"
                            % (waited, attempts, "" if attempts == 1 else "s"))
                return waited
            last = answer
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            # Capped exponential backoff with jitter, never sleeping past the deadline.
            self.sleep(min(remaining, delay * (0.5 + random.random() / 2)))
            delay = min(delay * 2, 10.0)
        self.record("readiness", False, "not ready: GET %s/readyz did not return 200 within %s s (%d attempts); "
                    "last answer: %s; %s" % (self.url, _num(self.ready_timeout), attempts, last.describe(),
                                             _readiness_hint(last)))
        return None

    def resolve_model(self):
        answer = self.request("GET", "/v1/models", key=self.api_key)
        if answer.status != 200:
            self.record("models", False, "models: GET /v1/models returned %s; %s"
                        % (answer.describe(), _auth_hint(answer, self.api_key)))
            return None
        data = answer.json()
        ids = [m.get("id") for m in (data or {}).get("data") or [] if isinstance(m, dict) and m.get("id")]
        if not ids:
            self.record("models", False, "models: GET /v1/models lists no model: %s; is url the serving image's API?"
                        % answer.body[:200].decode("utf-8", "replace"))
            return None
        if self.model and self.model not in ids:
            self.record("models", False, "models: model %r is not served here (served: %s); set model to one of them "
                        "or leave it out" % (self.model, ", ".join(ids)))
            return None
        model = self.model or ids[0]
        self.record("models", True, "serves %s%s" % (", ".join(ids), "" if self.model else "; using %s" % model))
        return model

    def completion(self, model):
        payload = {"model": model, "prompt": self.prompt, "max_tokens": self.max_tokens, "temperature": 0}
        answer = self.request("POST", "/v1/completions", key=self.api_key, payload=payload)
        data = answer.json() if answer.status == 200 else None
        choices = (data or {}).get("choices") if isinstance(data, dict) else None
        usage = (data or {}).get("usage") if isinstance(data, dict) else None
        if answer.status != 200:
            self.record("completion", False, "completion failed: POST /v1/completions returned %s; %s"
                        % (answer.describe(), _auth_hint(answer, self.api_key)))
            return None
        if (not isinstance(choices, list) or not choices or not isinstance(choices[0], dict)
                or not isinstance(choices[0].get("text"), str) or not isinstance(usage, dict)
                or not isinstance(usage.get("completion_tokens"), int)):
            self.record("completion", False, "completion malformed: POST /v1/completions returned 200 without "
                        "choices[0].text and usage.completion_tokens: %s"
                        % answer.body[:200].decode("utf-8", "replace"))
            return None
        tokens = usage["completion_tokens"]
        self.record("completion", True, "%d token%s in %.3f s (finish_reason: %s)" % (
            tokens, "" if tokens == 1 else "s", answer.seconds, choices[0].get("finish_reason")))
        return answer.seconds, tokens

    def slo(self, seconds):
        if seconds <= self.slo_seconds:
            return self.record("slo", True, "%.3f s <= %s s" % (seconds, _num(self.slo_seconds)))
        return self.record("slo", False, "completion SLO missed: POST /v1/completions (max_tokens %d) took %.3f s, "
                           "the SLO is %s s; look at llmops_queue_length, llmops_time_to_first_token_seconds and "
                           "llmops_time_per_output_token_seconds on /metrics and at the accelerator, or raise slo_seconds"
                           % (self.max_tokens, seconds, _num(self.slo_seconds)))

    def auth(self, model):
        payload = {"model": model, "prompt": self.prompt, "max_tokens": 1, "temperature": 0}
        probes = [("without a key", None),
                  # A key nobody was given: a server that accepts any bearer value is not enforcing auth either.
                  ("with an unknown key", "sk-llmops-endpoint-check-%016x" % random.getrandbits(64))]
        seen = []
        for label, key in probes:
            answer = self.request("POST", "/v1/completions", key=key, payload=payload)
            if answer.status not in (401, 403):
                self.record("auth", False, "auth not enforced: POST /v1/completions %s returned %s; set api keys in "
                            "the serving config (LLMOPS_AUTH_ENABLED=true with LLMOPS_API_KEYS_FILE or JWT settings)"
                            % (label, answer.describe()))
                return False
            seen.append("%s: %d" % (label, answer.status))
        return self.record("auth", True, "POST /v1/completions refused " + ", ".join(seen))

    def metrics(self):
        answer = self.request("GET", "/metrics")
        used = "without a key"
        if answer.status in (401, 403):
            if not self.metrics_api_key:
                self.record("metrics", False, "metrics closed: GET /metrics without a key returned %s; set "
                            "metrics_api_key to the key Prometheus scrapes with, or check_metrics: false"
                            % answer.describe())
                return False
            answer = self.request("GET", "/metrics", key=self.metrics_api_key)
            used = "with metrics_api_key"
        if answer.status != 200:
            self.record("metrics", False, "metrics unreachable: GET /metrics %s returned %s; %s" % (
                used, answer.describe(), "check metrics_api_key" if used != "without a key" and answer.status in (401, 403)
                else "check that url is the serving API and /metrics is routed to it"))
            return False
        try:
            samples = parse_metrics(answer.body.decode("utf-8", "replace"))
        except ValueError as exc:
            self.record("metrics", False, "metrics malformed: GET /metrics is not Prometheus text format: %s" % exc)
            return False
        ours = sorted(name for name in samples if name.startswith("llmops_"))
        if not ours:
            self.record("metrics", False, "metrics incomplete: GET /metrics has %d samples but no llmops_ metrics; "
                        "is url the serving image's API?" % sum(len(v) for v in samples.values()))
            return False
        ready = samples.get("llmops_ready")
        return self.record("metrics", True, "%s: %d llmops_ sample names%s" % (
            used, len(ours), "; llmops_ready %s" % _num(ready[0]) if ready else ""))

    # -- all of it ---------------------------------------------------------------------------------
    def run(self):
        result = {"url": self.url, "ready_after_seconds": None, "completion_latency_seconds": None,
                  "completion_tokens": None, "auth_enforced": None, "metrics_reachable": None,
                  "model": self.model, "checks": self.checks}
        waited = self.wait_ready()
        if waited is not None:
            result["ready_after_seconds"] = round(waited, 3)
            model = self.resolve_model()
            if model:
                result["model"] = model
                done = self.completion(model)
                if done:
                    result["completion_latency_seconds"] = round(done[0], 4)
                    result["completion_tokens"] = done[1]
                    self.slo(done[0])
            if self.check_auth:
                result["auth_enforced"] = self.auth(result["model"])
            if self.check_metrics:
                result["metrics_reachable"] = self.metrics()
        result["failed_checks"] = [c["name"] for c in self.checks if not c["ok"]]
        return result

    def failure_message(self, result):
        details = [c["detail"] for c in self.checks if not c["ok"]]
        return "%s failed the smoke test: %s" % (self.url, " | ".join(details)) if details else None


def _num(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def _readiness_hint(answer):
    if answer.status is None:
        if "CERTIFICATE" in (answer.error or "").upper() or "SSL" in (answer.error or "").upper():
            return "the TLS certificate was not accepted: set ca_path to the CA that signed it"
        return "check url and that the server is running and its port is reachable from here"
    reason = (answer.json() or {}).get("reason") if isinstance(answer.json(), dict) else None
    if reason == "loading":
        return "the model is still loading: raise ready_timeout or look at the server log for load progress"
    if reason == "draining":
        return "the server is shutting down (SIGTERM); look at the rollout or the pod's events"
    if reason:
        return "look at the server log (%s)" % reason
    if answer.status == 404:
        return "url answers but has no /readyz: is it the serving image's API (and not a path behind it)?"
    return "look at the server log and the load balancer in front of it"


def _auth_hint(answer, api_key):
    if answer.status in (401, 403):
        if not api_key:
            return "the API needs a key: " + HINT_KEYS
        return "the api_key was refused: " + HINT_KEYS
    if answer.status == 429:
        return "rate limited: the key's principal is out of requests or tokens per minute, retry later or raise its limits"
    if answer.status == 503:
        return "the server is overloaded, loading or draining: look at llmops_queue_length and the server log"
    if answer.status is None:
        return "the server stopped answering after it was ready: look at its log"
    return "look at the server log"
