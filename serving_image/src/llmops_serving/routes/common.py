"""What route handlers share: the server state, the caller, 503s, the JSON body, usage."""
from __future__ import annotations

import json

from starlette.requests import Request

from ..auth import AuthError, Principal
from ..errors import APIError, invalid
from ..state import ServerState


def state_of(request: Request) -> ServerState:
    return request.app.state.server


def authenticate(request: Request) -> Principal:
    st = state_of(request)
    try:
        p = st.auth.authenticate(request.headers)
    except AuthError as exc:
        st.metrics.auth_failures.labels(exc.reason).inc()
        raise APIError(401, exc.message, type="invalid_request_error", code=exc.reason,
                       headers={"www-authenticate": "Bearer"})
    request.state.principal = p.name
    return p


def unavailable(st: ServerState, why: str) -> APIError:
    return APIError(503, why, type="service_unavailable", code="service_unavailable",
                    headers={"retry-after": str(st.settings.retry_after_seconds)})


async def read_json(request: Request, limit: int):
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


def make_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
