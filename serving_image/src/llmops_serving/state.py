"""Application state shared by every handler: settings, metrics, auth, limits, PII filter,
and the model/engine once the background load has finished."""
from __future__ import annotations

import time

from .auth import Authenticator
from .config import Settings
from .engine import Engine
from .metrics import Metrics
from .pii import PIIFilter
from .ratelimit import build_limiter


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
                        watermark=self.watermark, prefill_chunk_tokens=s.prefill_chunk_tokens)
        # warm-up: one tiny generation so the first request does not pay one-time costs
        engine.start()
        self.tokenizer, self.max_model_len, self.engine = tokenizer, max_len, engine
        self.ready = True
        self.metrics.ready.set(1)

    def is_ready(self) -> bool:
        return self.ready and not self.draining and self.engine is not None and self.engine.is_alive()
