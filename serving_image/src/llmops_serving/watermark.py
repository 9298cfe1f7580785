"""Green-list watermark (Kirchenbauer et al., 2023, "A Watermark for Large Language Models").

For every position the previous token, keyed with a secret, seeds a
pseudo-random permutation of the vocabulary; its first gamma*|V| entries are the
"green list". Generation adds delta to green logits (soft watermark). Detection
counts how many tokens are green given their predecessor: without the watermark
the count is Binomial(T, gamma), so z = (green - gamma*T) / sqrt(T*gamma*(1-gamma))
is ~N(0,1); watermarked text gives a large z. The secret key makes the lists
unpredictable to anyone without it (HMAC-SHA256 of the previous token id).
"""
from __future__ import annotations

import hashlib
import hmac
import math
from collections import OrderedDict
from pathlib import Path

import torch


def load_key(path: str) -> bytes:
    data = Path(path).read_bytes().strip()
    if len(data) < 16:
        raise ValueError(f"watermark key in {path} is too short (need at least 16 bytes)")
    return data


class Watermark:
    def __init__(self, key: bytes, vocab_size: int, gamma: float = 0.25, delta: float = 2.0,
                 z_threshold: float = 4.0, cache_size: int = 8192):
        if not 0 < gamma < 1:
            raise ValueError("gamma must be in (0, 1)")
        self.key, self.vocab_size = key, vocab_size
        self.gamma, self.delta, self.z_threshold = gamma, delta, z_threshold
        self.green_count = max(1, int(gamma * vocab_size))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    def green_mask(self, prev_token: int) -> torch.Tensor:
        """Bool tensor [vocab] marking the green list that follows `prev_token` (LRU-cached)."""
        mask = self._cache.get(prev_token)
        if mask is not None:
            self._cache.move_to_end(prev_token)
            return mask
        digest = hmac.new(self.key, int(prev_token).to_bytes(8, "little", signed=True), hashlib.sha256).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
        perm = torch.randperm(self.vocab_size, generator=gen)
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[perm[: self.green_count]] = True
        self._cache[prev_token] = mask
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mask

    def bias_logits(self, logits: torch.Tensor, rows: list[int], prev_tokens: list[int]) -> None:
        """Add delta to the green logits of the given rows, in place."""
        masks = torch.stack([self.green_mask(t) for t in prev_tokens]).to(logits.device)
        idx = torch.tensor(rows, device=logits.device)
        sub = logits.index_select(0, idx)
        sub = sub + self.delta * masks[:, : sub.shape[1]].to(sub.dtype)
        logits.index_copy_(0, idx, sub)

    def score(self, token_ids: list[int]) -> dict:
        """z-score, one-sided p-value and verdict for a token sequence."""
        pairs = len(token_ids) - 1
        if pairs < 1:
            return {"num_tokens_scored": 0, "num_green_tokens": 0, "green_fraction": 0.0,
                    "z_score": 0.0, "p_value": 1.0, "watermarked": False, "threshold": self.z_threshold}
        green = 0
        for prev, tok in zip(token_ids[:-1], token_ids[1:]):
            if 0 <= tok < self.vocab_size and bool(self.green_mask(prev)[tok]):
                green += 1
        g = self.gamma
        z = (green - g * pairs) / math.sqrt(pairs * g * (1 - g))
        p = 0.5 * math.erfc(z / math.sqrt(2))
        return {"num_tokens_scored": pairs, "num_green_tokens": green, "green_fraction": green / pairs,
                "z_score": z, "p_value": p, "watermarked": z > self.z_threshold, "threshold": self.z_threshold}
