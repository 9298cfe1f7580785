"""Settings precedence: defaults < config file < environment < explicit overrides."""
from __future__ import annotations

import pytest

from llmops_serving.config import Settings


def test_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "serving.yaml"
    cfg.write_text("max_batch_size: 8\nport: 9000\npii_mode: mask\nauth_enabled: false\n")
    s = Settings.load({"LLMOPS_CONFIG": str(cfg), "LLMOPS_PORT": "9100"}, model_path="/m")
    assert (s.max_batch_size, s.port, s.pii_mode, s.auth_enabled, s.model_path) == (8, 9100, "mask", False, "/m")
    assert s.max_queue == 256  # default kept


def test_json_config_and_validation(tmp_path):
    cfg = tmp_path / "serving.json"
    cfg.write_text('{"watermark_gamma": 0.5}')
    assert Settings.load({"LLMOPS_CONFIG": str(cfg)}).watermark_gamma == 0.5
    with pytest.raises(ValueError, match="unknown settings"):
        cfg.write_text('{"no_such_setting": 1}')
        Settings.load({"LLMOPS_CONFIG": str(cfg)})
    with pytest.raises(ValueError, match="pii_mode"):
        Settings.load({"LLMOPS_PII_MODE": "shred"})
    with pytest.raises(ValueError):
        Settings.load({"LLMOPS_MAX_BATCH_SIZE": "0"})


def test_prefill_chunk_tokens_setting():
    assert Settings.load({}).prefill_chunk_tokens == 512
    assert Settings.load({"LLMOPS_PREFILL_CHUNK_TOKENS": "0"}).prefill_chunk_tokens == 0  # off
    with pytest.raises(ValueError, match=r"prefill_chunk_tokens must be 0 \(chunked prefill off\) or a positive"):
        Settings.load({"LLMOPS_PREFILL_CHUNK_TOKENS": "-8"})
