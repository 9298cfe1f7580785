"""Probes and the Prometheus scrape: /livez (and /healthz), /readyz, /metrics."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .common import state_of


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> Response:
    st = state_of(request)
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
    # authentication (when LLMOPS_METRICS_REQUIRE_AUTH is on) is declared in the route table
    st = state_of(request)
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)
