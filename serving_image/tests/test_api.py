"""OpenAI-compatible API against the real server process (real HTTP, real torch)."""
from __future__ import annotations

import json

import httpx
import pytest

from conftest import KEYS


def _sse_events(resp: httpx.Response) -> list:
    events = []
    for line in resp.iter_lines():
        if line.startswith("data: "):
            data = line[6:]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_models(client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert body["data"][0]["id"] == "tiny"


def test_completion_basic_usage_and_request_id(client):
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": "Hello there", "max_tokens": 7,
                                             "ignore_eos": True}, headers={"x-request-id": "req-123"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-123"
    body = r.json()
    assert body["object"] == "text_completion"
    assert len(body["choices"]) == 1
    ch = body["choices"][0]
    assert ch["finish_reason"] == "length"
    assert isinstance(ch["text"], str) and ch["text"]
    u = body["usage"]
    assert u["completion_tokens"] == 7
    assert u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + 7


def test_completion_batch_list_of_prompts(client):
    prompts = ["The quick brown fox", "Rivers run to the sea", "Hello"]
    r = client.post("/v1/completions", json={"prompt": prompts, "max_tokens": 5, "ignore_eos": True,
                                             "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(c["index"] for c in body["choices"]) == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 15
    # each choice equals the same prompt sent alone (batching must not change greedy results)
    for i, p in enumerate(prompts):
        single = client.post("/v1/completions", json={"prompt": p, "max_tokens": 5, "ignore_eos": True,
                                                      "temperature": 0}).json()
        assert single["choices"][0]["text"] == body["choices"][i]["text"]


def test_greedy_is_deterministic_and_seed_reproducible(client):
    req = {"prompt": "Once upon a time", "max_tokens": 12, "ignore_eos": True}
    a = client.post("/v1/completions", json={**req, "temperature": 0}).json()["choices"][0]["text"]
    b = client.post("/v1/completions", json={**req, "temperature": 0}).json()["choices"][0]["text"]
    assert a == b
    s1 = client.post("/v1/completions", json={**req, "temperature": 1.0, "seed": 42}).json()["choices"][0]["text"]
    s2 = client.post("/v1/completions", json={**req, "temperature": 1.0, "seed": 42}).json()["choices"][0]["text"]
    s3 = client.post("/v1/completions", json={**req, "temperature": 1.0, "seed": 43}).json()["choices"][0]["text"]
    assert s1 == s2
    assert s1 != s3
    # top_k=1 is greedy whatever the temperature
    k1 = client.post("/v1/completions", json={**req, "temperature": 1.5, "top_k": 1, "seed": 7}).json()
    assert k1["choices"][0]["text"] == a


def test_n_choices(client):
    r = client.post("/v1/completions", json={"prompt": "Numbers like", "max_tokens": 6, "n": 3, "seed": 1,
                                             "ignore_eos": True})
    body = r.json()
    assert r.status_code == 200, r.text
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 18
    assert len({c["text"] for c in body["choices"]}) > 1


def test_stop_sequence(client):
    base = {"prompt": "The server reads a request", "max_tokens": 40, "temperature": 0, "ignore_eos": True}
    full = client.post("/v1/completions", json=base).json()["choices"][0]["text"]
    assert len(full) > 10
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut = full.index(stop)
    r = client.post("/v1/completions", json={**base, "stop": [stop]}).json()
    assert r["choices"][0]["text"] == full[:cut]
    assert r["choices"][0]["finish_reason"] == "stop"
    # streamed text obeys the stop too, and never leaks the stop string
    with client.stream("POST", "/v1/completions", json={**base, "stop": stop, "stream": True}) as resp:
        ev = _sse_events(resp)
    text = "".join(e["choices"][0]["text"] for e in ev if e != "[DONE]" and e.get("choices"))
    assert text == full[:cut]


def test_chat_completion(client):
    r = client.post("/v1/chat/completions", json={
        "model": "tiny", "max_tokens": 8, "ignore_eos": True,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)
    # the chat template was applied: prompt tokens include the role markers
    assert body["usage"]["prompt_tokens"] >= 8
    assert body["usage"]["completion_tokens"] == 8


def test_streaming_completion_sse(client):
    with client.stream("POST", "/v1/completions", json={"prompt": "Hello", "max_tokens": 10, "stream": True,
                                                         "ignore_eos": True, "temperature": 0}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 10
    text = "".join(c["choices"][0]["text"] for c in chunks)
    same = client.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 10, "ignore_eos": True,
                                                "temperature": 0}).json()
    assert text == same["choices"][0]["text"]


def test_streaming_chat_include_usage(client):
    with client.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Tell me"}], "max_tokens": 6, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}) as resp:
        events = _sse_events(resp)
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 6
    assert any(e["choices"] and e["choices"][0]["finish_reason"] == "length" for e in events[:-1])


@pytest.mark.parametrize("body, param", [
    ({"prompt": "", "max_tokens": 5}, "prompt"),
    ({"prompt": [], "max_tokens": 5}, "prompt"),
    ({"prompt": "hi", "temperature": -0.5}, "temperature"),
    ({"prompt": "hi", "max_tokens": 3000}, "max_tokens"),
    ({"prompt": ["a", "b", "c", "d", "e"], "max_tokens": 2}, "prompt"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "hi", "top_p": 1.5}, "top_p"),
    ({"prompt": "hi", "n": 100}, "n"),
    ({"prompt": "hi", "stop": 5}, "stop"),
    ({"max_tokens": 5}, "prompt"),
    ({"prompt": "hi", "logprobs": 3}, "logprobs"),
])
def test_validation_errors_name_the_field(client, body, param):
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert err["message"]


def test_context_length_exceeded(client):
    long_prompt = [100] * 1500  # token ids: exactly 1500 tokens; context is 2048
    r = client.post("/v1/completions", json={"prompt": long_prompt, "max_tokens": 1000})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert r.json()["error"]["param"] == "max_tokens"
    r = client.post("/v1/completions", json={"prompt": [100] * 2100, "max_tokens": 1})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_chat_validation(client):
    r = client.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                  "temperature": -1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"


def test_body_too_large_and_bad_json(client):
    r = client.post("/v1/completions", content=b'{"prompt": "' + b"a" * 70000 + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "body"
    assert r.json()["error"]["code"] == "request_too_large"
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_unknown_model_and_route(client):
    r = client.post("/v1/completions", json={"model": "gpt-17", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_health_routes_are_open(server):
    assert httpx.get(server.url + "/livez").status_code == 200
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert httpx.get(server.url + "/metrics").status_code == 200


def test_metrics_names_and_values(server, client):
    client.post("/v1/completions", json={"prompt": "metrics please", "max_tokens": 4, "ignore_eos": True})
    text = httpx.get(server.url + "/metrics").text
    for name in ("llmops_http_requests_total", "llmops_http_request_duration_seconds_bucket",
                 "llmops_time_to_first_token_seconds_bucket", "llmops_time_per_output_token_seconds_bucket",
                 "llmops_queue_length", "llmops_running_batch_size", "llmops_prompt_tokens_total",
                 "llmops_generation_tokens_total", "llmops_rate_limit_rejections_total",
                 "llmops_auth_failures_total", "llmops_pii_redactions_total"):
        assert name in text, name
    assert 'llmops_http_requests_total{method="POST",route="/v1/completions",status="200"}' in text
    assert server.metric("llmops_generation_tokens_total") >= 4
    assert server.metric("llmops_time_to_first_token_seconds_count") >= 1


def test_continuous_batching_short_request_overtakes_long(server, auth):
    """A short request that arrives while a long one runs joins the batch and leaves it first."""
    import threading
    import time

    result = {}

    def long_req():
        r = httpx.post(server.url + "/v1/completions", headers=auth, timeout=60,
                       json={"prompt": "long", "max_tokens": 1500, "ignore_eos": True})
        result["long_done"] = time.monotonic()
        result["long"] = r

    t = threading.Thread(target=long_req)
    t.start()
    deadline = time.monotonic() + 10
    while server.metric("llmops_running_batch_size") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    r = httpx.post(server.url + "/v1/completions", headers=auth, timeout=60,
                   json={"prompt": "short", "max_tokens": 3, "ignore_eos": True})
    short_done = time.monotonic()
    assert r.status_code == 200
    t.join(60)
    assert result["long"].status_code == 200
    assert result["long"].json()["usage"]["completion_tokens"] == 1500
    assert short_done < result["long_done"]


def test_openai_client_unchanged(server):
    import openai

    c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEYS["bob"], max_retries=0)
    assert [m.id for m in c.models.list().data] == ["tiny"]
    comp = c.completions.create(model="tiny", prompt="Hello", max_tokens=5, extra_body={"ignore_eos": True})
    assert comp.choices[0].text and comp.usage.completion_tokens == 5
    chat = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
                                     temperature=0.7, top_p=0.9, seed=3, stop=["\n\n\n"],
                                     extra_body={"ignore_eos": True})
    assert chat.choices[0].message.role == "assistant" and chat.usage.total_tokens > 5
    text = ""
    for chunk in c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=5, stream=True, extra_body={"ignore_eos": True}):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text
    parts = [ch.choices[0].text for ch in c.completions.create(model="tiny", prompt="Hello", max_tokens=5,
                                                                  stream=True, extra_body={"ignore_eos": True})]
    assert "".join(parts)
    with pytest.raises(openai.BadRequestError) as ei:
        c.completions.create(model="tiny", prompt="hi", temperature=-1)
    assert ei.value.body["param"] == "temperature"
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
