"""roles/grafana/tasks/api.yml (admin password check, service account, token) run by ansible-playbook against
a stand-in for Grafana's HTTP API on loopback.

Grafana cannot be installed here, so the server is a small stand-in that answers the documented endpoints
the role calls (/api/health, /api/user, /api/serviceaccounts/search, POST /api/serviceaccounts, PATCH
/api/serviceaccounts/<id>, GET/POST/DELETE /api/serviceaccounts/<id>/tokens, /api/search with a bearer
token) with the documented response shapes. It checks what the role sends; it does not prove Grafana
answers the same way (docs/observability.md says so).
"""
import base64
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "grafana"
PASSWORD = "stand-in-admin-password-42"


class FakeGrafana:
    def __init__(self):
        self.accounts, self.tokens, self.requests = {}, {}, []
        self.ids = itertools.count(1)

    def admin(self, headers):
        expected = "Basic " + base64.b64encode(("admin:" + PASSWORD).encode()).decode()
        return headers.get("Authorization") == expected

    def handle(self, method, path, headers, body):
        self.requests.append((method, path))
        if path == "/api/health":
            return 200, {"database": "ok", "version": "12.3.1"}
        bearer = headers.get("Authorization", "")
        if path.startswith("/api/search") and bearer.startswith("Bearer "):
            valid = any(t["key"] == bearer[len("Bearer "):] for t in self.tokens.values())
            return (200, []) if valid else (401, {"message": "invalid API key"})
        if not self.admin(headers):
            return 401, {"message": "invalid username or password"}
        if path == "/api/user":
            return 200, {"id": 1, "login": "admin", "isGrafanaAdmin": True}
        match = re.fullmatch(r"/api/serviceaccounts/search\?query=(.*)", path)
        if match and method == "GET":
            found = [a for a in self.accounts.values() if match.group(1) in a["name"]]
            return 200, {"totalCount": len(found), "serviceAccounts": found, "page": 1, "perPage": 1000}
        if path == "/api/serviceaccounts" and method == "POST":
            account = {"id": next(self.ids), "name": body["name"], "login": "sa-" + body["name"], "orgId": 1,
                       "isDisabled": body.get("isDisabled", False), "role": body["role"], "tokens": 0}
            self.accounts[account["id"]] = account
            return 201, account
        match = re.fullmatch(r"/api/serviceaccounts/(\d+)", path)
        if match and method == "PATCH":
            self.accounts[int(match.group(1))].update(role=body["role"])
            return 200, {"message": "Service account updated", "serviceaccount": self.accounts[int(match.group(1))]}
        match = re.fullmatch(r"/api/serviceaccounts/(\d+)/tokens", path)
        if match and method == "GET":
            owner = int(match.group(1))
            return 200, [{"id": t["id"], "name": t["name"], "hasExpired": False}
                         for t in self.tokens.values() if t["owner"] == owner]
        if match and method == "POST":
            token = {"id": next(self.ids), "name": body["name"], "owner": int(match.group(1)),
                     "key": "glsa_standin_%d" % next(self.ids)}
            assert isinstance(body.get("secondsToLive"), int)
            self.tokens[token["id"]] = token
            return 200, {"id": token["id"], "name": token["name"], "key": token["key"]}
        match = re.fullmatch(r"/api/serviceaccounts/(\d+)/tokens/(\d+)", path)
        if match and method == "DELETE":
            del self.tokens[int(match.group(2))]
            return 200, {"message": "Service account token deleted"}
        return 404, {"message": "not found"}


@pytest.fixture
def grafana():
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = "http://127.0.0.1:%d" % server.server_address[1]
    yield fake
    server.shutdown()
    server.server_close()


def run_api_tasks(fake, tmp_path, check=False, **extra):
    token_file = tmp_path / "secrets" / "sa.token"
    token_file.parent.mkdir(exist_ok=True)
    variables = {"grafana_admin_password": PASSWORD, "grafana_api_url": fake.url,
                 "grafana_service_account_token_file": str(token_file)}
    # The controller's own Python runs the modules (interpreter discovery may find another one).
    variables["ansible_python_interpreter"] = sys.executable
    variables.update(extra)
    playbook = tmp_path / "api.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Run the role's API tasks", "ansible.builtin.include_role": {
            "name": str(ROLE), "tasks_from": "api.yml"}, "vars": variables}]}]))
    command = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-v", str(playbook)] + (["--check"] if check else [])
    result = subprocess.run(command,
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    changed = int(re.search(r"localhost\s*:.*changed=(\d+)", output).group(1))
    return output, changed, token_file


def test_service_account_and_token_lifecycle(grafana, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the role writes the token file as root:root; run the unit tests as root (as CI does)")

    output, changed, token_file = run_api_tasks(grafana, tmp_path)
    (account,) = grafana.accounts.values()
    assert account["name"] == "llmops-automation" and account["role"] == "Viewer"
    (token,) = grafana.tokens.values()
    assert token["name"] == "llmops-backup" and token_file.read_text() == token["key"]
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert changed >= 2
    assert token["key"] not in output and PASSWORD not in output, "a secret reached the log"

    # Second run: nothing to do, and nothing is written to Grafana.
    grafana.requests.clear()
    output, changed, token_file = run_api_tasks(grafana, tmp_path)
    assert changed == 0, output
    assert {request[0] for request in grafana.requests} <= {"GET"}, grafana.requests

    # The token was deleted in Grafana: the next run replaces it and stores the new one.
    grafana.tokens.clear()
    output, changed, token_file = run_api_tasks(grafana, tmp_path)
    (new_token,) = grafana.tokens.values()
    assert new_token["key"] != token["key"] and token_file.read_text() == new_token["key"]
    assert new_token["key"] not in output

    # The stored token's value was lost: the old token of that name is deleted, a new one created.
    token_file.unlink()
    grafana.requests.clear()
    run_api_tasks(grafana, tmp_path)
    assert ("DELETE", "/api/serviceaccounts/%d/tokens/%d" % (account["id"], new_token["id"])) in grafana.requests
    (third,) = grafana.tokens.values()
    assert token_file.read_text() == third["key"]

    # A role change is applied in place.
    output, changed, token_file = run_api_tasks(grafana, tmp_path, grafana_service_account_role="Editor")
    assert grafana.accounts[account["id"]]["role"] == "Editor" and changed == 1, output
    assert len(grafana.accounts) == 1


def test_check_mode_changes_nothing(grafana, tmp_path):
    token_file = run_api_tasks(grafana, tmp_path, check=True)[2]
    assert not grafana.accounts and not grafana.tokens
    assert {request[0] for request in grafana.requests} <= {"GET"}, grafana.requests
    assert not token_file.exists()
