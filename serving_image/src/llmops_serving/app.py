"""HTTP application (Starlette on uvicorn): puts the state, the route table and the
middleware together and loads the model in the background. It never touches torch:
generation goes through the engine thread, and tokenization / chat templates run in worker
threads.

The modules of the HTTP layer are listed in serving_image/README.md (Layout).
"""
from __future__ import annotations

import contextlib
import logging
import threading

from starlette.applications import Starlette

from .errors import APIError
from .middleware import ObservabilityMiddleware, api_error, not_found, server_error
from .routes import KNOWN_PATHS, QUIET_PATHS, starlette_routes
from .state import ServerState

__all__ = ["ServerState", "create_app"]

log = logging.getLogger("llmops_serving.app")


def create_app(state: ServerState, load_in_background: bool = True) -> Starlette:
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

    app = Starlette(routes=starlette_routes(), lifespan=lifespan,
                    exception_handlers={APIError: api_error, 404: not_found, 405: not_found,
                                        Exception: server_error})
    app.state.server = state
    app.add_middleware(ObservabilityMiddleware, state_getter=lambda: state, known_paths=KNOWN_PATHS,
                       quiet_paths=QUIET_PATHS)
    return app
