"""POST /v1/watermark/detect: score a text against the server's watermark key."""
from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import invalid
from .common import read_json, state_of, unavailable


async def watermark_detect(request: Request) -> Response:
    st = state_of(request)
    if not st.ready:
        raise unavailable(st, "model is loading")
    if st.watermark is None:
        raise invalid("watermark detection is not configured on this server (no watermark key)",
                      param=None, code="watermark_not_configured")
    body = await read_json(request, st.settings.max_body_bytes)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        raise invalid("'text' must be a non-empty string", param="text")
    ids = await anyio.to_thread.run_sync(lambda: st.tokenizer.encode(text, add_special_tokens=False))
    result = await anyio.to_thread.run_sync(st.watermark.score, ids)
    result.update({"object": "watermark.detection", "gamma": st.watermark.gamma})
    return JSONResponse(result)
