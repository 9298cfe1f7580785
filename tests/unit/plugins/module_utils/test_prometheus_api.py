"""PrometheusApi over real HTTP on loopback: what it sends, and the errors it turns answers into.
(test_prometheus_snapshot.py runs it against a real Prometheus; this covers what that one cannot stage.)"""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError
from ansible_collections.llmops.platform.plugins.module_utils.prometheus_api import ADMIN_API_HINT, PrometheusApi


class Server(object):
    """Answers every request with `status` and `body`, and records what it was asked."""

    def __init__(self):
        self.status, self.body, self.seen = 200, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                payload = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


def test_snapshot_posts_with_the_token_and_returns_the_name(server):
    server.body = {"status": "success", "data": {"name": "20261122T020000Z-2be650b6d019eb54"}}
    api = PrometheusApi(server.url, bearer_token="t0ken", timeout=5)
    assert api.snapshot(skip_head=True) == "20261122T020000Z-2be650b6d019eb54"
    assert server.seen == [("POST", "/api/v1/admin/tsdb/snapshot?skip_head=true", "Bearer t0ken")]


def test_an_answer_without_a_snapshot_is_an_error(server):
    server.body = {"status": "error", "error": "disk full"}
    with pytest.raises(ProviderError) as raised:
        PrometheusApi(server.url, timeout=5).snapshot()
    assert "did not take a snapshot" in str(raised.value) and "disk full" in str(raised.value)
    assert server.seen[0][2] is None, "no Authorization header without a token"


def test_a_refusal_says_how_to_enable_the_admin_api(server):
    server.status, server.body = 404, {"error": "not found"}
    with pytest.raises(ProviderError) as raised:
        PrometheusApi(server.url, timeout=5).runtime_info()
    assert raised.value.code == 404 and raised.value.hint == ADMIN_API_HINT


def test_nothing_listening_asks_whether_prometheus_runs():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    with pytest.raises(ProviderError) as raised:
        PrometheusApi(url, timeout=5).runtime_info()
    assert raised.value.hint == "is Prometheus running at %s?" % url
