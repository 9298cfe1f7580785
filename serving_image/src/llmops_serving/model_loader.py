"""Load the tokenizer and model, choosing device and dtype.

device=auto picks CUDA when torch sees a GPU, else CPU. dtype=auto picks
bfloat16 on GPUs that support it (float16 otherwise) and float32 on CPU (CPU
half-precision matmuls are slow or unsupported on many machines).
Models whose weights are encrypted (*.safetensors.enc) are decrypted in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from . import crypto

log = logging.getLogger("llmops_serving.model")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelLoadError(RuntimeError):
    pass


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {name!r} requested but CUDA is not available")
    return dev


def choose_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {name!r}; use auto, float32, float16 or bfloat16")
    return _DTYPES[name]


def load(settings):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    path = Path(settings.model_path)
    if not (path / "config.json").exists():
        raise ModelLoadError(f"no model at {path} (config.json missing)")
    device = choose_device(settings.device)
    dtype = choose_dtype(settings.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if crypto.encrypted_files(path):
        key = crypto.load_key(settings.weights_key_file, settings.weights_key_env)
        if key is None:
            raise ModelLoadError("model weights are encrypted but no key was given "
                                 f"(set LLMOPS_WEIGHTS_KEY_FILE or ${settings.weights_key_env})")
        try:
            state = crypto.load_encrypted_state_dict(path, key)
        except crypto.WeightsDecryptionError as exc:
            raise ModelLoadError(f"cannot decrypt model weights: {exc}") from None
        config = AutoConfig.from_pretrained(path)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
        missing, unexpected = model.load_state_dict(state, strict=False)
        model.tie_weights()
        tied = set(getattr(model, "_tied_weights_keys", None) or [])
        real_missing = [k for k in missing if k not in tied]
        if real_missing or unexpected:
            raise ModelLoadError(f"decrypted weights do not fit the model: missing={real_missing[:5]} "
                                 f"unexpected={list(unexpected)[:5]}")
        if (path / "generation_config.json").exists():
            model.generation_config = GenerationConfig.from_pretrained(path)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    max_len = settings.max_model_len or getattr(cfg, "max_position_embeddings", 0) or 2048
    log.info("model loaded", extra={"event_fields": {"llm.model.path": str(path), "llm.model.device": str(device),
                                                      "llm.model.dtype": str(dtype).replace("torch.", ""),
                                                      "llm.model.max_model_len": max_len}})
    return model, tokenizer, device, max_len
