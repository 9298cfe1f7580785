"""Cross-cutting HTTP plumbing: the observability middleware (request id, access log,
HTTP metrics) and the handlers that turn exceptions into OpenAI-shaped error bodies."""
from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .accesslog import access_log
from .errors import APIError
from .state import ServerState

log = logging.getLogger("llmops_serving.app")


class ObservabilityMiddleware:
    """Request id, access log and HTTP metrics for every request (streaming included:
    latency is measured until the last body byte was sent)."""

    def __init__(self, app, state_getter, known_paths, quiet_paths):
        self.app = app
        self.state_getter = state_getter
        # both come from the route table (routes.ENDPOINTS), so a new route gets its own metric label
        self.known_paths = frozenset(known_paths)
        self.quiet_paths = frozenset(quiet_paths)

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
            # unmatched paths share one label: a scanner must not create a time series per URL
            route = path if path in self.known_paths else "other"
            elapsed = time.perf_counter() - start
            st.metrics.requests.labels(route, scope.get("method", ""), str(status["code"])).inc()
            st.metrics.latency.labels(route).observe(elapsed)
            state = scope.get("state", {})
            if path not in self.quiet_paths or status["code"] >= 400:
                client = scope.get("client")
                access_log(request_id=rid, method=scope.get("method", ""), path=path, status=status["code"],
                           duration_s=elapsed, client_ip=client[0] if client else None,
                           principal=state.get("principal"), user_agent=headers.get("user-agent"),
                           usage=state.get("usage"), extra=state.get("log_text"))


async def api_error(request: Request, exc: APIError) -> Response:
    return exc.response()


async def not_found(request: Request, exc) -> Response:
    code = getattr(exc, "status_code", 404)
    return JSONResponse({"error": {"message": f"{request.method} {request.url.path}: "
                                   f"{'not found' if code == 404 else 'method not allowed'}",
                                   "type": "invalid_request_error", "param": None, "code": None}}, status_code=code)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error")
    return JSONResponse({"error": {"message": "internal server error", "type": "server_error", "param": None,
                                   "code": None}}, status_code=500)
