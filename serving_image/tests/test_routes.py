"""The route table (llmops_serving.routes.ENDPOINTS) is the one list of routes. These tests hold
what depends on it to it: the README's API table, authentication, the metric `route` label and
the access log's quiet paths. No model is loaded: the app runs in-process without its engine."""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from llmops_serving.accesslog import ACCESS_LOGGER
from llmops_serving.app import ServerState, create_app
from llmops_serving.config import Settings
from llmops_serving.routes import ENDPOINTS

README = Path(__file__).resolve().parents[1] / "README.md"
KEY = "routes-test-key"


def _calls():
    return [(method, e) for e in ENDPOINTS for method in e.methods]


@pytest.fixture
def app_state():
    settings = Settings(model_path="/nonexistent", api_keys="alice:" + hashlib.sha256(KEY.encode()).hexdigest())
    state = ServerState(settings)
    with TestClient(create_app(state, load_in_background=False)) as client:
        yield client, state


def test_readme_api_table_lists_every_route_with_its_auth():
    # "optional": authentication depends on the settings (LLMOPS_METRICS_REQUIRE_AUTH)
    closed, open_ = Settings(metrics_require_auth=True), Settings(metrics_require_auth=False)
    expected = {}
    for method, e in _calls():
        a, b = e.needs_auth(closed), e.needs_auth(open_)
        expected[f"{method} {e.path}"] = "yes" if a and b else "no" if not (a or b) else "optional"
    documented = {m[1]: m[2] for m in re.finditer(r"^\| `([A-Z]+ /\S*)` \| (\w+) \|", README.read_text(), re.M)}
    assert documented == expected, "serving_image/README.md's API table must list every route in routes.ENDPOINTS"


def test_routes_refuse_callers_without_credentials_unless_declared_open(app_state):
    client, state = app_state
    for method, e in _calls():
        r = client.request(method, e.path)
        if e.needs_auth(state.settings):
            assert r.status_code == 401, (method, e.path)
            assert r.json()["error"]["code"] == "missing"
            # with a key the same call gets past authentication (the model is not loaded: 503 or 200)
            r = client.request(method, e.path, headers={"authorization": f"Bearer {KEY}"})
            assert r.status_code in (200, 503), (method, e.path, r.text)
        else:
            assert r.status_code in (200, 503), (method, e.path, r.text)
    open_paths = {e.path for e in ENDPOINTS if not e.needs_auth(state.settings)}
    assert open_paths == {"/livez", "/healthz", "/readyz", "/metrics"}


def test_metric_route_label_is_the_path_of_every_route_and_other_for_the_rest(app_state):
    client, state = app_state
    for method, e in _calls():
        client.request(method, e.path)
    assert client.get("/no/such/route").status_code == 404
    labels = {s.labels["route"] for m in state.metrics.registry.collect() for s in m.samples
              if s.name == "llmops_http_requests_total"}
    assert labels == {e.path for e in ENDPOINTS} | {"other"}


def test_access_log_skips_quiet_routes_only_while_they_succeed(app_state, caplog):
    client, _ = app_state
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503  # not loaded: a failing probe is logged
        assert client.get("/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    logged = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert logged == ["GET /readyz 503", "GET /v1/models 200"]
