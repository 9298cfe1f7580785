# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback HTTPS server that plays recorded Azure Resource Manager exchanges to the real SDK clients.

Why HTTPS: azure-core's bearer-token policy refuses to send a token over plain http, so the server
listens on 127.0.0.1 with a self-signed certificate made at test time (`cryptography`), and the
clients trust it through `connection_verify=<ca file>`.

A scenario is an ordered list of exchanges (fixtures/azure/*.json). Each exchange names the REST
operation and api-version it follows and holds the expected request (method, path, query subset, JSON
body subset) and the response to send. A request that does not match the next expected exchange is
answered with a 400 `FixtureMismatch` error (not transient, so nothing retries it) and recorded;
`verify()` fails the test on any mismatch or on exchanges left unplayed.

Fixture strings may contain `{base}` (this server's https URL), replaced when the file is loaded.
A step may be `{"include": "other.json"}` to reuse another file's exchanges. `json_absent` lists dotted
body paths that must not be sent (read-only properties echoed back from a GET). An exchange with
`"repeat": true` answers every further matching request (an operation that never ends).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import json
import os
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from schema_check import azure_body_problems

# Request path (after /subscriptions/<id>/resourceGroups/<rg>/providers/) -> the SDK model of its body.
BODY_MODELS = (
    (re.compile(r"/Microsoft\.ContainerService/managedClusters/[^/]+/agentPools/[^/]+$"), "AgentPool"),
    (re.compile(r"/Microsoft\.ContainerService/managedClusters/[^/]+$"), "ManagedCluster"),
)


def body_model(method, path):
    """The azure-mgmt-containerservice model class a PUT/PATCH body of `path` must follow, or None."""
    from azure.mgmt.containerservice import models
    if method not in ("PUT", "PATCH"):
        return None
    for pattern, name in BODY_MODELS:
        if pattern.search(path):
            return getattr(models, name)
    return None


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "azure")
SUBSCRIPTION = "00000000-0000-0000-0000-00000000abcd"
RESOURCE_GROUP = "llmops-ut-rg"
TOKEN = "fixture-token"


def make_certificate(directory):
    """Write a self-signed certificate for 127.0.0.1 (and localhost) and its key; return (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(u"127.0.0.1")),
                                                    x509.DNSName(u"localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "fixture-ca.pem")
    key_path = os.path.join(directory, "fixture-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def _substitute(value, base):
    if isinstance(value, str):
        return value.replace("{base}", base)
    if isinstance(value, list):
        return [_substitute(v, base) for v in value]
    if isinstance(value, dict):
        return dict((k, _substitute(v, base)) for k, v in value.items())
    return value


def load_scenario(name, base):
    """The exchanges of fixtures/azure/<name>.json, includes expanded, {base} substituted."""
    with open(os.path.join(FIXTURES, name if name.endswith(".json") else name + ".json")) as f:
        data = json.load(f)
    exchanges = []
    for step in data["exchanges"]:
        if "include" in step:
            exchanges.extend(load_scenario(step["include"], base))
            continue
        assert step.get("api"), "every exchange names the REST operation it follows: %r" % (step,)
        exchanges.append(_substitute(step, base))
    return exchanges


def subset_mismatch(expected, actual, where="body"):
    """None when `expected` is contained in `actual` (dicts recursively, lists and scalars exactly)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %r" % (where, actual)
        for key, value in expected.items():
            if key not in actual:
                return "%s.%s: missing (got keys %s)" % (where, key, sorted(actual))
            problem = subset_mismatch(value, actual[key], "%s.%s" % (where, key))
            if problem:
                return problem
        return None
    if expected != actual:
        return "%s: expected %r, got %r" % (where, expected, actual)
    return None


class FixtureServer(object):
    """Plays scenarios; one instance per test."""

    def __init__(self, directory):
        self.cert, self.key = make_certificate(directory)
        self.exchanges = []
        self.played = []
        self.errors = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True
        self.thread.start()

    # -- scenarios ---------------------------------------------------------------------------------
    def play(self, *names):
        """Append the exchanges of these fixture files to what the server expects next."""
        with self.lock:
            for name in names:
                self.exchanges.extend(load_scenario(name, self.base))

    def remaining(self):
        with self.lock:
            return list(self.exchanges)

    def verify(self):
        with self.lock:
            problems = list(self.errors) + self.schema_problems()
            left = [e for e in self.exchanges if not (e.get("repeat") and e.get("_played"))]
            if left:
                problems.append("%d expected exchange(s) not requested, next: %s %s (%s)" % (
                    len(left), left[0]["request"]["method"], left[0]["request"]["path"], left[0]["api"]))
        assert not problems, "\n".join(problems)

    def schema_problems(self):
        """Every request body the provider sent, checked against the Azure SDK model of its operation
        (tests/unit/schema_check.py): a field the REST API does not have fails the test."""
        problems = []
        for exchange in self.played:
            if exchange["body"] is None:
                continue
            model = body_model(exchange["method"], exchange["path"])
            if model is None:
                problems.append("%s %s (%s): no SDK model known for this request body; add it to BODY_MODELS"
                                % (exchange["method"], exchange["path"], exchange["api"]))
                continue
            where = "%s %s (%s, %s)" % (exchange["method"], exchange["path"], exchange["api"], model.__name__)
            problems.extend("%s: %s" % (where, p) for p in azure_body_problems(model, exchange["body"]))
        return problems

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def provider_options(self, **extra):
        options = {
            "subscription_id": SUBSCRIPTION,
            "resource_group": RESOURCE_GROUP,
            "access_token": TOKEN,
            "base_url": self.base,
            "connection_verify": self.cert,
            "polling_interval": 0,
            "retry_base_delay": 0,
        }
        options.update(extra)
        return options

    # -- matching ----------------------------------------------------------------------------------
    def _answer(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self.lock:
            if not self.exchanges:
                problem = "unexpected request %s %s: the scenario is over" % (method, raw_path)
                self.errors.append(problem)
                return self._mismatch(problem)
            expected = self.exchanges[0]
            problem = self._compare(expected, method, parts.path, query, headers, body)
            if problem:
                problem = "%s %s does not match the next exchange (%s): %s" % (method, raw_path, expected["api"], problem)
                self.errors.append(problem)
                return self._mismatch(problem)
            if expected.get("repeat"):
                expected["_played"] = True  # stays: answers every further identical request
            else:
                self.exchanges.pop(0)
            self.played.append({"api": expected["api"], "method": method, "path": parts.path, "query": query,
                                "body": body})
        response = expected.get("response") or {}
        return response.get("status", 200), response.get("headers") or {}, response.get("body")

    @staticmethod
    def _compare(expected, method, path, query, headers, body):
        request = expected["request"]
        if method != request["method"]:
            return "method: expected %s" % request["method"]
        if path != request["path"]:
            return "path: expected %s" % request["path"]
        for key, value in (request.get("query") or {}).items():
            if query.get(key) != value:
                return "query %s: expected %r, got %r" % (key, value, query.get(key))
        if headers.get("Authorization") != "Bearer %s" % TOKEN:
            return "no bearer token sent"
        for dotted in request.get("json_absent") or []:
            node = body
            for key in dotted.split("."):
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                return "body.%s: must not be sent (read-only), got %r" % (dotted, node)
        if "json" in request:
            if body is None:
                return "expected a JSON body"
            return subset_mismatch(request["json"], body)
        if request.get("no_body") and body is not None:
            return "expected no body, got %r" % (body,)
        return None

    @staticmethod
    def _mismatch(problem):
        return 400, {}, {"error": {"code": "FixtureMismatch", "message": problem}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw.decode("utf-8")) if raw.strip() else None
                status, headers, payload = server._answer(self.command, self.path, self.headers, body)
                data = b"" if payload is None else json.dumps(payload).encode("utf-8")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, str(value))
                self.send_header("x-ms-request-id", "fixture-%d" % len(server.played))
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _serve

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        return Handler


class AzureHarness(object):
    """What test_contract.py::test_lifecycle needs: a provider wired to the fixture server, and the
    cluster-level settings the recorded exchanges are keyed on (fixed name, region)."""

    def __init__(self, provider, cluster, pool):
        self.provider, self.cluster, self.pool = provider, cluster, pool
        # Azure does what it is asked by itself: the recorded exchanges already hold the scaled pool.
        self.after_change = lambda name: None


def azure_harness(request):
    """Contract harness: a fixture server playing fixtures/azure/lifecycle.json, checked at teardown."""
    from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider

    server = FixtureServer(str(request.getfixturevalue("tmp_path")))

    def finish():
        try:
            server.verify()
        finally:
            server.close()

    request.addfinalizer(finish)
    server.play("lifecycle")
    return AzureHarness(AzureProvider(server.provider_options(), "eastus"), {"name": "llmops-ut", "region": "eastus"}, {})
