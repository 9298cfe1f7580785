"""Auth (API keys, JWT), rate limits (memory and Redis), PII masking and access logs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time

import httpx
import jwt
import pytest

from conftest import KEYS, free_port
from llmops_serving.auth import AuthError, Authenticator, parse_key_hashes
from llmops_serving.config import Settings
from llmops_serving.pii import PIIFilter, iban_ok, luhn_ok

COMPLETION = {"prompt": "Hello", "max_tokens": 2, "ignore_eos": True}


def _jwt_hs(secrets_dir, **claims):
    base = {"sub": "carol", "iss": "https://issuer.test", "aud": "llmops", "exp": int(time.time()) + 300}
    base.update(claims)
    base = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(base, (secrets_dir / "hs256.secret").read_bytes().strip(), algorithm="HS256")


def _jwt_rs(secrets_dir, key_name="rsa1", kid="k1", **claims):
    base = {"sub": "dave", "iss": "https://issuer.test", "aud": "llmops", "exp": int(time.time()) + 300}
    base.update(claims)
    return jwt.encode(base, (secrets_dir / f"{key_name}.pem").read_bytes(), algorithm="RS256",
                      headers={"kid": kid} if kid else None)


def _post(server, token, body=COMPLETION, path="/v1/completions"):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30)


# ----------------------------------------------------------------------------- API keys
def test_api_keys_required_and_named(server):
    before = server.metric("llmops_auth_failures_total")
    r = _post(server, None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing"
    r = _post(server, "sk-not-a-key")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert _post(server, KEYS["alice"]).status_code == 200
    assert _post(server, KEYS["bob"]).status_code == 200
    assert httpx.get(server.url + "/v1/models").status_code == 401
    assert server.metric("llmops_auth_failures_total") >= before + 3


def test_key_store_holds_only_hashes(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        parse_key_hashes("alice:sk-plaintext-key")
    h = hashlib.sha256(b"k1").hexdigest()
    assert parse_key_hashes(f"a:{h}\n# comment\nb:sha256:{h}") == {"a": h, "b": h}
    assert parse_key_hashes(json.dumps({"svc": h})) == {"svc": h}
    f = tmp_path / "keys.yaml"
    f.write_text(f"team-a: {h}\nteam-b: {hashlib.sha256(b'k2').hexdigest()}\n")
    auth = Authenticator(Settings(api_keys_file=str(f)))
    assert auth.authenticate({"authorization": "Bearer k2"}).name == "team-b"
    with pytest.raises(ValueError, match="no API key hashes"):
        Authenticator(Settings())


# ----------------------------------------------------------------------------- JWT
def test_jwt_hs256_and_rs256_accepted(server, secrets_dir):
    assert _post(server, _jwt_hs(secrets_dir)).status_code == 200
    assert _post(server, _jwt_rs(secrets_dir)).status_code == 200


def _hs256_signed_with(secret: bytes) -> str:
    """An HS256 token whose HMAC key is `secret`, built by hand: PyJWT refuses to use a PEM public key as an
    HMAC secret, which is exactly what the key-confusion attack does."""
    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    claims = {"sub": "mallory", "iss": "https://issuer.test", "aud": "llmops", "exp": int(time.time()) + 60}
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


# Each rejection has its own error code and says why (the code is what clients branch on).
JWT_REJECTIONS = {
    "expired": ("expired_token", "expired"),
    "audience": ("invalid_token", "audience not accepted"),
    "issuer": ("invalid_token", "issuer not accepted"),
    "no_exp": ("invalid_token", "could not be verified"),
    "wrong_secret": ("invalid_token", "could not be verified"),
    "rs_wrong_key": ("invalid_token", "could not be verified"),
    "rs_unknown_kid": ("invalid_token", "Unknown JWT key id"),
    "alg_none": ("invalid_token", "algorithm not accepted"),
    # RS256/HS256 key confusion: the server's own RSA public key used as an HMAC secret.
    "hs_signed_with_rsa_public_key": ("invalid_token", "could not be verified"),
}


@pytest.mark.parametrize("case", sorted(JWT_REJECTIONS))
def test_jwt_rejections(server, secrets_dir, case):
    if case == "expired":
        tok = _jwt_hs(secrets_dir, exp=int(time.time()) - 3600)
    elif case == "audience":
        tok = _jwt_hs(secrets_dir, aud="someone-else")
    elif case == "issuer":
        tok = _jwt_hs(secrets_dir, iss="https://evil.test")
    elif case == "no_exp":
        tok = _jwt_hs(secrets_dir, exp=None)
    elif case == "wrong_secret":
        tok = jwt.encode({"sub": "x", "iss": "https://issuer.test", "aud": "llmops", "exp": int(time.time()) + 60},
                         b"0" * 40, algorithm="HS256")
    elif case == "rs_wrong_key":
        tok = _jwt_rs(secrets_dir, key_name="rsa2")
    elif case == "rs_unknown_kid":
        tok = _jwt_rs(secrets_dir, kid="nope")
    elif case == "hs_signed_with_rsa_public_key":
        tok = _hs256_signed_with((secrets_dir / "rsa1.pub.pem").read_bytes())
    else:
        tok = jwt.encode({"sub": "x", "iss": "https://issuer.test", "aud": "llmops", "exp": int(time.time()) + 60},
                         None, algorithm="none")
    r = _post(server, tok)
    assert r.status_code == 401, (case, r.text)
    assert r.headers.get("www-authenticate") == "Bearer"
    code, why = JWT_REJECTIONS[case]
    assert r.json()["error"]["code"] == code, (case, r.text)
    assert why in r.json()["error"]["message"], (case, r.text)


def test_jwt_key_confusion_with_only_an_rsa_key(secrets_dir):
    """With only an RSA public key configured, an HS256 token keyed with that public key is refused for
    its algorithm, before any signature check could treat the PEM as a shared secret."""
    auth = Authenticator(Settings(jwt_public_key_file=str(secrets_dir / "rsa1.pub.pem"), jwt_audience="llmops"))
    forged = _hs256_signed_with((secrets_dir / "rsa1.pub.pem").read_bytes())
    with pytest.raises(AuthError) as refused:
        auth.authenticate({"authorization": f"Bearer {forged}"})
    assert refused.value.reason == "invalid_token" and "algorithm not accepted" in refused.value.message


def test_jwt_rs256_pem_public_key(secrets_dir):
    auth = Authenticator(Settings(jwt_public_key_file=str(secrets_dir / "rsa2.pub.pem"), jwt_audience="llmops"))
    tok = _jwt_rs(secrets_dir, key_name="rsa2", kid=None)
    assert auth.authenticate({"authorization": f"Bearer {tok}"}).name == "dave"
    with pytest.raises(AuthError):
        auth.authenticate({"authorization": f"Bearer {_jwt_rs(secrets_dir, key_name='rsa1', kid=None)}"})


# ----------------------------------------------------------------------------- rate limits
def test_rate_limits_in_memory(start_server):
    srv = start_server(LLMOPS_RATE_LIMIT_RPM=3, LLMOPS_RATE_LIMIT_TPM=1000)
    seen = []
    for _ in range(3):
        r = _post(srv, KEYS["alice"])
        assert r.status_code == 200, r.text
        seen.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-limit-tokens"] == "1000"
        assert "x-ratelimit-reset-requests" in r.headers and "x-ratelimit-remaining-tokens" in r.headers
    assert seen == [2, 1, 0]
    r = _post(srv, KEYS["alice"])
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    # limits are per principal: bob is not affected, but his token budget is separate
    r = _post(srv, KEYS["bob"], {"prompt": "Hello", "max_tokens": 1500})
    assert r.status_code == 429 and "tokens" in r.json()["error"]["message"]
    assert "x-ratelimit-remaining-tokens" in r.headers
    assert _post(srv, KEYS["bob"]).status_code == 200
    assert srv.metric("llmops_rate_limit_rejections_total") == 2


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        # A skip here would report the Redis backend as tested when it was not (scripts/test.sh installs it).
        pytest.fail("redis-server is not installed (apt-get install redis-server, or run "
                    "serving_image/scripts/test.sh as root, which installs it): the Redis rate-limit backend "
                    "cannot be tested")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def test_rate_limits_shared_through_redis(start_server, redis_url):
    env = dict(LLMOPS_RATE_LIMIT_RPM=4, LLMOPS_RATE_LIMIT_TPM=100000, LLMOPS_REDIS_URL=redis_url)
    a = start_server(**env)
    b = start_server(**env)
    codes = [_post(s, KEYS["alice"]).status_code for s in (a, b, a, b)]
    assert codes == [200, 200, 200, 200]
    r = _post(a, KEYS["alice"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = _post(b, KEYS["alice"])
    assert r.status_code == 429
    assert _post(b, KEYS["bob"]).status_code == 200
    import redis
    keys = redis.Redis.from_url(redis_url).keys("llmops:rl:*")
    assert sorted(k.decode() for k in keys) == ["llmops:rl:alice", "llmops:rl:bob"]


# ----------------------------------------------------------------------------- PII
@pytest.mark.parametrize("text, kind", [
    ("write to jane.roe@example.org today", "email"),
    ("call +44 20 7946 0958 now", "phone"),
    ("card 4111-1111-1111-1111 exp", "card"),
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "iban"),
    ("ssn 078-05-1120 on file", "ssn"),
    ("from 10.20.30.40 and", "ip"),
    ("v6 2001:db8:0:0:1:0:0:1 addr", "ip"),
])
def test_pii_detectors(text, kind):
    masked, findings = PIIFilter("mask").apply(text)
    assert [f.type for f in findings] == [kind]
    assert f"[{kind.upper()}]" in masked
    redacted, _ = PIIFilter("redact").apply(text)
    assert "[REDACTED]" in redacted and f"[{kind.upper()}]" not in redacted
    unchanged, found = PIIFilter("reject").apply(text)
    assert unchanged == text and found


def test_pii_checksums_avoid_false_positives():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    text = "order 4111 1111 1111 1112, IBAN GB82 WEST 1234 5698 7654 33, version 3.14, date 2026-11-22"
    assert PIIFilter("mask").find(text) == []


def test_pii_mask_on_server_and_metrics_auth(start_server, model_dir):
    from transformers import AutoTokenizer
    srv = start_server(LLMOPS_PII_MODE="mask", LLMOPS_METRICS_REQUIRE_AUTH="true", LLMOPS_LOG_PROMPTS="true")
    secret_mail = "zq.unique.person@example.com"
    r = _post(srv, KEYS["alice"], {"prompt": f"contact {secret_mail} soon", "max_tokens": 2, "ignore_eos": True})
    assert r.status_code == 200
    tok = AutoTokenizer.from_pretrained(model_dir)
    # the model saw the masked prompt
    assert r.json()["usage"]["prompt_tokens"] == len(tok.encode("contact [EMAIL] soon", add_special_tokens=False))
    assert httpx.get(srv.url + "/metrics").status_code == 401
    auth = {"Authorization": f"Bearer {KEYS['alice']}"}
    assert srv.metric('llmops_pii_redactions_total', headers=auth) == 1
    time.sleep(0.2)
    # prompt logging was switched on here, and it logs the masked prompt only
    assert secret_mail not in srv.log()
    prompts = [json.loads(x)["llm"]["prompt"] for x in srv.log().splitlines()
               if x.startswith("{") and '"prompt": [' in x]
    assert prompts and "[EMAIL]" in prompts[0][0]


def test_pii_reject_on_server(start_server):
    srv = start_server(LLMOPS_PII_MODE="reject")
    r = _post(srv, KEYS["alice"], {"prompt": "my card is 4111 1111 1111 1111", "max_tokens": 2})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "pii_detected" and err["param"] == "prompt" and "card" in err["message"]
    assert "4111" not in err["message"] and "4111 1111 1111 1111" not in srv.log()
    r = _post(srv, KEYS["alice"], {"messages": [{"role": "user", "content": "mail a@b.io"}], "max_tokens": 2},
              path="/v1/chat/completions")
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert _post(srv, KEYS["alice"], {"prompt": "nothing personal", "max_tokens": 2}).status_code == 200


def test_completion_pii_streaming_buffer():
    from llmops_serving.routes.completions import CompletionPII
    from llmops_serving.metrics import Metrics

    class St:
        settings = Settings(pii_mode="redact")
        metrics = Metrics()

    c = CompletionPII(St())
    out = c.feed(0, "mail jo", False) + c.feed(0, "e@exam", False) + c.feed(0, "ple.com\nnext ", False)
    out += c.feed(0, "line", True)
    assert out == "mail [REDACTED]\nnext line"


# ----------------------------------------------------------------------------- access logs
def test_access_log_is_ecs_json_without_prompt_text(server):
    marker = "UNIQUEPROMPTMARKER"
    r = httpx.post(server.url + "/v1/completions", json={"prompt": marker, "max_tokens": 2, "ignore_eos": True},
                   headers={"Authorization": f"Bearer {KEYS['bob']}", "x-request-id": "log-test-1"}, timeout=30)
    assert r.status_code == 200
    time.sleep(0.2)
    log = server.log()
    assert marker not in log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    mine = [x for x in records if x.get("http", {}).get("request", {}).get("id") == "log-test-1"]
    assert len(mine) == 1
    rec = mine[0]
    assert rec["user"]["name"] == "bob"
    assert rec["http"]["response"]["status_code"] == 200
    assert rec["http"]["request"]["method"] == "POST"
    assert rec["url"]["path"] == "/v1/completions"
    assert rec["event"]["dataset"] == "llmops.access" and rec["event"]["duration"] > 0
    assert rec["llm"]["usage"]["completion_tokens"] == 2
    assert rec["@timestamp"].endswith("Z") and rec["log"]["level"] == "info"
