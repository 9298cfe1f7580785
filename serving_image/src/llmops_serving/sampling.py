"""Batched next-token sampling with per-row parameters.

One call handles the whole running batch: temperature, top-k and top-p are
applied as tensors with one value per row, so the cost does not grow with a
Python loop over rows. Only the uniform draw is per row, from that row's own
torch.Generator, so a request with `seed` gets the same tokens no matter which
other requests share its batch.
"""
from __future__ import annotations

import torch


def sample(logits: torch.Tensor, temperature: list[float], top_k: list[int], top_p: list[float],
           generators: list[torch.Generator | None]) -> list[int]:
    """logits: [n, V] (any float dtype). Returns one token id per row."""
    logits = logits.float()
    n, vocab = logits.shape
    greedy = [t <= 0.0 for t in temperature]
    out = [0] * n
    if all(greedy):
        return logits.argmax(dim=-1).tolist()
    sampled_rows = [i for i in range(n) if not greedy[i]]
    if any(greedy):
        arg = logits.argmax(dim=-1).tolist()
        for i in range(n):
            if greedy[i]:
                out[i] = arg[i]
    idx = torch.tensor(sampled_rows)
    sub = logits.index_select(0, idx) if len(sampled_rows) != n else logits
    temps = torch.tensor([temperature[i] for i in sampled_rows], dtype=torch.float32)
    sub = sub / temps[:, None]
    ks = [top_k[i] if 0 < top_k[i] < vocab else vocab for i in sampled_rows]
    ps = [top_p[i] for i in sampled_rows]
    uniforms = torch.tensor([
        float(torch.rand(1, generator=generators[i]).item()) if generators[i] is not None else float(torch.rand(1).item())
        for i in sampled_rows
    ])
    if all(k == vocab for k in ks) and all(p >= 1.0 for p in ps):
        probs = torch.softmax(sub, dim=-1)
        cdf = probs.cumsum(dim=-1)
        choice = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None]).clamp_(max=vocab - 1)
        tokens = choice[:, 0].tolist()
    else:
        sorted_logits, sorted_idx = sub.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        ranks = torch.arange(vocab)[None, :]
        keep = ranks < torch.tensor(ks)[:, None]
        # top-p: keep the smallest prefix whose mass reaches p (always at least one token)
        before = probs.cumsum(dim=-1) - probs
        keep &= before < torch.tensor(ps, dtype=torch.float32)[:, None]
        keep[:, 0] = True
        probs = probs * keep
        cdf = probs.cumsum(dim=-1)
        pos = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None]).clamp_(max=vocab - 1)
        tokens = sorted_idx.gather(1, pos)[:, 0].tolist()
    for j, i in enumerate(sampled_rows):
        out[i] = tokens[j]
    return out
