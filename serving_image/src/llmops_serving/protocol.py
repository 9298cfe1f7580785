"""Parse and validate OpenAI request bodies into plain Python values.

Validation is by hand rather than through a schema library so every error can
name the offending field in the OpenAI error shape ("param") with status 400.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import invalid

UNSUPPORTED_NONDEFAULT = {"logprobs": None, "echo": False, "best_of": 1, "suffix": None, "logit_bias": None,
                          "tools": None, "functions": None, "response_format": None}


@dataclass
class GenRequest:
    kind: str                           # "completion" | "chat"
    model: str | None
    prompts: list = field(default_factory=list)      # completion: list of str or list[int]
    messages: list[dict] | None = None  # chat
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    ignore_eos: bool = False
    user: str | None = None


def _num(body: dict, name: str, default, lo=None, hi=None, integer=False, lo_open=False):
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise invalid(f"'{name}' must be {'an integer' if integer else 'a number'}", param=name)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise invalid(f"{v} is less than the minimum of {lo} - '{name}'", param=name)
    if hi is not None and v > hi:
        raise invalid(f"{v} is greater than the maximum of {hi} - '{name}'", param=name)
    return v


def _common(body: dict, req: GenRequest, settings) -> None:
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object", param=None)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("'model' must be a string", param="model")
    req.model = model
    for name, default in UNSUPPORTED_NONDEFAULT.items():
        if name in body and body[name] not in (default, None, False, 0):
            raise invalid(f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")
    for name in ("presence_penalty", "frequency_penalty"):
        if _num(body, name, 0.0, -2.0, 2.0) != 0:
            raise invalid(f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")
    mt = body.get("max_completion_tokens", None) if req.kind == "chat" else None
    if mt is None:
        req.max_tokens = _num(body, "max_tokens", None, 1, None, integer=True)
    else:
        req.max_tokens = _num(body, "max_completion_tokens", None, 1, None, integer=True)
    req.temperature = float(_num(body, "temperature", 1.0, 0.0, 2.0))
    req.top_p = float(_num(body, "top_p", 1.0, 0.0, 1.0, lo_open=True))
    top_k = _num(body, "top_k", 0, -1, None, integer=True)
    req.top_k = 0 if top_k == -1 else top_k
    req.seed = _num(body, "seed", None, integer=True)
    req.n = _num(body, "n", 1, 1, settings.max_n, integer=True)
    stop = body.get("stop")
    if stop is None:
        req.stop = []
    elif isinstance(stop, str):
        req.stop = [stop] if stop else []
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        req.stop = [s for s in stop if s]
    else:
        raise invalid("'stop' must be a string or a list of up to 4 strings", param="stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean", param="stream")
    req.stream = stream
    so = body.get("stream_options")
    if so is not None:
        if not isinstance(so, dict):
            raise invalid("'stream_options' must be an object", param="stream_options")
        req.include_usage = bool(so.get("include_usage", False))
    ie = body.get("ignore_eos", False)
    if not isinstance(ie, bool):
        raise invalid("'ignore_eos' must be a boolean", param="ignore_eos")
    req.ignore_eos = ie
    user = body.get("user")
    req.user = user if isinstance(user, str) else None


def parse_completion(body: Any, settings) -> GenRequest:
    req = GenRequest(kind="completion", model=None)
    _common(body, req, settings)
    if "prompt" not in body:
        raise invalid("'prompt' is a required property", param="prompt")
    p = body["prompt"]
    if isinstance(p, str):
        prompts = [p]
    elif isinstance(p, list) and p and all(isinstance(x, int) and not isinstance(x, bool) for x in p):
        prompts = [p]  # one prompt given as token ids
    elif isinstance(p, list) and all(isinstance(x, str) for x in p):
        prompts = list(p)
    elif isinstance(p, list) and all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in p):
        prompts = [list(x) for x in p]
    else:
        raise invalid("'prompt' must be a string, a list of strings, or token ids", param="prompt")
    if not prompts or any(len(x) == 0 for x in prompts):
        raise invalid("'prompt' must not be empty", param="prompt", code="empty_prompt")
    if len(prompts) > settings.max_prompts_per_request:
        raise invalid(f"'prompt' has {len(prompts)} entries; the limit is {settings.max_prompts_per_request} "
                      "per request", param="prompt", code="batch_too_large")
    if len(prompts) * req.n > settings.max_batch_size * 4:
        raise invalid("too many choices in one request (prompts x n)", param="n")
    req.prompts = prompts
    return req


def parse_chat(body: Any, settings) -> GenRequest:
    req = GenRequest(kind="chat", model=None)
    _common(body, req, settings)
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise invalid("'messages' must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise invalid(f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
        if m["role"] not in ("system", "developer", "user", "assistant", "tool"):
            raise invalid(f"messages[{i}].role {m['role']!r} is not supported", param=f"messages[{i}].role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text is supported
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise invalid(f"messages[{i}].content: only text parts are supported",
                                  param=f"messages[{i}].content")
                texts.append(part["text"])
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise invalid(f"messages[{i}].content must be a string", param=f"messages[{i}].content")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    if all(not m["content"] for m in out):
        raise invalid("'messages' must not be empty", param="messages", code="empty_prompt")
    req.messages = out
    return req
