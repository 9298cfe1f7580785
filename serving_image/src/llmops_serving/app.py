"""HTTP layer (Starlette on uvicorn). It never touches torch: generation goes through
the engine thread, and tokenization / chat templates run in worker threads.

Request path for generation routes:
  authenticate (401) -> ready/draining check (503) -> body size and JSON
  (400) -> validation (400) -> PII (mask / redact / reject 400) -> tokenization
  and context-length check (400) -> rate limit (429) -> queue admission (503)
  -> stream (SSE) or wait for the result.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .accesslog import access_log
from .auth import AuthError, Authenticator
from .config import Settings
from .engine import Engine, QueueFull, SamplingParams, Sequence
from .errors import APIError, invalid
from .metrics import Metrics
from .pii import PIIFilter
from .protocol import GenRequest, parse_chat, parse_completion
from .ratelimit import build_limiter

log = logging.getLogger("llmops_serving.app")

OPEN_ROUTES = {"/livez", "/readyz", "/healthz"}
KNOWN_ROUTES = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/watermark/detect", "/livez",
                "/readyz", "/metrics"}


class ServerState:
    """Everything the handlers share. The model fields stay None until loading finishes."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.auth = Authenticator(settings)
        self.limiter = build_limiter(settings)
        self.pii = PIIFilter(settings.pii_mode, settings.pii_types) if settings.pii_mode != "off" else None
        self.engine: Engine | None = None
        self.tokenizer = None
        self.watermark = None
        self.model_name = settings.served_model_name or settings.model_path.rstrip("/").split("/")[-1]
        self.max_model_len = 0
        self.created = int(time.time())
        self.ready = False
        self.draining = False
        self.load_error: str | None = None

    # -- model loading (runs in a background thread so /readyz can say 503 meanwhile)
    def load_model(self) -> None:
        from . import model_loader
        from .watermark import Watermark, load_key

        s = self.settings
        if s.torch_threads:
            import torch
            torch.set_num_threads(s.torch_threads)
        model, tokenizer, device, max_len = model_loader.load(s)
        if s.watermark_key_file:
            vocab = model.get_output_embeddings().weight.shape[0]
            self.watermark = Watermark(load_key(s.watermark_key_file), vocab, s.watermark_gamma,
                                       s.watermark_delta, s.watermark_z_threshold)
        elif s.watermark_enabled:
            raise ValueError("watermark_enabled needs watermark_key_file")
        engine = Engine(model, tokenizer, max_batch_size=s.max_batch_size, max_batch_tokens=s.max_batch_tokens,
                        max_queue=s.max_queue, max_model_len=max_len, device=device, metrics=self.metrics,
                        watermark=self.watermark)
        # warm-up: one tiny generation so the first request does not pay one-time costs
        engine.start()
        self.tokenizer, self.max_model_len, self.engine = tokenizer, max_len, engine
        self.ready = True
        self.metrics.ready.set(1)

    def is_ready(self) -> bool:
        return self.ready and not self.draining and self.engine is not None and self.engine.is_alive()


# ---------------------------------------------------------------------------- helpers
def _state(request: Request) -> ServerState:
    return request.app.state.server


def _principal(request: Request):
    st = _state(request)
    try:
        p = st.auth.authenticate(request.headers)
    except AuthError as exc:
        st.metrics.auth_failures.labels(exc.reason).inc()
        raise APIError(401, exc.message, type="invalid_request_error", code=exc.reason,
                       headers={"www-authenticate": "Bearer"})
    request.state.principal = p.name
    return p


def _unavailable(st: ServerState, why: str) -> APIError:
    return APIError(503, why, type="service_unavailable", code="service_unavailable",
                    headers={"retry-after": str(st.settings.retry_after_seconds)})


async def _read_json(request: Request, limit: int):
    cl = request.headers.get("content-length")
    if cl and cl.isdigit() and int(cl) > limit:
        raise invalid(f"request body is larger than the limit of {limit} bytes", param="body",
                      code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise invalid(f"request body is larger than the limit of {limit} bytes", param="body",
                          code="request_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise invalid("request body is not valid JSON", param="body", code="invalid_json")


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


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class _CompletionPII:
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


# ---------------------------------------------------------------------------- routes
async def livez(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> Response:
    st = _state(request)
    if st.is_ready():
        return JSONResponse({"status": "ready", "model": st.model_name})
    if st.draining:
        reason = "draining"
    elif st.load_error:
        reason = "model failed to load"
    elif not st.ready:
        reason = "loading"
    else:
        reason = "engine unhealthy"
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                        headers={"retry-after": str(st.settings.retry_after_seconds)})


async def metrics(request: Request) -> Response:
    st = _state(request)
    if st.settings.metrics_require_auth:
        _principal(request)
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def models(request: Request) -> Response:
    st = _state(request)
    _principal(request)
    data = [{"id": st.model_name, "object": "model", "created": st.created, "owned_by": "llmops",
             "max_model_len": st.max_model_len}]
    return JSONResponse({"object": "list", "data": data})


async def watermark_detect(request: Request) -> Response:
    st = _state(request)
    _principal(request)
    if not st.ready:
        raise _unavailable(st, "model is loading")
    if st.watermark is None:
        raise invalid("watermark detection is not configured on this server (no watermark key)",
                      param=None, code="watermark_not_configured")
    body = await _read_json(request, st.settings.max_body_bytes)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        raise invalid("'text' must be a non-empty string", param="text")
    ids = await anyio.to_thread.run_sync(lambda: st.tokenizer.encode(text, add_special_tokens=False))
    result = await anyio.to_thread.run_sync(st.watermark.score, ids)
    result.update({"object": "watermark.detection", "gamma": st.watermark.gamma})
    return JSONResponse(result)


async def completions(request: Request) -> Response:
    return await _generate(request, "completion")


async def chat_completions(request: Request) -> Response:
    return await _generate(request, "chat")


async def _generate(request: Request, kind: str) -> Response:
    st = _state(request)
    principal = _principal(request)
    if st.draining:
        raise _unavailable(st, "server is shutting down")
    if not st.is_ready():
        raise _unavailable(st, "model is not ready")
    body = await _read_json(request, st.settings.max_body_bytes)
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
            decision = await st.limiter.check(principal.name, cost)
        except Exception as exc:  # e.g. Redis unreachable: fail closed, but say why
            log.error(f"rate limiter unavailable: {type(exc).__name__}")
            raise _unavailable(st, "rate limiter unavailable; retry later")
        rl_headers = decision.headers()
        if not decision.allowed:
            st.metrics.rate_limited.labels(decision.limit).inc()
            rl_headers.pop("retry-after", None)
            raise APIError(429, f"Rate limit reached for {principal.name} on {decision.limit} per minute. "
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
        raise _unavailable(st, "server is at capacity: the request queue is full; retry later")
    request.state.prompt_tokens = sum(len(p) for p in prompts)
    request.state.log_text = {}
    if st.settings.log_prompts:  # the (PII-masked) prompt as the model saw it
        request.state.log_text = {"llm.prompt": prompt_texts}
    rid = "cmpl-" + uuid.uuid4().hex if kind == "completion" else "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    comp_pii = _CompletionPII(st) if (st.pii is not None and st.settings.pii_on_completions) else None
    if req.stream:
        gen = _stream(request, st, req, kind, seqs, queue, rid, created, comp_pii)
        return StreamingResponse(gen, media_type="text/event-stream",
                                 headers={**rl_headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    texts, reasons, completion_tokens = await _collect(request, seqs, queue)
    if comp_pii:
        texts = {i: comp_pii.feed(i, t, final=True) for i, t in texts.items()}
    usage = _usage(request.state.prompt_tokens, completion_tokens)
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
        _state(request).engine.wake()


def _merge_deltas(events: list) -> list:
    """Join consecutive text deltas of the same choice; keeps every done/error event."""
    out: list = []
    for ev in events:
        prev = out[-1] if out else None
        if prev is not None and prev["type"] == "delta" and ev["type"] in ("delta", "done") \
                and prev["index"] == ev["index"]:
            out[-1] = {**ev, "text": prev["text"] + ev["text"]}
        else:
            out.append(ev)
    return out


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def _stream(request, st: ServerState, req: GenRequest, kind: str, seqs, queue, rid, created, comp_pii):
    obj = "text_completion" if kind == "completion" else "chat.completion.chunk"
    remaining = len(seqs)
    completion_tokens = 0

    def chunk(index: int, text: str | None, finish: str | None, first: bool = False, usage=None) -> dict:
        if kind == "completion":
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        else:
            delta = {}
            if first:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        c = {"id": rid, "object": obj, "created": created, "model": st.model_name, "choices": [choice]}
        if usage is not None:
            c["usage"] = usage
        return c

    try:
        if kind == "chat":
            for s in seqs:
                yield _sse(chunk(s.index, "", None, first=True))
        pending: list = []
        while remaining:
            if not pending:
                pending.append(await queue.get())
                # coalesce what else is already queued: a slow client gets fewer, larger chunks
                while not queue.empty() and len(pending) < 256:
                    pending.append(queue.get_nowait())
                pending = _merge_deltas(pending)
            ev = pending.pop(0)
            if ev["type"] == "error":
                yield _sse({"error": {"message": ev["message"], "type": "server_error", "param": None,
                                      "code": "generation_failed"}})
                break
            text = ev["text"]
            if comp_pii:
                text = comp_pii.feed(ev["index"], text, final=ev["type"] == "done")
            if ev["type"] == "delta":
                if text:
                    yield _sse(chunk(ev["index"], text, None))
                continue
            remaining -= 1
            completion_tokens += ev["completion_tokens"]
            usage = _usage(request.state.prompt_tokens, completion_tokens) if remaining == 0 else None
            if text:
                yield _sse(chunk(ev["index"], text, None))
            # usage rides on the final chunk so every response carries it, even without include_usage
            yield _sse(chunk(ev["index"], None if kind == "chat" else "", ev["finish_reason"], usage=usage))
        request.state.usage = _usage(request.state.prompt_tokens, completion_tokens)
        if req.include_usage:
            yield _sse({"id": rid, "object": obj, "created": created, "model": st.model_name, "choices": [],
                        "usage": request.state.usage})
        yield b"data: [DONE]\n\n"
    finally:
        for s in seqs:
            s.cancelled = True  # client gone or done: leave the batch at the next step
        st.engine.wake()


# ---------------------------------------------------------------------------- middleware
class ObservabilityMiddleware:
    """Request id, access log and HTTP metrics for every request (streaming included:
    latency is measured until the last body byte was sent)."""

    def __init__(self, app, state_getter):
        self.app = app
        self.state_getter = state_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        st: ServerState = self.state_getter()
        start = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 128 or not rid.isprintable():
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            route = path if path in KNOWN_ROUTES else "other"
            elapsed = time.perf_counter() - start
            st.metrics.requests.labels(route, scope.get("method", ""), str(status["code"])).inc()
            st.metrics.latency.labels(route).observe(elapsed)
            state = scope.get("state", {})
            if path not in ("/livez", "/readyz", "/metrics") or status["code"] >= 400:
                client = scope.get("client")
                access_log(request_id=rid, method=scope.get("method", ""), path=path, status=status["code"],
                           duration_s=elapsed, client_ip=client[0] if client else None,
                           principal=state.get("principal"), user_agent=headers.get("user-agent"),
                           usage=state.get("usage"), extra=state.get("log_text"))


async def _api_error(request: Request, exc: APIError) -> Response:
    return exc.response()


async def _not_found(request: Request, exc) -> Response:
    code = getattr(exc, "status_code", 404)
    return JSONResponse({"error": {"message": f"{request.method} {request.url.path}: "
                                   f"{'not found' if code == 404 else 'method not allowed'}",
                                   "type": "invalid_request_error", "param": None, "code": None}}, status_code=code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error")
    return JSONResponse({"error": {"message": "internal server error", "type": "server_error", "param": None,
                                   "code": None}}, status_code=500)


def create_app(state: ServerState, load_in_background: bool = True) -> Starlette:
    routes = [
        Route("/livez", livez), Route("/healthz", livez), Route("/readyz", readyz), Route("/metrics", metrics),
        Route("/v1/models", models), Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/watermark/detect", watermark_detect, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if load_in_background and not state.ready:
            def _load():
                try:
                    state.load_model()
                except Exception as exc:  # surfaced by server.main, which exits non-zero
                    state.load_error = str(exc)
                    log.error(f"model load failed: {exc}")
            threading.Thread(target=_load, name="llmops-loader", daemon=True).start()
        yield
        if state.engine is not None:
            state.engine.stop()
        if state.limiter is not None and hasattr(state.limiter, "close"):
            await state.limiter.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={APIError: _api_error, 404: _not_found, 405: _not_found,
                                        Exception: _server_error})
    app.state.server = state
    app.add_middleware(ObservabilityMiddleware, state_getter=lambda: state)
    return app
