"""Server settings: defaults < YAML/JSON config file < environment variables.

Every setting has an env var named LLMOPS_<NAME upper-cased>. The config file is
named by LLMOPS_CONFIG (YAML or JSON, a flat mapping of the same names in
lower case). README.md lists every setting.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass
class Settings:
    # --- model and engine -------------------------------------------------
    model_path: str = "/models/model"
    served_model_name: str = ""          # name shown in /v1/models; default: directory name
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    dtype: str = "auto"                  # auto | float32 | float16 | bfloat16
    max_model_len: int = 0               # 0 = from the model config
    max_batch_size: int = 32             # sequences decoded together
    max_batch_tokens: int = 4096         # prompt tokens prefilled in one step
    prefill_chunk_tokens: int = 512      # longer prompts are prefilled in chunks of this size; 0 = off
    max_queue: int = 256                 # waiting requests before 503
    max_prompts_per_request: int = 32    # list length limit of /v1/completions
    max_n: int = 8                       # limit of the `n` parameter
    default_max_tokens: int = 256
    max_body_bytes: int = 1_048_576
    torch_threads: int = 0               # 0 = torch default
    # --- HTTP / lifecycle -------------------------------------------------
    host: str = "0.0.0.0"
    port: int = 8000
    drain_grace_seconds: float = 30.0
    retry_after_seconds: int = 1
    # --- auth -------------------------------------------------------------
    auth_enabled: bool = True
    api_keys_file: str = ""              # lines "name:sha256hex" (or YAML/JSON mapping)
    api_keys: str = ""                   # "name:sha256hex,name2:sha256hex"
    jwt_hs256_secret_file: str = ""
    jwt_public_key_file: str = ""        # PEM, RS256
    jwt_jwks_file: str = ""              # JWKS JSON, RS256, chosen by kid
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_principal_claim: str = "sub"
    jwt_leeway_seconds: int = 30
    metrics_require_auth: bool = False
    # --- rate limits ------------------------------------------------------
    rate_limit_rpm: int = 0              # requests per minute per principal; 0 = off
    rate_limit_tpm: int = 0              # tokens per minute per principal; 0 = off
    redis_url: str = ""                  # empty = in-memory buckets
    redis_key_prefix: str = "llmops:rl:"
    # --- PII --------------------------------------------------------------
    pii_mode: str = "off"                # off | mask | redact | reject
    pii_on_completions: bool = False
    pii_types: str = "email,phone,card,iban,ssn,ip"
    # --- watermark --------------------------------------------------------
    watermark_enabled: bool = False
    watermark_key_file: str = ""
    watermark_gamma: float = 0.25
    watermark_delta: float = 2.0
    watermark_z_threshold: float = 4.0
    # --- encrypted weights ------------------------------------------------
    weights_key_file: str = ""
    weights_key_env: str = "LLMOPS_WEIGHTS_KEY"
    # --- logging ----------------------------------------------------------
    log_level: str = "info"
    log_prompts: bool = False            # include prompt/completion text in access logs

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        values: dict = {}
        cfg = env.get("LLMOPS_CONFIG")
        if cfg:
            values.update(_read_config_file(Path(cfg)))
        known = {f.name: f for f in fields(cls)}
        for name, f in known.items():
            key = "LLMOPS_" + name.upper()
            if key in env:
                values[name] = env[key]
        values.update(overrides)
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        s = cls()
        for name, raw in values.items():
            setattr(s, name, _coerce(known[name], raw))
        s.validate()
        return s

    def validate(self) -> None:
        if self.pii_mode not in ("off", "mask", "redact", "reject"):
            raise ValueError("pii_mode must be off, mask, redact or reject")
        for name in ("max_batch_size", "max_batch_tokens", "max_queue", "max_prompts_per_request"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.prefill_chunk_tokens < 0:
            raise ValueError(f"prefill_chunk_tokens must be 0 (chunked prefill off) or a positive number of "
                             f"tokens such as 512, got {self.prefill_chunk_tokens}")
        if not 0 < self.watermark_gamma < 1:
            raise ValueError("watermark_gamma must be in (0, 1)")

    def public_dict(self) -> dict:
        return dataclasses.asdict(self)


def _read_config_file(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config file must hold a mapping")
    return data


def _coerce(f: dataclasses.Field, raw):
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    if typ == "bool":
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    if typ == "int":
        return int(raw)
    if typ == "float":
        return float(raw)
    return str(raw)
