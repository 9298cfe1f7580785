"""The route table: every HTTP route, once, with what it needs around it.

Everything else that depends on the set of routes is derived from ENDPOINTS, so a new route
cannot be forgotten there: the Starlette routes, authentication (required unless the route
says otherwise), the `route` label of the HTTP metrics (unmatched paths are `other`) and the
quiet paths the access log skips while they succeed. tests/test_routes.py holds the README's
API table to it.
"""
from __future__ import annotations

import dataclasses
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Settings
from . import completions, health, models, watermark
from .common import authenticate, state_of

Handler = Callable[[Request], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    path: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    # True, False, or decided by the settings at request time (/metrics can be closed by configuration).
    # True is the default so that a new route is never open by accident.
    auth: bool | Callable[[Settings], bool] = True
    # access-logged only when it fails: probes and scrapes every few seconds would drown the log
    quiet: bool = False

    def needs_auth(self, settings: Settings) -> bool:
        return self.auth(settings) if callable(self.auth) else self.auth


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/livez", health.livez, auth=False, quiet=True),
    Endpoint("/healthz", health.livez, auth=False, quiet=True),  # the name some probes expect
    Endpoint("/readyz", health.readyz, auth=False, quiet=True),
    Endpoint("/metrics", health.metrics, auth=lambda s: s.metrics_require_auth, quiet=True),
    Endpoint("/v1/models", models.models),
    Endpoint("/v1/completions", completions.completions, methods=("POST",)),
    Endpoint("/v1/chat/completions", completions.chat_completions, methods=("POST",)),
    Endpoint("/v1/watermark/detect", watermark.watermark_detect, methods=("POST",)),
)

KNOWN_PATHS = frozenset(e.path for e in ENDPOINTS)
QUIET_PATHS = frozenset(e.path for e in ENDPOINTS if e.quiet)


def _guarded(endpoint: Endpoint) -> Handler:
    """The handler behind authentication: it runs first, so a caller without credentials
    learns nothing else (not even that the model is still loading)."""

    async def handle(request: Request) -> Response:
        if endpoint.needs_auth(state_of(request).settings):
            authenticate(request)
        return await endpoint.handler(request)

    handle.__name__ = handle.__qualname__ = endpoint.handler.__name__
    return handle


def starlette_routes() -> list[Route]:
    return [Route(e.path, _guarded(e), methods=list(e.methods)) for e in ENDPOINTS]
