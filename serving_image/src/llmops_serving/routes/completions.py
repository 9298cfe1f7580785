"""POST /v1/completions and /v1/chat/completions.

Request path (authentication ran first, from the route table):
  ready/draining check (503) -> body size and JSON (400) -> validation (400)
  -> PII (mask / redact / reject 400) -> tokenization and context-length check (400)
  -> rate limit (429) -> queue admission (503) -> stream (SSE) or wait for the result.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..engine import QueueFull, SamplingParams, Sequence
from ..errors import APIError, invalid
from ..pii import PIIFilter
from ..protocol import GenRequest, parse_chat, parse_completion
from ..state import ServerState
from .common import make_usage, read_json, state_of, unavailable
from .sse import stream

# the HTTP layer keeps the logger name it had as one module, which log filters may select
log = logging.getLogger("llmops_serving.app")


def _count_pii(st: ServerState, findings, direction: str) -> None:
    for f in findings:
        st.metrics.pii.labels(f.type, direction, st.settings.pii_mode).inc()


def _prepare(st: ServerState, req: GenRequest) -> tuple[list[list[int]], list]:
    """PII handling + tokenization; runs in a worker thread (tokenizers can be slow on long text).
    Returns the token ids of each prompt and the (masked) prompt texts for opt-in logging."""
    tok = st.tokenizer
    found_types: set[str] = set()

    def clean(text: str) -> str:
        if st.pii is None:
            return text
        masked, findings = st.pii.apply(text)
        _count_pii(st, findings, "prompt")
        found_types.update(f.type for f in findings)
        return masked

    if req.kind == "chat":
        msgs = [{"role": m["role"], "content": clean(m["content"])} for m in req.messages]
        if found_types and st.settings.pii_mode == "reject":
            raise invalid(f"messages contain personal data ({', '.join(sorted(found_types))}); request rejected",
                          param="messages", code="pii_detected")
        ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [list(ids)], [msgs]
    out, texts = [], []
    for p in req.prompts:
        if isinstance(p, str):
            p = clean(p)
            texts.append(p)
            out.append(tok.encode(p, add_special_tokens=False))
        else:
            vocab = len(tok)
            if any(t < 0 or t >= vocab for t in p):
                raise invalid("'prompt' contains token ids outside the vocabulary", param="prompt")
            out.append(list(p))
            texts.append(p)
    if found_types and st.settings.pii_mode == "reject":
        raise invalid(f"prompt contains personal data ({', '.join(sorted(found_types))}); request rejected",
                      param="prompt", code="pii_detected")
    for ids in out:
        if not ids:
            raise invalid("'prompt' must not be empty", param="prompt", code="empty_prompt")
    return out, texts


class CompletionPII:
    """Masks PII in generated text. Streaming text is buffered up to a line break
    (or 512 characters) so a finding is masked as a whole before it is sent."""

    def __init__(self, st: ServerState):
        self.st = st
        self.buf: dict[int, str] = {}

    def _mask(self, text: str) -> str:
        f = PIIFilter("mask" if self.st.settings.pii_mode == "mask" else "redact", self.st.settings.pii_types)
        masked, findings = f.apply(text)
        _count_pii(self.st, findings, "completion")
        return masked

    def feed(self, index: int, text: str, final: bool) -> str:
        buf = self.buf.get(index, "") + text
        if final:
            self.buf[index] = ""
            return self._mask(buf) if buf else ""
        cut = buf.rfind("\n")
        if cut < 0 and len(buf) > 512:
            cut = buf.rfind(" ")
        if cut < 0:
            self.buf[index] = buf
            return ""
        self.buf[index] = buf[cut + 1:]
        return self._mask(buf[: cut + 1])


async def completions(request: Request) -> Response:
    return await _generate(request, "completion")


async def chat_completions(request: Request) -> Response:
    return await _generate(request, "chat")


async def _generate(request: Request, kind: str) -> Response:
    st = state_of(request)
    principal = request.state.principal  # the caller's name, set by the route table's authentication
    if st.draining:
        raise unavailable(st, "server is shutting down")
    if not st.is_ready():
        raise unavailable(st, "model is not ready")
    body = await read_json(request, st.settings.max_body_bytes)
    req = parse_chat(body, st.settings) if kind == "chat" else parse_completion(body, st.settings)
    if req.model is not None and req.model != st.model_name:
        raise APIError(404, f"The model '{req.model}' does not exist", param="model", code="model_not_found")
    prompts, prompt_texts = await anyio.to_thread.run_sync(_prepare, st, req)
    ctx = st.max_model_len
    field = "messages" if kind == "chat" else "prompt"
    for ids in prompts:
        if len(ids) >= ctx:
            raise invalid(f"This model's maximum context length is {ctx} tokens; the prompt has {len(ids)} tokens.",
                          param=field, code="context_length_exceeded")
        if req.max_tokens is not None and len(ids) + req.max_tokens > ctx:
            raise invalid(f"This model's maximum context length is {ctx} tokens. However, you requested "
                          f"{len(ids) + req.max_tokens} tokens ({len(ids)} in the {field}, {req.max_tokens} "
                          "for the completion). Please reduce the length.", param="max_tokens",
                          code="context_length_exceeded")
    max_tokens = req.max_tokens or min(st.settings.default_max_tokens, ctx - max(len(p) for p in prompts))
    rl_headers: dict[str, str] = {}
    if st.limiter is not None:
        cost = sum(len(p) for p in prompts) + max_tokens * req.n * len(prompts)
        try:
            decision = await st.limiter.check(principal, cost)
        except Exception as exc:  # e.g. Redis unreachable: fail closed, but say why
            log.error(f"rate limiter unavailable: {type(exc).__name__}")
            raise unavailable(st, "rate limiter unavailable; retry later")
        rl_headers = decision.headers()
        if not decision.allowed:
            st.metrics.rate_limited.labels(decision.limit).inc()
            rl_headers.pop("retry-after", None)
            raise APIError(429, f"Rate limit reached for {principal} on {decision.limit} per minute. "
                           f"Please try again in {max(1, int(decision.retry_after + 0.999))}s.",
                           type="rate_limit_exceeded", code="rate_limit_exceeded",
                           headers={**rl_headers, "retry-after": str(max(1, int(decision.retry_after + 0.999)))})
    params = SamplingParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                            stop=req.stop, seed=req.seed, ignore_eos=req.ignore_eos,
                            watermark=st.settings.watermark_enabled and st.watermark is not None)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    seqs = []
    for pi, ids in enumerate(prompts):
        for c in range(req.n):
            idx = pi * req.n + c
            sp = params if req.seed is None else SamplingParams(**{**params.__dict__, "seed": req.seed + idx})
            seqs.append(Sequence(ids, sp, loop, queue.put_nowait, index=idx))
    try:
        st.engine.submit(seqs)
    except QueueFull:
        st.metrics.queue_rejections.inc()
        raise unavailable(st, "server is at capacity: the request queue is full; retry later")
    request.state.prompt_tokens = sum(len(p) for p in prompts)
    request.state.log_text = {}
    if st.settings.log_prompts:  # the (PII-masked) prompt as the model saw it
        request.state.log_text = {"llm.prompt": prompt_texts}
    rid = "cmpl-" + uuid.uuid4().hex if kind == "completion" else "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    comp_pii = CompletionPII(st) if (st.pii is not None and st.settings.pii_on_completions) else None
    if req.stream:
        gen = stream(request, st, req, kind, seqs, queue, rid, created, comp_pii)
        return StreamingResponse(gen, media_type="text/event-stream",
                                 headers={**rl_headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    texts, reasons, completion_tokens = await _collect(request, seqs, queue)
    if comp_pii:
        texts = {i: comp_pii.feed(i, t, final=True) for i, t in texts.items()}
    usage = make_usage(request.state.prompt_tokens, completion_tokens)
    request.state.usage = usage
    if st.settings.log_prompts:  # opt-in only: prompts and completions may hold personal data
        request.state.log_text = {**request.state.log_text, "llm.completion": [texts[i] for i in sorted(texts)]}
    if kind == "completion":
        choices = [{"index": i, "text": texts[i], "logprobs": None, "finish_reason": reasons[i]}
                   for i in sorted(texts)]
        payload = {"id": rid, "object": "text_completion", "created": created, "model": st.model_name,
                   "choices": choices, "usage": usage}
    else:
        choices = [{"index": i, "message": {"role": "assistant", "content": texts[i]}, "logprobs": None,
                    "finish_reason": reasons[i]} for i in sorted(texts)]
        payload = {"id": rid, "object": "chat.completion", "created": created, "model": st.model_name,
                   "choices": choices, "usage": usage, "system_fingerprint": None}
    return JSONResponse(payload, headers=rl_headers)


async def _watch_disconnect(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


async def _collect(request: Request, seqs, queue: asyncio.Queue):
    texts = {s.index: "" for s in seqs}
    reasons: dict[int, str] = {}
    completion_tokens = 0
    watcher = asyncio.create_task(_watch_disconnect(request))
    try:
        while len(reasons) < len(seqs):
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                # 499 (nginx's "client closed request"): never delivered, but logged and counted
                raise APIError(499, "client disconnected", type="client_closed_request")
            ev = getter.result()
            if ev["type"] == "error":
                raise APIError(500, ev["message"], type="server_error", code="generation_failed")
            texts[ev["index"]] += ev["text"]
            if ev["type"] == "done":
                reasons[ev["index"]] = ev["finish_reason"]
                completion_tokens += ev["completion_tokens"]
        return texts, reasons, completion_tokens
    finally:
        watcher.cancel()
        for s in seqs:  # no-op for finished ones; frees the batch slot of the others
            s.cancelled = True
        state_of(request).engine.wake()
