"""GET /v1/models: the one served model."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .common import state_of


async def models(request: Request) -> Response:
    st = state_of(request)
    data = [{"id": st.model_name, "object": "model", "created": st.created, "owned_by": "llmops",
             "max_model_len": st.max_model_len}]
    return JSONResponse({"object": "list", "data": data})
