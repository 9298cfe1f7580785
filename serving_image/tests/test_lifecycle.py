"""Readiness, admission control, client disconnects and SIGTERM draining."""
from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import KEYS, free_port

AUTH = {"Authorization": f"Bearer {KEYS['alice']}"}


def _wait_metric(srv, name, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = srv.metric(name)
        if pred(v):
            return v
        time.sleep(0.02)
    raise AssertionError(f"{name} never satisfied the condition (last {srv.metric(name)})")


def _bg_post(url, body, out, key="r"):
    def run():
        try:
            out[key] = httpx.post(url + "/v1/completions", json=body, headers=AUTH, timeout=60)
        except httpx.HTTPError as exc:
            out[key] = exc
    t = threading.Thread(target=run)
    t.start()
    return t


def test_disconnect_removes_sequence_from_batch(server):
    """Stream a long generation (8 choices x 1900 tokens), read one chunk, hang up."""
    before = server.metric("llmops_sequences_cancelled_total")
    body = {"prompt": "Tell me a long story", "max_tokens": 1900, "n": 8, "stream": True, "ignore_eos": True}
    with httpx.Client(timeout=30) as c:
        with c.stream("POST", server.url + "/v1/completions", json=body, headers=AUTH) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()  # keep the iterator alive: leaving it would close the stream
            assert next(line for line in lines if line.startswith("data: "))
            _wait_metric(server, "llmops_running_batch_size", lambda v: v >= 8)
            assert server.metric("llmops_sequences_cancelled_total") == before
    # closing the connection must free all 8 rows at the next steps, long before 1900 tokens are done
    _wait_metric(server, "llmops_running_batch_size", lambda v: v == 0, timeout=5)
    assert server.metric("llmops_sequences_cancelled_total") == before + 8


def test_non_streaming_disconnect_also_cancels(server):
    before = server.metric("llmops_sequences_cancelled_total")
    body = b'{"prompt": "x", "max_tokens": 1900, "n": 4, "ignore_eos": true}'
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + KEYS["alice"].encode() + b"\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        _wait_metric(server, "llmops_running_batch_size", lambda v: v >= 4)
    _wait_metric(server, "llmops_running_batch_size", lambda v: v == 0, timeout=5)
    assert server.metric("llmops_sequences_cancelled_total") == before + 4
    time.sleep(0.2)
    assert '"status_code": 499' in server.log()  # logged as "client closed request"


def test_queue_full_gives_503_with_retry_after(start_server):
    srv = start_server(LLMOPS_MAX_BATCH_SIZE=1, LLMOPS_MAX_QUEUE=1)
    out = {}
    long_body = {"prompt": "a", "max_tokens": 1900, "ignore_eos": True}
    t1 = _bg_post(srv.url, long_body, out, "first")
    _wait_metric(srv, "llmops_running_batch_size", lambda v: v == 1)
    t2 = _bg_post(srv.url, long_body, out, "second")
    _wait_metric(srv, "llmops_queue_length", lambda v: v == 1)
    t0 = time.monotonic()
    r = httpx.post(srv.url + "/v1/completions", json={"prompt": "b", "max_tokens": 2}, headers=AUTH, timeout=10)
    assert time.monotonic() - t0 < 2  # answered at once, not hung
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "service_unavailable"
    assert srv.metric("llmops_queue_rejections_total") == 1
    t1.join(60)
    t2.join(60)
    assert out["first"].status_code == 200 and out["second"].status_code == 200


def test_sigterm_drains_in_flight_then_exits(start_server):
    srv = start_server()
    out = {}
    t = _bg_post(srv.url, {"prompt": "drain me", "max_tokens": 1500, "ignore_eos": True}, out)
    _wait_metric(srv, "llmops_running_batch_size", lambda v: v == 1)
    srv.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        r = httpx.get(srv.url + "/readyz", timeout=2)
        status = r.status_code
        if status == 503:
            assert r.json()["reason"] == "draining"
            break
        time.sleep(0.01)
    assert status == 503
    r = httpx.post(srv.url + "/v1/completions", json={"prompt": "new", "max_tokens": 2}, headers=AUTH, timeout=5)
    assert r.status_code == 503 and "retry-after" in r.headers
    t.join(60)
    assert out["r"].status_code == 200
    assert out["r"].json()["usage"]["completion_tokens"] == 1500
    assert srv.proc.wait(15) == 0
    assert "drain finished" in srv.log()


def test_sigterm_grace_period_is_bounded(start_server):
    srv = start_server(LLMOPS_DRAIN_GRACE_SECONDS=1, LLMOPS_MAX_BATCH_SIZE=1)
    out = {}
    # far more work than 1 s: 3 queued requests of 1900 tokens each
    threads = [_bg_post(srv.url, {"prompt": "x", "max_tokens": 1900, "ignore_eos": True}, out, k) for k in "abc"]
    _wait_metric(srv, "llmops_running_batch_size", lambda v: v == 1)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(20)
    assert time.monotonic() - t0 < 8
    assert code == 0
    for t in threads:
        t.join(10)


def test_readyz_503_while_loading():
    """Real uvicorn on a port; the model load is held back so the loading window is observable."""
    import uvicorn
    from llmops_serving.app import ServerState, create_app
    from llmops_serving.config import Settings

    settings = Settings(auth_enabled=False, model_path="/nonexistent")
    state = ServerState(settings)
    gate = threading.Event()
    state.load_model = lambda: gate.wait(30)  # the loader thread blocks: "still loading"
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_config=None))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert r.status_code == 503 and r.json()["reason"] == "loading"
        assert "retry-after" in r.headers
        assert httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503
    finally:
        gate.set()
        server.should_exit = True
        th.join(10)
