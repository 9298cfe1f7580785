"""endpoint_check pieces that need no server: metrics parsing, argument checks, readiness backoff.

The checks against a real llmops-serve process are in tests/unit/plugins/modules/test_llm_endpoint_check.py.
"""
import socket

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import endpoint_check
from ansible_collections.llmops.platform.plugins.module_utils.endpoint_check import Answer, EndpointCheck, parse_metrics
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError


def test_parse_metrics_reads_prometheus_text():
    text = "\n".join([
        "# HELP llmops_ready 1 when ready",
        "# TYPE llmops_ready gauge",
        "llmops_ready 1.0",
        'llmops_http_requests_total{method="GET",route="/readyz",status="200"} 3.0',
        'llmops_http_requests_total{method="POST",route="/v1/completions",status="401"} 2.0 1712345678000',
        "process_open_fds 12",
        "go_gc_duration_seconds NaN",
    ])
    samples = parse_metrics(text)
    assert samples["llmops_ready"] == [1.0]
    assert samples["llmops_http_requests_total"] == [3.0, 2.0]
    assert samples["process_open_fds"] == [12.0]


@pytest.mark.parametrize("text, problem", [
    ("<html>login</html>", "line 1 is not a Prometheus sample"),
    ("llmops_ready yes", "line 1 has a non-numeric value"),
])
def test_parse_metrics_rejects_what_is_not_exposition_format(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_metrics(text)


@pytest.mark.parametrize("url, field", [("127.0.0.1:8080", "url"), ("ftp://x", "url"), ("", "url")])
def test_url_must_be_http(url, field):
    with pytest.raises(SpecError) as err:
        EndpointCheck(url)
    assert err.value.field == field


@pytest.mark.parametrize("kwargs, field", [
    ({"max_tokens": 0}, "max_tokens"), ({"slo_seconds": 0}, "slo_seconds"),
    ({"ready_timeout": -1}, "ready_timeout"), ({"timeout": 0}, "timeout"),
])
def test_numbers_are_checked(kwargs, field):
    with pytest.raises(SpecError) as err:
        EndpointCheck("http://127.0.0.1:1", **kwargs)
    assert err.value.field == field


def test_answer_describe_uses_openai_errors_and_readyz_reasons():
    assert Answer(401, b'{"error": {"message": "Invalid API key", "code": "invalid_api_key"}}').describe() == \
        "401 (invalid_api_key: Invalid API key)"
    assert Answer(503, b'{"status": "unavailable", "reason": "loading"}').describe() == "503 (reason: loading)"
    assert Answer(None, error="URLError: refused").describe() == "URLError: refused"


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_readiness_backs_off_and_stops_at_the_deadline():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = FakeClock()
    check = EndpointCheck("http://127.0.0.1:%d" % port, ready_timeout=60, clock=clock, sleep=clock.sleep)
    result = check.run()
    assert result["failed_checks"] == ["readiness"]
    assert result["ready_after_seconds"] is None
    # Delays grow (jitter keeps each within [d/2, d]) up to the 10 s cap, and the last one stops at the deadline.
    assert clock.sleeps[0] <= 0.5 and clock.sleeps[1] <= 1.0 and clock.sleeps[2] <= 2.0
    assert max(clock.sleeps) <= 10.0
    assert sum(clock.sleeps) == pytest.approx(60.0)
    assert check.failure_message(result).startswith("http://127.0.0.1:%d failed the smoke test: not ready" % port)


def test_readiness_hints():
    assert "still loading" in endpoint_check._readiness_hint(Answer(503, b'{"reason": "loading"}'))
    assert "ca_path" in endpoint_check._readiness_hint(Answer(None, error="SSLError: CERTIFICATE_VERIFY_FAILED"))
    assert "no /readyz" in endpoint_check._readiness_hint(Answer(404, b"not found"))


@pytest.fixture
def tls_readyz(tmp_path):
    """A loopback HTTPS server whose /readyz answers 200, with a certificate from a CA made here:
    enough to prove validate_certs and ca_path reach the TLS layer (the routes are tested on the real server)."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ansible_collections.llmops.platform.tests.unit.plugins.module_utils.providers.azure_fixture_server import (
        make_certificate)

    cert, key = make_certificate(str(tmp_path))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % httpd.server_address[1], cert
    httpd.shutdown()
    httpd.server_close()


def test_tls_needs_the_ca_and_takes_ca_path(tls_readyz):
    url, ca = tls_readyz
    refused = EndpointCheck(url, ready_timeout=0)
    assert refused.wait_ready() is None
    assert "set ca_path to the CA that signed it" in refused.checks[0]["detail"]
    assert EndpointCheck(url, ready_timeout=0, ca_path=ca).wait_ready() is not None
    assert EndpointCheck(url, ready_timeout=0, validate_certs=False).wait_ready() is not None
