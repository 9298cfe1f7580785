"""Server-sent events for streamed completions: OpenAI's chunk objects, one `data:` frame
each, ending in `data: [DONE]`."""
from __future__ import annotations

import json

from ..protocol import GenRequest
from ..state import ServerState
from .common import make_usage


def merge_deltas(events: list) -> list:
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


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def stream(request, st: ServerState, req: GenRequest, kind: str, seqs, queue, rid, created, comp_pii):
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
                yield sse(chunk(s.index, "", None, first=True))
        pending: list = []
        while remaining:
            if not pending:
                pending.append(await queue.get())
                # coalesce what else is already queued: a slow client gets fewer, larger chunks
                while not queue.empty() and len(pending) < 256:
                    pending.append(queue.get_nowait())
                pending = merge_deltas(pending)
            ev = pending.pop(0)
            if ev["type"] == "error":
                yield sse({"error": {"message": ev["message"], "type": "server_error", "param": None,
                                     "code": "generation_failed"}})
                break
            text = ev["text"]
            if comp_pii:
                text = comp_pii.feed(ev["index"], text, final=ev["type"] == "done")
            if ev["type"] == "delta":
                if text:
                    yield sse(chunk(ev["index"], text, None))
                continue
            remaining -= 1
            completion_tokens += ev["completion_tokens"]
            usage = make_usage(request.state.prompt_tokens, completion_tokens) if remaining == 0 else None
            if text:
                yield sse(chunk(ev["index"], text, None))
            # usage rides on the final chunk so every response carries it, even without include_usage
            yield sse(chunk(ev["index"], None if kind == "chat" else "", ev["finish_reason"], usage=usage))
        request.state.usage = make_usage(request.state.prompt_tokens, completion_tokens)
        if req.include_usage:
            yield sse({"id": rid, "object": obj, "created": created, "model": st.model_name, "choices": [],
                       "usage": request.state.usage})
        yield b"data: [DONE]\n\n"
    finally:
        for s in seqs:
            s.cancelled = True  # client gone or done: leave the batch at the next step
        st.engine.wake()
