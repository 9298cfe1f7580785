"""Entry point: `llmops-serve`. Runs uvicorn with graceful draining on SIGTERM.

First SIGTERM/SIGINT: /readyz turns 503 and new generation requests get 503
(so a load balancer stops sending traffic), requests already in flight run to
completion for up to `drain_grace_seconds`, then the process exits. A second
signal exits at once.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

import uvicorn

from . import crypto
from .accesslog import setup_logging
from .app import ServerState, create_app
from .config import Settings

log = logging.getLogger("llmops_serving.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config, state: ServerState):
        super().__init__(config)
        self.state = state
        self.exit_code = 0
        self._drain_started = False

    def handle_exit(self, sig, frame) -> None:
        if self._drain_started:
            self.force_exit = True
            self.should_exit = True
            return
        self._drain_started = True
        self.state.draining = True
        self.state.metrics.ready.set(0)
        log.info("drain started", extra={"event_fields": {"event.action": "drain-start", "signal": int(sig)}})
        # the signal handler runs on the loop's thread; the watcher runs as a task
        asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.state.settings.drain_grace_seconds
        while time.monotonic() < deadline:
            eng = self.state.engine
            # the engine's own count is authoritative; uvicorn's graceful shutdown then
            # waits for the responses of finished requests to be written out
            if eng is None or eng.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        left = self.state.engine.in_flight if self.state.engine else 0
        if left:
            # grace is over: do not let uvicorn wait a second full grace period for these
            self.config.timeout_graceful_shutdown = 1
        log.info("drain finished", extra={"event_fields": {"event.action": "drain-end", "in_flight_left": left}})
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.state.load_error and not self.should_exit:
            self.exit_code = 1
            self.should_exit = True
        return await super().on_tick(counter)


def preflight(settings: Settings) -> str | None:
    """Checks that can fail fast, before the HTTP server starts. Returns an error message."""
    path = Path(settings.model_path)
    if not (path / "config.json").exists():
        return f"no model found at {path} (config.json missing); mount the model or set LLMOPS_MODEL_PATH"
    if crypto.encrypted_files(path):
        try:
            key = crypto.load_key(settings.weights_key_file, settings.weights_key_env)
        except (OSError, ValueError) as exc:
            return f"cannot read the weights key: {exc}"
        if key is None:
            return ("model weights are encrypted but no key was given "
                    f"(set LLMOPS_WEIGHTS_KEY_FILE or {settings.weights_key_env})")
        manifest = path / crypto.MANIFEST
        if manifest.exists():
            check = json.loads(manifest.read_text()).get("key_check", "")
            if check != crypto.key_check(key):
                return "wrong weights key: it does not match the key this model was encrypted with"
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="OpenAI-compatible LLM server (settings: LLMOPS_* env vars, see README)")
    p.add_argument("--config", help="YAML/JSON config file (same as LLMOPS_CONFIG)")
    p.add_argument("--model-path")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    a = p.parse_args(argv)
    import os
    env = dict(os.environ)
    if a.config:
        env["LLMOPS_CONFIG"] = a.config
    overrides = {k: v for k, v in {"model_path": a.model_path, "host": a.host, "port": a.port}.items()
                 if v is not None}
    try:
        settings = Settings.load(env, **overrides)
    except (ValueError, OSError) as exc:
        print(f"llmops-serve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(settings.log_level)
    err = preflight(settings)
    if err:
        log.error(err)
        print(f"llmops-serve: refusing to start: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        state = ServerState(settings)
    except (ValueError, OSError) as exc:
        log.error(f"invalid configuration: {exc}")
        print(f"llmops-serve: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
    # The engine thread releases the GIL inside every torch op and must get it back quickly;
    # with the default 5 ms switch interval, a busy event loop (many streams) makes each
    # re-acquire wait and a decode step slows down several times over.
    sys.setswitchinterval(0.0001)
    app = create_app(state)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=max(1, int(settings.drain_grace_seconds)),
                            lifespan="on", server_header=False)
    server = DrainingServer(config, state)
    server.run()
    if state.load_error:
        print(f"llmops-serve: refusing to start: {state.load_error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(server.exit_code)


if __name__ == "__main__":
    main()
