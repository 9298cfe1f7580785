"""A loopback HTTP server that replays recorded Google API exchanges and checks every request.

A scenario (fixtures/gcp/<name>.json) is an ordered list of exchanges; each names the REST API version
and method it follows ("api": "container.googleapis.com/v1 projects.locations.clusters.get"), the
request it expects and the response to give:

    {"api": "...",
     "request": {"method": "POST", "path": "/v1/projects/p/locations/r/clusters",
                 "query": {"filter": "name = \\"nvidia-l4\\""},       # these parameters, exactly
                 "body": {"cluster": {"name": "c"}},                 # a subset of the JSON body
                 "body_keys": ["cluster"]},                          # exactly these top-level keys
     "response": {"status": 200, "json": {...}}}

Requests must come in order, carry "Authorization: Bearer <token>", and match; anything else is
answered 418 (a 4xx the provider does not retry) and recorded, and the test fails on it. The real
google-auth AuthorizedSession (requests) talks to it over plain http on 127.0.0.1.

Beyond the fixtures we wrote, every request the server sees is checked against the real API: its verb
and path must be a method of the GKE (container.v1), Compute (compute.v1) or Cloud Billing
(cloudbilling.v1) discovery document that ships with google-api-python-client, and its JSON body must fit that method's request schema
(tests/unit/schema_check.py: unknown field, wrong type or value outside an enum fails the test).
"""
import json
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "gcp"
TOKEN = "test-token"


def load_scenario(name):
    data = json.loads((FIXTURES / ("%s.json" % name)).read_text())
    for i, exchange in enumerate(data["exchanges"]):
        assert exchange.get("api"), "%s exchange %d does not name the API it follows" % (name, i)
    return data


def subset_mismatch(expected, actual, where="body"):
    """Where `expected` is not contained in `actual` (dicts: subset; everything else: equal), or None."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %r" % (where, actual)
        for key, value in expected.items():
            if key not in actual:
                return "%s.%s: missing" % (where, key)
            problem = subset_mismatch(value, actual[key], "%s.%s" % (where, key))
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return "%s: expected %r, got %r" % (where, expected, actual)
        for i, (want, have) in enumerate(zip(expected, actual)):
            problem = subset_mismatch(want, have, "%s[%d]" % (where, i))
            if problem:
                return problem
        return None
    if expected != actual:
        return "%s: expected %r, got %r" % (where, expected, actual)
    return None


class FixtureServer(object):
    def __init__(self, exchanges, token=TOKEN, name="scenario"):
        self.exchanges = list(exchanges)
        self.token = token
        self.name = name
        self.position = 0
        self.errors = []
        self.seen = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def schema_problems(self):
        """Every request seen, checked against the discovery document of the API it went to."""
        import schema_check
        problems = []
        for method, path, dummy, body in self.seen:
            document = schema_check.load_discovery(
                "compute.v1" if path.startswith("/compute/") else
                "cloudbilling.v1" if path.startswith("/v1/services/") else "container.v1")
            problems.extend(schema_check.discovery_request_problems(document, method, path, body))
        return problems

    def check_done(self):
        """Raise AssertionError when a request did not match or expected exchanges were left over, or a
        request does not fit the real API's discovery document."""
        problems = list(self.errors) + self.schema_problems()
        for exchange in self.exchanges[self.position:]:
            problems.append("expected but not requested: %s %s (%s)" % (
                exchange["request"]["method"], exchange["request"]["path"], exchange["api"]))
        assert not problems, "%s:\n  %s" % (self.name, "\n  ".join(problems))

    def _answer(self, method, raw_path, headers, raw_body):
        parts = urlsplit(raw_path)
        query = dict((k, v[0] if len(v) == 1 else v) for k, v in parse_qs(parts.query, keep_blank_values=True).items())
        body = json.loads(raw_body) if raw_body else None
        with self._lock:
            self.seen.append((method, parts.path, query, body))
            if self.position >= len(self.exchanges):
                return self._fail("unexpected request %s %s %s (all %d exchanges used)"
                                  % (method, parts.path, query, len(self.exchanges)))
            exchange = self.exchanges[self.position]
            want = exchange["request"]
            label = "exchange %d (%s)" % (self.position, exchange["api"])
            if headers.get("Authorization") != "Bearer %s" % self.token:
                return self._fail("%s: Authorization header %r" % (label, headers.get("Authorization")))
            if (method, parts.path) != (want["method"], want["path"]):
                return self._fail("%s: expected %s %s, got %s %s" % (label, want["method"], want["path"], method, parts.path))
            if "query" in want and query != want["query"]:
                return self._fail("%s: query %r, expected %r" % (label, query, want["query"]))
            if "body_keys" in want and sorted((body or {}).keys()) != sorted(want["body_keys"]):
                return self._fail("%s: body keys %s, expected %s" % (label, sorted((body or {}).keys()), want["body_keys"]))
            if "body" in want:
                problem = subset_mismatch(want["body"], body)
                if problem:
                    return self._fail("%s: %s" % (label, problem))
            self.position += 1
            response = exchange["response"]
            return response.get("status", 200), response.get("json", {})

    def _fail(self, message):
        self.errors.append(message)
        return 418, {"error": {"code": 418, "status": "FIXTURE_MISMATCH", "message": message}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = server._answer(self.command, self.path, self.headers, raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, *args):  # keep pytest output clean
                pass

        return Handler


PROJECT = "llmops-test"
REGION = "us-central1"


class GcpHarness(object):
    """The attributes test_contract.Harness has (provider, cluster, pool, after_change), without importing it.
    Recorded exchanges need no nudge after a change: the fixtures already say what GKE did."""

    def __init__(self, provider, cluster=None, pool=None):
        self.provider, self.cluster, self.pool = provider, dict(cluster or {}), dict(pool or {})
        self.after_change = lambda name: None


def provider_options(server, **extra):
    options = {"project": PROJECT, "access_token": TOKEN, "api_endpoint": server.url, "compute_endpoint": server.url,
               "poll_interval": 0, "retry_base_delay": 0}
    options.update(extra)
    return options


def start_scenario(request, name, region=REGION, **extra):
    """Serve fixtures/gcp/<name>.json for one test; the test fails unless every exchange was used as recorded."""
    from ansible_collections.llmops.platform.plugins.module_utils.providers.gcp import GcpProvider

    server = FixtureServer(load_scenario(name)["exchanges"], name=name).start()

    def finish():
        server.stop()
        server.check_done()

    request.addfinalizer(finish)
    return GcpProvider(provider_options(server, **extra), region), server


def gcp_harness(request):
    """Contract harness: test_contract.py::test_lifecycle against fixtures/gcp/lifecycle.json."""
    provider, dummy = start_scenario(request, "lifecycle")
    return GcpHarness(provider, cluster={"name": "llmops-ut", "region": REGION})
